"""The real app over HTTP (Litestar's test client) on a real database, with demo data loaded."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from litestar.testing import TestClient
from sqlmodel import Session

from portal.app import create_app
from portal.demo import load_demo

CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
NONCE_RE = re.compile(r'name="form_nonce" value="([^"]+)"')


@pytest.fixture
def demo_engine(engine):
    with Session(engine) as session:
        load_demo(session, now=datetime.now(timezone.utc))
        session.commit()
    return engine


@pytest.fixture
def client(settings, demo_engine):
    app = create_app(settings, demo_engine)
    with TestClient(app, base_url="http://testserver.local") as c:
        yield c


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def nonce_of(html: str) -> str:
    match = NONCE_RE.search(html)
    assert match, "page has no form nonce"
    return match.group(1)


STAFF_PASSWORD = "correct horse battery staple"


def make_staff(engine, role: str, email: str | None = None):
    from portal.staff.accounts import create_staff

    with Session(engine) as session:
        user = create_staff(session, email or f"{role}@shop.example", role.title(), role, STAFF_PASSWORD, actor="test")
        session.commit()
        return user.id


def login(client, email: str, password: str = STAFF_PASSWORD):
    form = client.get("/staff/login")
    return client.post("/staff/login", data={"_csrf_token": csrf_of(form.text), "email": email, "password": password},
                       follow_redirects=False)


@pytest.fixture
def staff_client(settings, demo_engine):
    """A factory: staff_client("warehouse") is a client logged in with that role."""
    clients = []

    def make(role: str):
        make_staff(demo_engine, role, f"{role}-{len(clients)}@shop.example")
        c = TestClient(create_app(settings, demo_engine), base_url="http://testserver.local")
        c.__enter__()
        clients.append(c)
        response = login(c, f"{role}-{len(clients) - 1}@shop.example")
        assert response.status_code == 302, response.text
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def run_cli(args, env: dict, monkeypatch):
    """The `portal` command in-process with these environment variables (settings re-read before and after)."""
    from click.testing import CliRunner

    from portal.cli import main
    from portal.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()
