"""Settings read from the environment, with safe defaults for the embedded (SQLite) mode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.numbers import is_digits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"
SUPPORTED_LANGUAGES = ("sv", "nb", "da", "fi", "en")


class ConfigError(RuntimeError):
    """Settings that cannot work; the message says which variable to fix."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'portal.db'}"
    secret_key: str = DEV_SECRET
    base_url: str = "http://127.0.0.1:8000"
    timezone: str = "Europe/Stockholm"
    default_language: str = "sv"
    storage_dir: Path = REPO_ROOT / "var" / "storage"
    label_storage: str = "database"  # or "directory"
    smtp_url: str = ""
    mail_dir: Path = REPO_ROOT / "var" / "mail"
    templates_dir: Path = REPO_ROOT / "templates"
    lookup_rate_limit: int = 10  # order lookups per client per window
    lookup_rate_window_s: int = 300
    session_idle_minutes: int = 30
    status_miss_limit: int = 20  # wrong status links per client per window before the status pages answer 429
    status_miss_window_s: int = 600
    retention_months: int = 24  # GDPR: anonymise customers whose last business ended longer ago than this
    return_expiry_days: int = 30  # a label never dropped off: the return expires this many days after registration
    embedded_worker: bool = False  # run the scheduler + outbox dispatcher inside the web process
    # JOB_INTERVAL_<JOB_ID>=seconds (e.g. JOB_INTERVAL_NOTIFICATION_SWEEP=60) runs that periodic job at this
    # fixed interval instead of its own schedule; job ids are in portal/jobs/scheduler.py (dashes as underscores).
    job_intervals: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    def validate(self) -> "Settings":
        if self.is_production and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ConfigError(
                "PORTAL_ENV=production needs SECRET_KEY set to a random value of at least 32 characters "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.default_language not in SUPPORTED_LANGUAGES:
            raise ConfigError(f"DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        if self.label_storage not in ("database", "directory"):
            raise ConfigError("LABEL_STORAGE must be 'database' or 'directory'")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"TIMEZONE {self.timezone!r} is not a known IANA time zone") from exc
        return self


def settings_from_env() -> Settings:
    defaults = Settings()
    return Settings(
        environment=_env("PORTAL_ENV", defaults.environment),
        database_url=_env("DATABASE_URL", defaults.database_url),
        secret_key=_env("SECRET_KEY", defaults.secret_key),
        base_url=_env("BASE_URL", defaults.base_url).rstrip("/"),
        timezone=_env("TIMEZONE", defaults.timezone),
        default_language=_env("DEFAULT_LANGUAGE", defaults.default_language),
        storage_dir=Path(_env("STORAGE_DIR", str(defaults.storage_dir))),
        label_storage=_env("LABEL_STORAGE", defaults.label_storage),
        smtp_url=_env("SMTP_URL", defaults.smtp_url),
        mail_dir=Path(_env("MAIL_DIR", str(defaults.mail_dir))),
        templates_dir=Path(_env("TEMPLATES_DIR", str(defaults.templates_dir))),
        lookup_rate_limit=int(_env("LOOKUP_RATE_LIMIT", str(defaults.lookup_rate_limit))),
        lookup_rate_window_s=int(_env("LOOKUP_RATE_WINDOW_S", str(defaults.lookup_rate_window_s))),
        session_idle_minutes=int(_env("SESSION_IDLE_MINUTES", str(defaults.session_idle_minutes))),
        status_miss_limit=_int_env("STATUS_RATE_LIMIT", defaults.status_miss_limit),
        status_miss_window_s=_int_env("STATUS_RATE_WINDOW_S", defaults.status_miss_window_s),
        retention_months=_int_env("RETENTION_MONTHS", defaults.retention_months),
        return_expiry_days=_int_env("RETURN_EXPIRY_DAYS", defaults.return_expiry_days),
        embedded_worker=_embedded_worker_default(_env("DATABASE_URL", defaults.database_url)),
        job_intervals=_job_intervals(os.environ),
    ).validate()


JOB_INTERVAL_PREFIX = "JOB_INTERVAL_"


def _job_intervals(environ) -> dict[str, int]:
    """{"notification-sweep": 60, …} from JOB_INTERVAL_NOTIFICATION_SWEEP=60 …; seconds, at least 1."""
    found = {}
    for name, value in environ.items():
        if not name.startswith(JOB_INTERVAL_PREFIX) or not value.strip():
            continue
        if not is_digits(value.strip()) or int(value) < 1:
            raise ConfigError(f"{name} must be a whole number of seconds, at least 1 (got {value!r})")
        found[name[len(JOB_INTERVAL_PREFIX):].lower().replace("_", "-")] = int(value)
    return found


def _int_env(name: str, default: int) -> int:
    """A whole number of at least 1, or a ConfigError naming the variable."""
    value = _env(name, str(default)).strip()
    if not is_digits(value) or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number, at least 1 (got {value!r})")
    return int(value)


def _embedded_worker_default(database_url: str) -> bool:
    """On by default for the embedded SQLite mode; with PostgreSQL run `portal worker` processes instead."""
    value = os.environ.get("EMBEDDED_WORKER", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
