"""create_app(): assembles settings, database, sessions, CSRF, templates and the route handlers."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from litestar import Litestar, Request, Response, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.stores.registry import StoreRegistry
from sqlalchemy.engine import Engine

from portal import __version__
from portal.brand.cache import BrandCache
from portal.brand.views import BrandAssetsController
from portal.config import Settings, get_settings
from portal.commit_counter import commit_counter
from portal.db import ensure_migrated, make_engine
from portal.i18n import StaffText
from portal.returns.status_cache import StatusPageCache, UntilNextCommit
from portal.returns.views import ConsumerController
from portal.notify.unsubscribe_views import UnsubscribeController
from portal.staff.routes import STAFF_CONTROLLERS
from portal.api.v1 import API_V1_CONTROLLERS
from portal.carriers.webhook import CarrierWebhookController
from portal.webhooks.shop import ShopWebhookController
from portal.webhooks.sms import SmsDeliveryReportController
from portal.web.deps import provide_db
from portal.web.errors import EXCEPTION_HANDLERS
from portal.web.sessions import RotatingSessionConfig
from portal.web.security import security_headers_hook
from portal.web.store import DatabaseStore
from portal.web.templating import request_language, template_config

log = logging.getLogger("portal")
STATIC_DIR = Path(__file__).resolve().parent / "static"


@get("/health", include_in_schema=False, sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@get("/hello", include_in_schema=False, sync_to_thread=False, media_type="text/plain")
def hello() -> str:
    """The benchmark baseline: the cheapest response this server can give."""
    return "hello"


async def _choose_language(request: Request) -> None:  # async: a sync hook costs a thread hop per request
    request.state.lang = request_language(request)


def warn_if_slow_pdf() -> None:
    from labels import harfbuzz_subset_available

    if not harfbuzz_subset_available():
        log.warning(
            "libharfbuzz-subset0 is missing: WeasyPrint renders labels several times slower. "
            "Install it with: sudo apt-get install libharfbuzz-subset0"
        )


def _freeze_gc() -> None:
    """Move everything loaded at start-up out of the collector's reach: a full collection over the imported
    modules paused every request in flight (the status page's p99 at 64 connections fell from ~150 to ~55 ms)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, engine: Engine | None = None, check_migrations: bool = True) -> Litestar:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    if check_migrations:
        ensure_migrated(engine)
    warn_if_slow_pdf()
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one line per render step is noise
    # The brand is re-read now and then, not once: an admin's edit shows without a restart.
    db_memo = UntilNextCommit(commit_counter(engine))
    state = State({"settings": settings, "engine": engine, "brand_cache": BrandCache(engine),
                   "status_pages": StatusPageCache(), "db_memo": db_memo})

    scheduler_holder: list = []

    def start_embedded_worker() -> None:
        if settings.embedded_worker:
            from portal.jobs.scheduler import start_scheduler

            scheduler_holder.append(start_scheduler(engine, settings))
            log.info("embedded worker started: outbox dispatch and scheduled jobs run in this process")

    def stop_embedded_worker() -> None:
        for scheduler in scheduler_holder:
            scheduler.shutdown(wait=True)

    return Litestar(
        on_startup=[start_embedded_worker, _freeze_gc],
        on_shutdown=[stop_embedded_worker, db_memo.aclose],
        route_handlers=[
            health,
            hello,
            ConsumerController,
            UnsubscribeController,
            *STAFF_CONTROLLERS,
            BrandAssetsController,
            ShopWebhookController,
            CarrierWebhookController,
            SmsDeliveryReportController,
            *API_V1_CONTROLLERS,
            create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False),
        ],
        state=state,
        dependencies={"db": Provide(provide_db)},
        before_request=_choose_language,
        before_send=[security_headers_hook(settings.https)],
        template_config=template_config(settings.templates_dir),
        middleware=[
            RotatingSessionConfig(
                store="sessions", key="portal_session", max_age=settings.session_idle_minutes * 60,
                secure=settings.https, httponly=True, samesite="lax", renew_on_access=True,
            ).middleware
        ],
        stores=StoreRegistry({"sessions": DatabaseStore(engine, "sessions")}),
        csrf_config=CSRFConfig(
            secret=settings.secret_key, cookie_secure=settings.https, cookie_samesite="lax",
            cookie_httponly=False, exclude=["^/api/", "^/webhooks/"]  # anchored: Litestar matches these as regexes,
            # and handlers with opt={"exclude_from_csrf": True} (only the one-click unsubscribe POST, RFC 8058)
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        type_encoders={StaffText: str},  # back-office messages are plain strings in JSON
        openapi_config=OpenAPIConfig(title="Nordic returns portal API", version=__version__, path="/schema"),
        debug=False,
    )
