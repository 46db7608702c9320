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
