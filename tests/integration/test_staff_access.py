"""Staff accounts: login, session rotation, logout, idle timeout, rate limit, and a walk of the route table."""

from __future__ import annotations

import re
import time

import pytest
from sqlmodel import Session, select

from portal.models import AuditEntry
from portal.staff.accounts import ROLES
from tests.integration.conftest import login, make_staff

ANONYMOUS_OK = {"/staff/login"}


def staff_routes(app):
    """Every (method, path, allowed roles) below /staff from the app's route table."""
    for route in app.routes:
        if not route.path.startswith("/staff") or route.path in ANONYMOUS_OK or route.path == "/staff/logout":
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                yield method, route.path, tuple(handler.opt.get("roles") or ("admin",))


def concrete(path: str) -> str:
    """Fill path parameters: an RMA-shaped string for str, 1 for int (the guard runs before any lookup)."""
    path = re.sub(r"\{\w+:int\}", "1", path)
    return re.sub(r"\{\w+:str\}", "R0000000", path)


def test_every_staff_route_denies_anonymous_and_wrong_roles(client, staff_client):
    app = client.app
    routes = list(staff_routes(app))
    assert len(routes) >= 5
    by_role = {role: staff_client(role) for role in ROLES}
    for method, path, allowed in routes:
        anon = client.request(method, concrete(path), follow_redirects=False)
        assert anon.status_code in (302, 401, 403), (method, path, anon.status_code)
        if anon.status_code == 302:
            assert anon.headers["location"].startswith("/staff/login")
        for role, c in by_role.items():
            if role == "admin" or role in allowed:
                continue
            denied = c.request(method, concrete(path), follow_redirects=False)
            assert denied.status_code == 403, (role, method, path, denied.status_code)


def test_login_rotates_the_session_id_and_logout_ends_it(client, demo_engine):
    make_staff(demo_engine, "support", "sofia@shop.example")
    client.get("/")  # any pre-login session id an attacker may have planted
    client.cookies.set("portal_session", "attacker-chosen-session-id", domain="testserver.local")
    response = login(client, "sofia@shop.example")
    assert response.status_code == 302 and response.headers["location"] == "/staff/"
    new_id = client.cookies.get("portal_session", domain="testserver.local")
    assert new_id and new_id != "attacker-chosen-session-id"
    assert client.get("/staff/").status_code == 200
    home = client.get("/staff/").text
    from tests.integration.conftest import csrf_of
    client.post("/staff/logout", data={"_csrf_token": csrf_of(home)})
    assert client.get("/staff/", follow_redirects=False).status_code == 302


def test_wrong_password_is_refused_logged_and_audited(client, demo_engine):
    make_staff(demo_engine, "warehouse", "wes@shop.example")
    response = login(client, "wes@shop.example", "not the password at all")
    assert response.status_code == 401 and "Wrong e-mail or password" in response.text
    assert 'value="wes@shop.example"' in response.text
    unknown = login(client, "nobody@shop.example", "whatever whatever")
    assert unknown.status_code == 401 and "Wrong e-mail or password" in unknown.text
    with Session(demo_engine) as s:
        failed = s.exec(select(AuditEntry).where(AuditEntry.action == "staff.login_failed")).all()
        assert {a.actor for a in failed} == {"wes@shop.example", "nobody@shop.example"}


def test_login_is_rate_limited(client, demo_engine):
    make_staff(demo_engine, "admin", "ada@shop.example")
    for _ in range(10):
        assert login(client, "ada@shop.example", "wrong password here").status_code == 401
    assert login(client, "ada@shop.example").status_code == 429  # even the right password waits


def test_idle_session_expires(client, demo_engine, settings, monkeypatch):
    import portal.staff.guards as guards

    make_staff(demo_engine, "support", "idle@shop.example")
    assert login(client, "idle@shop.example").status_code == 302
    assert client.get("/staff/", follow_redirects=False).status_code == 200
    later = time.time() + settings.session_idle_minutes * 60 + 5
    monkeypatch.setattr(guards.time, "time", lambda: later)  # a clock we control
    assert client.get("/staff/", follow_redirects=False).status_code == 302


def test_login_redirects_only_to_local_paths(client, demo_engine):
    make_staff(demo_engine, "support", "sam@shop.example")
    form = client.get("/staff/login?next=//evil.example/x")
    from tests.integration.conftest import csrf_of, STAFF_PASSWORD
    response = client.post("/staff/login", data={"_csrf_token": csrf_of(form.text), "email": "sam@shop.example",
                                                  "password": STAFF_PASSWORD, "next": "https://evil.example/"},
                           follow_redirects=False)
    assert response.headers["location"] == "/staff/"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_its_start_page(staff_client, role):
    assert f"logged in as {role}" in staff_client(role).get("/staff/").text
