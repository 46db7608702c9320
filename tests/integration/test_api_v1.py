"""/api/v1 over HTTP: API keys and scopes, idempotent order upsert, bulk, returns with cursor pagination, problems."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlmodel import Session, select

from portal.api import keys
from portal.models import ApiKey, AuditEntry, ExportDeclaration, ExportLine, Order, OrderLine, Return, ReturnEvent
from portal.returns import policy, service
from tests.integration.conftest import csrf_of

VALID_MRN = None


def make_key(engine, scopes=("orders:write", "returns:read", "returns:write"), name="erp") -> str:
    with Session(engine) as s:
        _, full = keys.create_key(s, name, list(scopes), "test")
        s.commit()
    return full


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def order_body(email="kund@example.se", country="SE", lines=None, **extra) -> dict:
    body = {
        "customer": {"email": email, "first_name": "Test", "last_name": "Kund", "street": "Gatan 1", "postcode": "111 22",
                     "city": "Stockholm", "country": country, "language": "sv"},
        "currency": "SEK", "placed_at": "2026-11-01T10:00:00Z", "delivered_at": "2026-11-03T10:00:00Z",
        "shipping_paid_minor": 4900, "standard_shipping_minor": 4900,
        "lines": lines or [
            {"line_no": 1, "sku": "TS-1", "name": "T-shirt", "quantity": 2, "unit_price_minor": 29900, "vat_rate": "0.25",
             "hs_code": "610910", "origin_country": "PT", "net_weight_grams": 180},
            {"line_no": 2, "sku": "SO-1", "name": "Socks", "quantity": 1, "unit_price_minor": 9900, "vat_rate": "0.25"},
        ],
    }
    body.update(extra)
    return body


def demo_mrn(engine) -> str:
    with Session(engine) as s:
        return s.exec(select(ExportDeclaration.mrn).join(Order, Order.id == ExportDeclaration.order_id)
                      .where(Order.number == "NO-2001")).one()


def fresh_mrn(engine) -> str:
    """A valid export MRN not used by the demo data (same shape, another serial)."""
    from portal.demo import make_mrn
    used = set(Session(engine).exec(select(ExportDeclaration.mrn)).all())
    for serial in range(900, 999):
        mrn = make_mrn(26, "SE", serial, "B")
        if mrn not in used:
            return mrn
    raise AssertionError


def test_admin_creates_key_shown_once_and_revokes_it(staff_client, demo_engine):
    admin = staff_client("admin")
    form = admin.get("/staff/api-keys")
    assert form.status_code == 200
    bad = admin.post("/staff/api-keys", data={"_csrf_token": csrf_of(form.text), "name": "", "scopes": "nope"})
    assert bad.status_code == 400 and "Give the key a name" in bad.text and "Choose at least one scope" in bad.text
    created = admin.post("/staff/api-keys", data={"_csrf_token": csrf_of(form.text), "name": "Shop ERP",
                                                    "scopes": ["returns:read"]})
    assert created.status_code == 201
    full = re.search(r"<code>(rp_[a-z0-9]{8}_[A-Za-z0-9_-]{32})</code>", created.text).group(1)
    with Session(demo_engine) as s:
        row = s.exec(select(ApiKey)).one()
        assert row.scopes == ["returns:read"] and full[12:] not in row.key_hash and row.prefix == full[3:11]
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "api_key.create")).first() is not None
    assert full not in admin.get("/staff/api-keys").text  # shown once
    assert admin.get("/api/v1/returns", headers=auth(full)).status_code == 200
    with Session(demo_engine) as s:
        assert s.exec(select(ApiKey)).one().last_used_at is not None
    revoked = admin.post(f"/staff/api-keys/{row.id}/revoke", data={"_csrf_token": csrf_of(form.text)}, follow_redirects=False)
    assert revoked.status_code == 303
    refused = admin.get("/api/v1/returns", headers=auth(full))
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")
    assert admin.post("/staff/api-keys/99999/revoke", data={"_csrf_token": csrf_of(form.text)}).status_code == 404


def test_missing_wrong_and_underscoped_keys(client, demo_engine):
    read_only = make_key(demo_engine, ["returns:read"])
    assert client.get("/api/v1/returns").status_code == 401
    assert client.get("/api/v1/returns", headers={"Authorization": "Basic abc"}).status_code == 401
    forged = read_only[:12] + ("A" if read_only[12] != "A" else "B") + read_only[13:]
    response = client.get("/api/v1/returns", headers=auth(forged))
    assert response.status_code == 401 and response.json()["status"] == 401
    response = client.put("/api/v1/orders/X-1", json=order_body(), headers=auth(read_only))
    assert response.status_code == 403 and "orders:write" in response.json()["detail"]
    with Session(demo_engine) as s:
        assert s.exec(select(Order).where(Order.number == "X-1")).first() is None


def test_order_upsert_is_idempotent_and_updates(client, demo_engine):
    key = make_key(demo_engine)
    first = client.put("/api/v1/orders/API-1", json=order_body(), headers=auth(key))
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    again = client.put("/api/v1/orders/API-1", json=order_body(), headers=auth(key))
    assert again.status_code == 200 and again.json()["changed"] is False and again.json()["id"] == first.json()["id"]
    body = order_body()
    body["lines"][0]["quantity"] = 3
    body["lines"] = body["lines"][:1]
    changed = client.put("/api/v1/orders/API-1", json=body, headers=auth(key))
    assert changed.status_code == 200 and changed.json()["changed"] is True
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "API-1")).one()
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        assert [(l.line_no, l.quantity, str(l.vat_rate)) for l in lines] == [(1, 3, "0.2500")]
        assert lines[0].hs_code == "610910" and lines[0].net_weight_grams == 180
        assert order.delivered_at.year == 2026 and order.shipping_paid_minor == 4900


def test_norwegian_export_declaration(client, demo_engine):
    key = make_key(demo_engine)
    mrn = fresh_mrn(demo_engine)
    decl = {"mrn": mrn, "export_date": "2026-11-02", "exporter_eori": "SE5561234567", "invoice_number": "INV-9",
            "invoice_date": "2026-11-01", "currency": "NOK",
            "lines": [{"goods_item_number": 1, "line_no": 1, "cn_code": "61091000", "quantity": 2, "unit_value_minor": 29900,
                       "origin": "PT", "net_weight_grams": 360}]}
    body = order_body(country="NO", export_declaration=decl, currency="NOK")
    response = client.put("/api/v1/orders/NO-API-1", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    assert response.json()["export_declaration_mrn"] == mrn
    with Session(demo_engine) as s:
        d = s.exec(select(ExportDeclaration).where(ExportDeclaration.mrn == mrn)).one()
        assert [(e.goods_item_number, e.cn_code, e.quantity) for e in s.exec(select(ExportLine).where(ExportLine.declaration_id == d.id))] \
            == [(1, "61091000", 2)]
    # invalid MRN, CN code, unknown line, SE order with a declaration: all field errors, nothing stored
    bad = dict(decl, mrn="26SE000000000000X1", lines=[dict(decl["lines"][0], cn_code="6109", line_no=7)])
    response = client.put("/api/v1/orders/NO-API-2", json=order_body(country="NO", export_declaration=bad), headers=auth(key))
    assert response.status_code == 400
    assert any(e["field"].endswith("cn_code") for e in response.json()["errors"])
    bad = dict(decl, mrn="26SE000000000000X1")
    response = client.put("/api/v1/orders/NO-API-2", json=order_body(country="NO", export_declaration=bad), headers=auth(key))
    fields = {e["field"] for e in response.json()["errors"]}
    assert response.status_code == 400 and "export_declaration.mrn" in fields
    response = client.put("/api/v1/orders/SE-API-2", json=order_body(export_declaration=decl), headers=auth(key))
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "export_declaration"
    taken = dict(decl, mrn=demo_mrn(demo_engine))
    response = client.put("/api/v1/orders/NO-API-1", json=order_body(country="NO", export_declaration=taken), headers=auth(key))
    assert response.status_code == 409
    with Session(demo_engine) as s:
        assert s.exec(select(Order).where(Order.number.in_(["NO-API-2", "SE-API-2"]))).first() is None
        assert s.exec(select(ExportDeclaration).join(Order, Order.id == ExportDeclaration.order_id).where(Order.number == "NO-API-1")).one().mrn == mrn


@pytest.mark.parametrize("payload", [b"{", b"[]", b'"x"', b"null", b'{"customer": 5}', "{\"lines\": [\"\u00e9\"]}".encode(),
                                     b'{"customer": {}, "currency": "SEK", "placed_at": "yesterday", "lines": []}'])
def test_junk_json_is_a_4xx_problem(client, demo_engine, payload):
    key = make_key(demo_engine)
    for path, method in (("/api/v1/orders/J-1", "put"), ("/api/v1/orders/bulk", "post"), ("/api/v1/returns", "post")):
        response = getattr(client, method)(path, content=payload, headers={**auth(key), "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (path, payload, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_field_errors_name_the_field(client, demo_engine):
    key = make_key(demo_engine)
    body = order_body()
    body["lines"][0]["quantity"] = 0
    response = client.put("/api/v1/orders/F-1", json=body, headers=auth(key))
    problem = response.json()
    assert response.status_code == 400 and problem["type"] == "about:blank" and problem["status"] == 400
    assert any("lines[0].quantity" in e["field"] for e in problem["errors"]), problem
    body = order_body()
    body["lines"][1]["line_no"] = 1
    body["lines"][1]["discount_minor"] = 10**6
    response = client.put("/api/v1/orders/F-1", json=body, headers=auth(key))
    fields = {e["field"] for e in response.json()["errors"]}
    assert response.status_code == 400 and fields == {"lines[1].line_no", "lines[1].discount_minor"}
    body = order_body()
    body["lines"][1]["vat_rate"] = "1.5"
    response = client.put("/api/v1/orders/F-1", json=body, headers=auth(key))
    assert response.status_code == 400 and "lines[1].vat_rate" in {e["field"] for e in response.json()["errors"]}
    assert client.put("/api/v1/orders/bad%20number", json=order_body(), headers=auth(key)).status_code == 400


def test_bulk_stores_valid_items_and_lists_invalid_ones(client, demo_engine):
    key = make_key(demo_engine)
    bad_line = order_body()
    bad_line["lines"][0]["quantity"] = -1
    dup = order_body()
    dup["lines"][1]["line_no"] = 1
    items = [dict(order_body(), number="B-1"), dict(bad_line, number="B-2"), {"no": "number"},
             dict(order_body(), number="B-3"), dict(dup, number="B-4")]
    response = client.post("/api/v1/orders/bulk", json={"orders": items}, headers=auth(key))
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["accepted"] == 2 and out["rejected"] == 3
    statuses = [(r["index"], r["number"], r["status"]) for r in out["results"]]
    assert statuses == [(0, "B-1", 201), (1, "B-2", 400), (2, None, 400), (3, "B-3", 201), (4, "B-4", 400)]
    assert "lines[0].quantity" in out["results"][1]["errors"][0]["field"]
    with Session(demo_engine) as s:
        assert set(s.exec(select(Order.number).where(Order.number.like("B-%"))).all()) == {"B-1", "B-3"}
        assert len(s.exec(select(OrderLine).join(Order, Order.id == OrderLine.order_id).where(Order.number == "B-1")).all()) == 2
    too_many = client.post("/api/v1/orders/bulk", json={"orders": [{}] * 1001}, headers=auth(key))
    assert too_many.status_code == 400
    again = client.post("/api/v1/orders/bulk", json={"orders": items[:1]}, headers=auth(key)).json()
    assert again["results"][0]["status"] == 200 and again["results"][0]["changed"] is False


def _register(engine, number, nonce):
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=nonce), date.today())
        s.commit()
        return ret.rma


def test_returns_list_filters_and_cursor_pagination(client, demo_engine):
    key = make_key(demo_engine, ["returns:read"])
    rmas = [_register(demo_engine, n, f"nonce-{n}-0123456789") for n in ("SE-1001", "DK-3001", "FI-4001", "SE-1004", "NO-2001")]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/returns", params=params, headers=auth(key))
        assert page.status_code == 200, page.text
        seen += [r["rma"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == rmas
    only = client.get("/api/v1/returns", params={"order_number": "DK-3001"}, headers=auth(key)).json()["items"]
    assert [r["rma"] for r in only] == [rmas[1]]
    assert client.get("/api/v1/returns", params={"status": "closed"}, headers=auth(key)).json()["items"] == []
    future = client.get("/api/v1/returns", params={"created_after": "2999-01-01T00:00:00Z"}, headers=auth(key))
    assert future.status_code == 200 and future.json()["items"] == []
    for params in ({"limit": 201}, {"limit": 0}, {"cursor": "abc"}, {"created_after": "not a date"}):
        response = client.get("/api/v1/returns", params=params, headers=auth(key))
        assert response.status_code == 400 and response.json()["errors"], params
    one = client.get(f"/api/v1/returns/{rmas[0]}", headers=auth(key)).json()
    assert one["summary"]["order_number"] == "SE-1001" and one["lines"][0]["quantity"] == 1
    assert [e["type"] for e in one["events"]][:1] == ["return.registered"]
    assert client.get("/api/v1/returns/R0000000", headers=auth(key)).status_code == 404


def test_create_return_on_behalf_of_customer(client, demo_engine):
    key = make_key(demo_engine, ["returns:write", "returns:read"], name="Shop ERP")
    body = {"order_number": "SE-1001", "idempotency_key": "erp-ret-0001", "resolution": "refund",
            "lines": [{"line_no": 1, "quantity": 1, "reason": "too_small"}]}
    created = client.post("/api/v1/returns", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    rma = created.json()["summary"]["rma"]
    again = client.post("/api/v1/returns", json=body, headers=auth(key))
    assert again.status_code == 200 and again.json()["summary"]["rma"] == rma
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        event = s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id, ReturnEvent.type == "return.registered")).one()
        assert event.actor == "api:Shop ERP"
        assert len(s.exec(select(Return)).all()) == 1
    too_many = client.post("/api/v1/returns", json=dict(body, idempotency_key="erp-ret-0002",
                           lines=[{"line_no": 1, "quantity": 50, "reason": "too_small"}]), headers=auth(key))
    assert too_many.status_code == 400 and "quantity" in too_many.json()["errors"][0]["field"]
    unknown = client.post("/api/v1/returns", json=dict(body, order_number="NOPE-1"), headers=auth(key))
    assert unknown.status_code == 404
    no_line = client.post("/api/v1/returns", json=dict(body, idempotency_key="erp-ret-0003",
                          lines=[{"line_no": 99, "quantity": 1, "reason": "too_small"}]), headers=auth(key))
    assert no_line.status_code == 400 and no_line.json()["errors"][0]["field"] == "lines[0].line_no"
    read_only = make_key(demo_engine, ["returns:read"], name="reader")
    assert client.post("/api/v1/returns", json=body, headers=auth(read_only)).status_code == 403


def test_openapi_documents_the_api(client):
    schema = client.get("/schema/openapi.json").json()
    assert "/api/v1/orders/{number}" in schema["paths"] and "/api/v1/returns" in schema["paths"]
    assert "OrderIn" in str(schema["components"]["schemas"].keys()) or "OrderIn" in str(schema)


# --- schemathesis against the live app (uvicorn on loopback) --------------------------------------------------


@pytest.fixture
def live_api(settings, demo_engine):
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from portal.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, demo_engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base, make_key(demo_engine)
    server.should_exit = True
    thread.join(timeout=10)


def test_schemathesis_finds_no_5xx_and_no_schema_violation(live_api, demo_engine):
    """Every /api/v1 operation with generated (valid and invalid) input: no 5xx, answers match the schema."""
    schemathesis = pytest.importorskip("schemathesis")  # test extra: "schemathesis>=4.3,<5"
    from hypothesis import HealthCheck, given, settings as hsettings

    base, key = live_api
    schema = schemathesis.openapi.from_url(base + "/schema/openapi.json")
    schema.config.update(base_url=base, headers={"Authorization": f"Bearer {key}"})
    operations = [result.ok() for result in schema.include(path_regex="^/api/v1/").get_all_operations()]
    assert len(operations) == 5
    checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]
    for operation in operations:

        @given(case=operation.as_strategy())
        @hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(checks=checks)

        check()
    with Session(demo_engine) as session:  # the calls were authorised (the key was used), not only refused with 401
        assert session.exec(select(ApiKey)).one().last_used_at is not None
