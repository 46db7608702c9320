"""The status page's render-once cache: served from the cache, and every kind of change shows at once,
whether or not the code that made it bumped an updated_at (the changes below are raw SQL on purpose)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import Order, OrderLine, Return
from portal.returns import policy, service
from portal.returns.status_cache import CSRF_MARKER, find_by_status_link
from litestar.testing import TestClient

from portal.app import create_app
from tests.integration.conftest import csrf_of


def register(engine, skus: dict[str, int], nonce: str) -> Return:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        lines = {l.sku: l for l in s.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(lines[sku].id, str(qty), "too_small", "tight")
                                      for sku, qty in skus.items()],
            resolution="refund", language="en", form_nonce=nonce), date.today())
        s.commit()
        s.refresh(ret)
        return ret


def path_of(ret: Return) -> str:
    return f"/r/{ret.rma}/{ret.status_token}"


def run_sql(engine, sql: str, **params) -> None:
    with engine.begin() as conn:
        assert conn.execute(sa.text(sql), params).rowcount >= 1, sql


def test_second_view_comes_from_the_cache_with_the_visitors_csrf_token(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000001")
    pages = client.app.state.status_pages
    first = client.get(path_of(ret))
    hits = pages.hits
    second = client.get(path_of(ret))
    assert first.status_code == second.status_code == 200 and pages.hits == hits + 1
    assert CSRF_MARKER not in second.text and second.headers["content-type"].startswith("text/html")
    cancelled = client.post(f"{path_of(ret)}/cancel", data={"_csrf_token": csrf_of(second.text)},
                            follow_redirects=False)
    assert cancelled.status_code == 302  # the token in the cached page is this visitor's
    assert "This return was cancelled" in client.get(path_of(ret)).text


def test_a_wrong_token_is_not_served_from_the_cache(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000002")
    assert client.get(path_of(ret)).status_code == 200
    assert client.get(f"/r/{ret.rma}/{ret.status_token[:-2]}xx").status_code == 404


CHANGES = {
    "timeline event": ("advance", "Your parcel is on its way to us"),
    "refund added": ("INSERT INTO refund (return_id, amount_minor, currency, method, state, due_date, breakdown, "
                     "created_at, failure_reason, attempts) VALUES (:id, 12345, 'SEK', 'original_payment', 'due', "
                     "'2030-01-31', '{}', '2026-01-01 00:00:00', '', 0)", "SEK123.45"),
    "order line renamed": ("UPDATE order_line SET name = 'Renamed tee' WHERE sku = 'TS-100'", "Renamed tee"),
    "comment edited": ("UPDATE return_line SET comment = 'Edited by support' WHERE return_id = :id",
                       "Edited by support"),
    "return fee set": ("UPDATE merchant_policy SET return_fee_minor = '{\"SEK\": 4900}'", "Return label fee"),
    "status changed": ("UPDATE \"return\" SET status = 'arrived' WHERE id = :id",
                       "We have your parcel and are checking the items"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_to_what_the_page_shows_shows_at_once(client, demo_engine, change):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000003")
    how, expected = CHANGES[change]
    before = client.get(path_of(ret)).text
    assert client.get(path_of(ret)).text == before  # served from the cache now
    assert expected not in before
    if how == "advance":
        with Session(demo_engine) as s:
            service.advance(s, s.get(Return, ret.id), "in_transit", "carrier", "parcel.in_transit")
            s.commit()
    else:
        run_sql(demo_engine, how, **({"id": ret.id} if ":id" in how else {}))
    assert expected in client.get(path_of(ret)).text


def test_refund_paid_in_place_shows_at_once(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000004")
    run_sql(demo_engine, CHANGES["refund added"][0], id=ret.id)
    assert "paid on" not in client.get(path_of(ret)).text
    run_sql(demo_engine, "UPDATE refund SET state = 'issued', issued_at = :at WHERE return_id = :id",
            at=datetime(2026, 1, 5, 12, tzinfo=timezone.utc), id=ret.id)
    assert "paid on" in client.get(path_of(ret)).text


def test_another_return_of_the_order_changes_the_stamp(demo_engine):
    earlier = register(demo_engine, {"HD-200": 1}, "cache-nonce-00000005")
    later = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000006")
    stamp = lambda: find_by_status_link(demo_engine, later.rma, later.status_token).stamp  # noqa: E731
    first = stamp()
    assert stamp() == first  # nothing changed, same key
    run_sql(demo_engine, "UPDATE \"return\" SET status = 'cancelled' WHERE id = :id", id=earlier.id)
    after_cancel = stamp()
    run_sql(demo_engine, "UPDATE return_line SET quantity = 2, resolution = 'exchange' WHERE return_id = :id",
            id=earlier.id)
    assert len({first, after_cancel, stamp()}) == 3


def test_brand_change_shows_at_once(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000007")
    assert "Fjällräven Test AB" not in client.get(path_of(ret)).text
    run_sql(demo_engine, "UPDATE merchant_policy SET merchant_name = 'Fjällräven Test AB'")
    client.app.state.brand_cache.invalidate()  # what saving the brand does in the saving process
    assert "Fjällräven Test AB" in client.get(path_of(ret)).text


def test_language_switch_renders_afresh_and_sets_the_cookie(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000008")
    assert client.get(path_of(ret)).text.startswith("<!doctype html>\n<html lang=\"en\">")
    swedish = client.get(f"{path_of(ret)}?lang=sv")
    assert '<html lang="sv">' in swedish.text
    assert any(c.startswith("lang=sv") for c in swedish.headers.get_list("set-cookie"))


@contextmanager
def counted_statements(engine):
    statements: list[str] = []
    listener = lambda _conn, _cursor, sql, *_: statements.append(sql)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def test_an_unchanged_page_is_answered_without_reading_a_table(client, demo_engine):
    """While nothing is committed a kept page needs neither the rate-limit read nor the digest query: only
    the commit counter (SQLite: in memory; PostgreSQL: one snapshot read on a connection of its own)."""
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000009")
    first = client.get(path_of(ret))
    with counted_statements(demo_engine) as statements:
        again = [client.get(path_of(ret)) for _ in range(5)]
    assert all(r.status_code == 200 and r.text == first.text for r in again)
    assert statements == []
    with counted_statements(demo_engine) as statements:  # a commit: the next view reads again, once
        run_sql(demo_engine, "UPDATE order_line SET name = 'Renamed tee' WHERE sku = 'TS-100'")
        statements.clear()
        assert "Renamed tee" in client.get(path_of(ret)).text
        reads = len(statements)
        assert "Renamed tee" in client.get(path_of(ret)).text
    assert reads >= 2 and len(statements) == reads


def test_a_commit_by_another_process_shows_at_once(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000010")
    assert client.get(path_of(ret)).text == client.get(path_of(ret)).text  # kept
    url = demo_engine.url.render_as_string(hide_password=False)
    script = ("import sqlalchemy as sa, sys\n"
              "with sa.create_engine(sys.argv[1]).begin() as c:\n"
              "    c.execute(sa.text(\"UPDATE order_line SET name = 'Changed elsewhere' WHERE sku = 'TS-100'\"))\n")
    subprocess.run([sys.executable, "-c", script, url], check=True)
    assert "Changed elsewhere" in client.get(path_of(ret)).text


def test_a_wrong_token_is_refused_even_when_the_right_one_is_kept(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000011")
    assert client.get(path_of(ret)).status_code == 200
    assert client.get(path_of(ret)).status_code == 200  # now answered from memory
    for wrong in (ret.status_token[:-1] + ("A" if ret.status_token[-1] != "A" else "B"), ret.status_token[:-1], ""):
        assert client.get(f"/r/{ret.rma}/{wrong}").status_code == 404, wrong
    assert client.get(path_of(ret)).status_code == 200


def test_the_commit_counter_connections_close_with_the_app(settings, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000012")
    postgres = demo_engine.dialect.name == "postgresql"

    def snapshot_readers() -> int:  # connections that have read the snapshot, the counting one included
        with demo_engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND query LIKE '%pg_current_snapshot%'")).scalar_one()

    before = snapshot_readers() if postgres else 0
    app = create_app(settings, demo_engine)
    counter = app.state.db_memo._counter
    with TestClient(app, base_url="http://testserver.local") as client:
        assert client.get(path_of(ret)).status_code == 200 and client.get(path_of(ret)).status_code == 200
        if postgres:
            assert snapshot_readers() == before + 1  # the event loop's connection
        else:
            assert counter._conn is not None  # the file handle the counter reads on
    assert (snapshot_readers() == before) if postgres else counter._conn is None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_lost_snapshot_connection_falls_back_to_the_database_and_reconnects(client, demo_engine):
    ret = register(demo_engine, {"TS-100": 1}, "cache-nonce-00000013")
    first = client.get(path_of(ret))
    assert client.get(path_of(ret)).text == first.text

    def terminate_snapshot_readers() -> int:
        with demo_engine.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND query LIKE '%pg_current_snapshot%'")).all())

    assert terminate_snapshot_readers() == 1  # as a server restart or a proxy timeout would
    with counted_statements(demo_engine) as statements:
        fallback = client.get(path_of(ret))  # the read fails: nothing kept is used, the database answers
        assert fallback.status_code == 200 and fallback.text == first.text and len(statements) >= 2
        statements.clear()
        run_sql(demo_engine, "UPDATE order_line SET name = 'After the reconnect' WHERE sku = 'TS-100'")
        statements.clear()
        assert "After the reconnect" in client.get(path_of(ret)).text  # reconnected, and the change shows
        statements.clear()
        assert "After the reconnect" in client.get(path_of(ret)).text
        assert statements == []  # kept again
