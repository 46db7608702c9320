"""Admin user management over HTTP: create, change role, deactivate/reactivate, reset password, audit log."""

from __future__ import annotations

import re

from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.models import AuditEntry, StaffUser
from tests.integration.conftest import STAFF_PASSWORD, csrf_of, login

NEW_PASSWORD = "a brand new passphrase 42"


def user_by_email(engine, email: str) -> StaffUser | None:
    with Session(engine) as s:
        return s.exec(select(StaffUser).where(StaffUser.email == email)).first()


def audits(engine, action: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def post_form(client, page_url: str, action: str, fields: dict):
    page = client.get(page_url)
    assert page.status_code == 200, page.text
    return client.post(action, data={"_csrf_token": csrf_of(page.text), **fields}, follow_redirects=False)


def fresh_client(settings, engine) -> TestClient:
    c = TestClient(create_app(settings, engine), base_url="http://testserver.local")
    c.__enter__()
    return c


def test_admin_lists_and_creates_a_user_who_can_then_log_in(staff_client, demo_engine, settings):
    admin = staff_client("admin")
    listing = admin.get("/staff/users")
    assert listing.status_code == 200
    assert "admin-0@shop.example" in listing.text and "Last login" in listing.text
    response = post_form(admin, "/staff/users", "/staff/users", {
        "email": "  Petra@Shop.Example ", "name": "Petra Packer", "role": "warehouse", "password": "twelve chars ok"})
    assert response.status_code == 302
    user = user_by_email(demo_engine, "petra@shop.example")
    assert user is not None and user.role == "warehouse" and user.active and user.name == "Petra Packer"
    assert response.headers["location"] == f"/staff/users/{user.id}?done=created"
    assert "The user was created" in admin.get(response.headers["location"]).text
    [created] = [a for a in audits(demo_engine, "staff.created") if a.target == f"staff:{user.id}"]
    assert created.actor == "admin-0@shop.example" and created.after == {"email": "petra@shop.example", "role": "warehouse"}
    row = re.search(rf'<tr id="user-{user.id}">.*?</tr>', admin.get("/staff/users").text, re.S).group(0)
    assert "petra@shop.example" in row and "warehouse" in row and "active" in row and "never" in row

    petra = fresh_client(settings, demo_engine)
    try:
        assert login(petra, "petra@shop.example", "twelve chars ok").status_code == 302
        assert petra.get("/staff/receive").status_code == 200
    finally:
        petra.__exit__(None, None, None)
    row = re.search(rf'<tr id="user-{user.id}">.*?</tr>', admin.get("/staff/users").text, re.S).group(0)
    assert "never" not in row  # the last login is shown now


def test_create_errors_are_shown_next_to_the_fields(staff_client, demo_engine):
    admin = staff_client("admin")
    before = len(audits(demo_engine, "staff.created"))
    short = post_form(admin, "/staff/users", "/staff/users",
                      {"email": "not-an-email", "name": "Short Pw", "role": "support", "password": "too short"})
    assert short.status_code == 400
    assert 'id="new-email-error"' in short.text and "Enter a valid e-mail address" in short.text
    assert 'id="new-password-error"' in short.text and "at least 12 characters" in short.text
    assert 'value="not-an-email"' in short.text and 'value="Short Pw"' in short.text  # typed values kept
    assert "too short" not in short.text  # never echo a password
    bad_role = post_form(admin, "/staff/users", "/staff/users",
                         {"email": "x@shop.example", "name": "X", "role": "root", "password": "long enough password"})
    assert bad_role.status_code == 400 and 'id="new-role-error"' in bad_role.text
    duplicate = post_form(admin, "/staff/users", "/staff/users",
                          {"email": "ADMIN-0@shop.example", "name": "Dup", "role": "support", "password": "long enough password"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.text
    assert user_by_email(demo_engine, "x@shop.example") is None
    assert len(audits(demo_engine, "staff.created")) == before


def test_change_role_is_audited_and_takes_effect(staff_client, demo_engine):
    admin = staff_client("admin")
    support = staff_client("support")
    target = user_by_email(demo_engine, "support-1@shop.example")
    assert support.get("/staff/receive").status_code == 403
    response = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/role", {"role": "warehouse"})
    assert response.status_code == 302
    assert user_by_email(demo_engine, "support-1@shop.example").role == "warehouse"
    [entry] = audits(demo_engine, "staff.role_changed")
    assert (entry.actor, entry.target, entry.before, entry.after) == (
        "admin-0@shop.example", f"staff:{target.id}", {"role": "support"}, {"role": "warehouse"})
    assert support.get("/staff/receive").status_code == 200  # the guard reloads the role on every request
    page = admin.get(f"/staff/users/{target.id}")
    assert "staff.role_changed by admin-0@shop.example" in page.text
    bad = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/role", {"role": "superuser"})
    assert bad.status_code == 400 and 'id="role-error"' in bad.text
    assert user_by_email(demo_engine, "support-1@shop.example").role == "warehouse"


def test_admin_cannot_demote_or_deactivate_themselves(staff_client, demo_engine):
    admin = staff_client("admin")
    me = user_by_email(demo_engine, "admin-0@shop.example")
    page = admin.get(f"/staff/users/{me.id}")
    assert "This is your own account" in page.text
    demote = post_form(admin, f"/staff/users/{me.id}", f"/staff/users/{me.id}/role", {"role": "support"})
    assert demote.status_code == 400 and "cannot change your own role" in demote.text
    deactivate = post_form(admin, f"/staff/users/{me.id}", f"/staff/users/{me.id}/active", {"active": "0"})
    assert deactivate.status_code == 400 and "cannot deactivate your own account" in deactivate.text
    still = user_by_email(demo_engine, "admin-0@shop.example")
    assert still.role == "admin" and still.active
    assert audits(demo_engine, "staff.role_changed") == [] and audits(demo_engine, "staff.deactivated") == []
    assert admin.get("/staff/users").status_code == 200


def test_deactivated_users_session_stops_at_the_next_request(staff_client, demo_engine, settings):
    admin = staff_client("admin")
    warehouse = staff_client("warehouse")
    assert warehouse.get("/staff/receive").status_code == 200
    target = user_by_email(demo_engine, "warehouse-1@shop.example")
    response = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/active", {"active": "0"})
    assert response.status_code == 302
    assert "sessions stop working" in admin.get(response.headers["location"]).text
    assert user_by_email(demo_engine, "warehouse-1@shop.example").active is False
    cut = warehouse.get("/staff/receive", follow_redirects=False)
    assert cut.status_code == 302 and cut.headers["location"].startswith("/staff/login")
    assert warehouse.get("/staff/", follow_redirects=False).status_code == 302  # and it stays logged out
    [entry] = audits(demo_engine, "staff.deactivated")
    assert entry.actor == "admin-0@shop.example" and entry.before == {"active": True} and entry.after == {"active": False}

    other = fresh_client(settings, demo_engine)
    try:
        assert login(other, "warehouse-1@shop.example").status_code == 401  # cannot log in again
        response = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/active", {"active": "1"})
        assert response.status_code == 302 and user_by_email(demo_engine, "warehouse-1@shop.example").active
        [again] = audits(demo_engine, "staff.activated")
        assert again.before == {"active": False} and again.after == {"active": True}
        assert login(other, "warehouse-1@shop.example").status_code == 302
    finally:
        other.__exit__(None, None, None)


def test_reset_password(staff_client, demo_engine, settings):
    admin = staff_client("admin")
    staff_client("support")
    target = user_by_email(demo_engine, "support-1@shop.example")
    short = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/password", {"password": "short"})
    assert short.status_code == 400 and 'id="password-error"' in short.text and "at least 12" in short.text
    assert audits(demo_engine, "staff.password_changed") == []
    response = post_form(admin, f"/staff/users/{target.id}", f"/staff/users/{target.id}/password", {"password": NEW_PASSWORD})
    assert response.status_code == 302
    [entry] = audits(demo_engine, "staff.password_changed")
    assert entry.actor == "admin-0@shop.example" and entry.target == f"staff:{target.id}"
    assert NEW_PASSWORD not in str(entry.before) + str(entry.after)
    c = fresh_client(settings, demo_engine)
    try:
        assert login(c, "support-1@shop.example", STAFF_PASSWORD).status_code == 401
        assert login(c, "support-1@shop.example", NEW_PASSWORD).status_code == 302
    finally:
        c.__exit__(None, None, None)


def test_unknown_user_is_404_and_other_roles_are_refused(staff_client):
    admin = staff_client("admin")
    assert admin.get("/staff/users/999999").status_code == 404
    page = admin.get("/staff/users")
    missing = admin.post("/staff/users/999999/role", data={"_csrf_token": csrf_of(page.text), "role": "support"})
    assert missing.status_code == 404
    for role in ("warehouse", "support"):
        c = staff_client(role)
        assert c.get("/staff/users").status_code == 403
        home = c.get("/staff/")
        denied = c.post("/staff/users", data={"_csrf_token": csrf_of(home.text), "email": "evil@shop.example",
                                               "name": "Evil", "role": "admin", "password": "long enough password"})
        assert denied.status_code == 403
