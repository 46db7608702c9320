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
    from portal.demo import load_demo, load_demo_norway, load_demo_refunds, load_demo_staff
    from portal.notify.starter import install_starter_rules

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    with session_scope(engine) as session:
        added = load_demo(session)
        load_demo_norway(session)
        load_demo_refunds(session, tz=settings.timezone)  # paid and overdue refunds for the dashboard
        install_starter_rules(session)  # inactive until the merchant activates them
        if not settings.is_production:
            load_demo_staff(session)
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
    click.echo(f"  Staff log-in:        {base_url}/staff/login")
    click.echo("                       admin@demo.example / warehouse@demo.example / support@demo.example,")
    click.echo("                       password demo-password-123 (demo data only)")
    click.echo(f"  API schema:          {base_url}/schema")
    click.echo("")


@main.command("create-staff")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "warehouse", "support"]), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted when not given; or set STAFF_PASSWORD.", envvar="STAFF_PASSWORD")
def create_staff_command(email: str, name: str, role: str, password: str) -> None:
    """Create a back-office user (argon2-hashed password)."""
    from portal.db import make_engine, session_scope
    from portal.staff.accounts import AccountError, create_staff

    engine = make_engine(_settings().database_url)
    _require_migrated(engine)
    try:
        with session_scope(engine) as session:
            user = create_staff(session, email, name, role, password, actor="cli")
            click.echo(f"Created {user.role} {user.email}.")
    except AccountError as exc:
        raise click.ClickException("; ".join(f"{k}: {v}" for k, v in exc.fields.items())) from exc


@main.command("print-labels")
@click.option("--rma", "rmas", multiple=True, help="Only these returns (repeatable).")
@click.option("--status", default="label_issued", show_default=True, help="Returns in this state (ignored with --rma).")
@click.option("--resolution", type=click.Choice(["refund", "exchange", "store_credit"]), help="Only this resolution.")
@click.option("--layout", type=click.Choice(["thermal", "a4"]), default="thermal", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), required=True)
def print_labels(rmas: tuple[str, ...], status: str, resolution: str | None, layout: str, output: str) -> None:
    """Render many labels into one PDF for the printer (e.g. all exchanges to ship today)."""
    from sqlmodel import Session, select

    import labels
    from portal.db import make_engine
    from portal.models import Return
    from portal.returns.identifiers import normalise_rma
    from portal.returns.labels import label_data

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    with Session(engine) as session:
        query = select(Return).order_by(Return.created_at)
        if rmas:
            query = query.where(Return.rma.in_([normalise_rma(r) for r in rmas]))
        else:
            query = query.where(Return.status == status)
        if resolution:
            query = query.where(Return.resolution == resolution)
        returns = session.exec(query).all()
        if not returns:
            raise click.ClickException("No returns match; nothing to print.")
        missing = set(normalise_rma(r) for r in rmas) - {r.rma for r in returns}
        if missing:
            raise click.ClickException(f"Unknown RMA numbers: {', '.join(sorted(missing))}")
        data = [label_data(session, ret, settings) for ret in returns]
    with open(output, "wb") as fh:
        fh.write(labels.render_pdf_batch(data, layout))
    click.echo(f"{len(data)} labels written to {output}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Web processes.")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One log line per request (off when the reverse proxy keeps the access log).")
def serve(host: str, port: int, workers: int, reload: bool, access_log: bool = True) -> None:
    """Serve the portal with uvicorn."""
    import uvicorn

    from portal.db import make_engine

    settings = _settings()
    _require_migrated(make_engine(settings.database_url))
    _print_urls(settings.base_url)
    uvicorn.run("portal.app:create_app", factory=True, host=host, port=port, workers=workers, reload=reload,
                proxy_headers=True, log_level="info", access_log=access_log)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def run(ctx: click.Context, host: str, port: int) -> None:
    """Migrate, load the demo data if the database is empty, and serve (what `make run` does)."""
    ctx.invoke(migrate)
    ctx.invoke(demo)
    ctx.invoke(serve, host=host, port=port, workers=1, reload=False)


@main.command()
@click.option("--interval", default=3, show_default=True, type=click.IntRange(1, 60), help="Seconds between outbox runs.")
@click.option("--once", is_flag=True, help="Dispatch what is due now, print the outcome and exit (for cron or checks).")
def worker(interval: int, once: bool) -> None:
    """Run the background jobs (outbox: webhooks and e-mail) until SIGTERM or Ctrl+C. Several may run at once."""
    import logging
    from urllib.parse import urlsplit

    from portal.db import make_engine
    from portal.jobs.scheduler import dispatch_job, run_worker

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mail = f"SMTP {urlsplit(settings.smtp_url).hostname}" if settings.smtp_url else f"mail folder {settings.mail_dir}"
    database = engine.url.render_as_string(hide_password=True)
    if once:
        handled = dispatch_job(engine, settings)
        click.echo(f"Outbox: {handled} messages handled (database {database}, e-mail to {mail}).")
        return
    click.echo(f"Worker started: outbox every {interval} s (database {database}, e-mail to {mail}). "
               "Stop with Ctrl+C or SIGTERM.")
    run_worker(engine, settings, interval_s=interval)
    click.echo("Worker stopped.")


@main.command("customs-documents")
@click.option("--collection", "reference", required=True, help="Collection reference, e.g. NO-2026-11-24-A.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Folder to write into.")
def customs_documents(reference: str, out_dir: str) -> None:
    """Write a collection's frozen manifest (manifest.csv/.json/.pdf) and one evidence PDF per return."""
    from datetime import UTC, datetime
    from pathlib import Path

    from sqlmodel import Session

    from customs.rates import format_minor
    from portal.db import make_engine
    from portal.norway import collections, manifests
    from portal.returns.service import get_policy

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    with Session(engine) as session:
        collection = collections.collection_by_reference(session, reference)
        if collection is None:
            known = ", ".join(c.reference for c, _ in collections.list_collections(session, 10)) or "none yet"
            raise click.ClickException(f"No collection {reference}. Recent collections: {known}.")
        manifest = collections.frozen_manifest(collection)
        if manifest is None:
            raise click.ClickException(f"Collection {collection.reference} is {collection.state} and has no frozen "
                                       "manifest yet; freeze it in the back-office first.")
        merchant = get_policy(session).merchant_name
        loaded = manifests.load_return_customs(session, collections.active_return_ids(session, collection))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.csv").write_bytes(manifests.manifest_csv(manifest))
    (out / "manifest.json").write_text(collection.manifest, encoding="utf-8")
    (out / "manifest.pdf").write_bytes(manifests.manifest_pdf(manifest, merchant, settings.timezone))
    now = datetime.now(UTC)
    evidence = [item for item in loaded if item.assessments]
    for item in evidence:
        (out / f"evidence-{item.rma}.pdf").write_bytes(manifests.evidence_pdf(item, merchant, now))
    total = manifest.grand_total
    click.echo(f"Collection {collection.reference} ({collection.state}): {total.line_count} lines, "
               f"{len(evidence)} returns, declared value "
               f"{format_minor(total.declared_value_minor, manifest.declared_currency)} {manifest.declared_currency}.")
    click.echo(f"Wrote manifest.csv, manifest.json, manifest.pdf and {len(evidence)} evidence PDFs to {out}")


@main.command("fetch-rates")
@click.option("--url", default=None, help="Rates XML to fetch (default: ECB_RATES_URL, else the ECB daily reference rates).")
def fetch_rates(url: str | None) -> None:
    """Fetch the ECB daily exchange rates (units per 1 EUR) and store them with their date and source."""
    from datetime import UTC, datetime

    from customs.rates import RateError
    from portal.db import make_engine, session_scope
    from portal.norway import rates

    engine = make_engine(_settings().database_url)
    _require_migrated(engine)
    try:
        with session_scope(engine) as session:
            result = rates.fetch_and_store(session, datetime.now(UTC), url=url, actor="cli")
    except RateError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Rates of {result.rate_date.isoformat()} from {result.url}: {result.currencies} currencies, "
               f"{result.changed} new or changed.")


@main.command("import-orders")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate and report, but keep nothing.")
def import_orders_command(csv_file: str, dry_run: bool) -> None:
    """Import orders from CSV (one row per order line; format in portal/api/CSV_FORMAT.md). Safe to run again."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from portal.api.csv_import import CsvFormatError, import_orders
    from portal.db import make_engine, session_scope

    engine = make_engine(_settings().database_url)
    _require_migrated(engine)
    with open(csv_file, encoding="utf-8-sig", newline="") as fh:
        total = max(sum(1 for _ in fh) - 1, 0)
    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        with open(csv_file, encoding="utf-8-sig", newline="") as fh, session_scope(engine) as session, Progress(
                TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
                console=console, transient=False) as progress:
            task = progress.add_task("import", total=total)
            report = import_orders(session, fh, dry_run=dry_run, progress=lambda n: progress.advance(task, n))
            progress.update(task, completed=report.rows, total=report.rows)
            if dry_run:
                session.rollback()
    except CsvFormatError as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        raise click.ClickException("The file's header is not usable; nothing imported.") from exc
    elapsed = time.perf_counter() - started
    for error in report.errors:
        click.echo(str(error))
    verb = "would be" if dry_run else "were"
    click.echo(f"{report.rows} rows, {report.orders} orders in {elapsed:.1f} s: {report.created} {verb} created, "
               f"{report.updated} updated, {report.unchanged} unchanged; {report.rejected} orders "
               f"({report.rejected_rows} rows) rejected with {len(report.errors)} errors."
               + (" Dry run: nothing was saved." if dry_run else ""))
    if report.errors:
        sys.exit(1)


@main.command("export-orders")
@click.argument("csv_file", type=click.Path(dir_okay=False, writable=True))
def export_orders_command(csv_file: str) -> None:
    """Write all orders as CSV in the import-orders format."""
    from sqlmodel import Session

    from portal.api.csv_import import export_orders
    from portal.db import make_engine

    engine = make_engine(_settings().database_url)
    _require_migrated(engine)
    with Session(engine) as session, open(csv_file, "w", encoding="utf-8", newline="") as fh:
        rows = export_orders(session, fh)
    click.echo(f"{rows} order lines written to {csv_file}")


@main.command()
@click.option("--dry-run", is_flag=True, help="Count who would be anonymised; change nothing.")
def anonymise(dry_run: bool) -> None:
    """GDPR retention: anonymise customers with no business for RETENTION_MONTHS (also runs daily in the worker)."""
    from datetime import UTC, datetime

    from portal.db import make_engine, session_scope
    from portal.privacy.retention import anonymise_expired
    from portal.returns.labels import storage_for

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    with session_scope(engine) as session:
        report = anonymise_expired(session, datetime.now(UTC), settings.retention_months, storage_for(settings),
                                   dry_run=dry_run, actor="cli")
    since = f"no business since {report.cutoff.date().isoformat()}, RETENTION_MONTHS={report.months}"
    if dry_run:
        click.echo(f"{report.count} customers would be anonymised ({since}). Dry run: nothing changed.")
    else:
        click.echo(f"{report.count} customers anonymised ({since}); {report.documents_deleted} stored labels deleted.")


@main.command("expire-returns")
@click.option("--dry-run", is_flag=True, help="Count the returns that would expire; change nothing.")
def expire_returns_command(dry_run: bool) -> None:
    """Expire returns whose label was not dropped off within RETURN_EXPIRY_DAYS (also runs daily in the worker)."""
    from datetime import UTC, datetime

    from portal.db import make_engine
    from portal.returns.expiry import expire_returns

    settings = _settings()
    engine = make_engine(settings.database_url)
    _require_migrated(engine)
    report = expire_returns(engine, datetime.now(UTC), settings, dry_run=dry_run)
    rule = f"label not dropped off within RETURN_EXPIRY_DAYS={settings.return_expiry_days} days of registration"
    if dry_run:
        click.echo(f"{report.count} returns would expire ({rule}). Dry run: nothing changed.")
    else:
        click.echo(f"{report.count} returns expired ({rule}).")
    for rma in report.expired:
        click.echo(f"  {rma}")


@main.command()
@click.argument("output", type=click.Path(dir_okay=False))
def backup(output: str) -> None:
    """Copy the SQLite database to OUTPUT while the portal runs, and verify the copy (PostgreSQL: use pg_dump)."""
    from pathlib import Path

    from portal.backup import BackupError, backup_sqlite, pg_dump_advice

    settings = _settings()
    if not settings.is_sqlite:
        raise click.ClickException(pg_dump_advice(settings.database_url, output))
    try:
        report = backup_sqlite(settings.database_url, Path(output))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Backup written to {report.path}: {report.size_bytes / 1_000_000:.1f} MB ({report.size_bytes} bytes) "
               f"in {report.seconds:.1f} s; integrity_check ok; migration {report.revision or 'none'}.")
    width = max(map(len, report.counts), default=0)
    for table, rows in report.counts.items():
        click.echo(f"  {table:<{width}}  {rows:>10}")
    click.echo(f"  {'total':<{width}}  {sum(report.counts.values()):>10}")


if __name__ == "__main__":
    sys.exit(main())
