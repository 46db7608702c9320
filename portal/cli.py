"""The `portal` command: migrate, demo, serve, run."""

from __future__ import annotations

import sys

import click

from portal.config import ConfigError, get_settings


def _settings():
    try:
        return get_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """Nordic returns portal."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (creates the SQLite file if needed)."""
    from portal.db import migrate as run_migrations

    settings = _settings()
    run_migrations(settings.database_url)
    click.echo("Database is up to date.")


@main.command()
def demo() -> None:
    """Load the demo merchant and orders (safe to run again)."""
    from portal.db import make_engine, session_scope
    from portal.demo import load_demo

    engine = make_engine(_settings().database_url)
    _require_migrated(engine)
    with session_scope(engine) as session:
        added = load_demo(session)
    click.echo(f"Demo data: {added} orders added." if added else "Demo data already loaded.")


def _require_migrated(engine) -> None:
    from portal.db import NotMigratedError, ensure_migrated

    try:
        ensure_migrated(engine)
    except NotMigratedError as exc:
        raise click.ClickException(str(exc)) from exc


def _print_urls(base_url: str) -> None:
    click.echo("")
    click.echo(f"  Returns portal:      {base_url}/")
    click.echo("  Swedish order:       SE-1001 with anna.svensson@example.se (or postcode 114 55)")
    click.echo("  Norwegian order:     NO-2001 with ola.nordmann@example.no (or postcode 0159)")
    click.echo("  Outside the window:  SE-1003 with maja.berg@example.se")
    click.echo(f"  API schema:          {base_url}/schema")
    click.echo("")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Web processes.")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    """Serve the portal with uvicorn."""
    import uvicorn

    from portal.db import make_engine

    settings = _settings()
    _require_migrated(make_engine(settings.database_url))
    _print_urls(settings.base_url)
    uvicorn.run("portal.app:create_app", factory=True, host=host, port=port, workers=workers, reload=reload,
                proxy_headers=True, log_level="info")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def run(ctx: click.Context, host: str, port: int) -> None:
    """Migrate, load the demo data if the database is empty, and serve (what `make run` does)."""
    ctx.invoke(migrate)
    ctx.invoke(demo)
    ctx.invoke(serve, host=host, port=port, workers=1, reload=False)


if __name__ == "__main__":
    sys.exit(main())
