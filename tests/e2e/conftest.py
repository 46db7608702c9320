"""A real server on loopback and a real headless Chromium (Debian's /usr/bin/chromium) via Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session

from portal.app import create_app
from portal.config import Settings
from portal.db import make_engine, migrate
from portal.demo import load_demo

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _require_browser() -> None:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    message = ("browser tests need Chromium at /usr/bin/chromium: run `make test` as root (it installs Debian's "
               "chromium package) or `sudo apt-get install chromium`, or set CHROMIUM_PATH")
    if os.environ.get("PORTAL_REQUIRE_E2E"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_database_url(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("e2e")
    return f"sqlite:///{tmp / 'portal.db'}"


@contextmanager
def serve_portal(database_url: str, files: Path, **overrides) -> Iterator[Settings]:
    """The real app on a real SQLite file with the demo data, served by uvicorn on loopback."""
    migrate(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        load_demo(session)
        session.commit()
    port = _free_port()
    settings = replace(Settings(), database_url=database_url, base_url=f"http://127.0.0.1:{port}",
                       storage_dir=files / "storage", mail_dir=files / "mail", **overrides)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield settings
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(live_database_url, tmp_path_factory):
    with serve_portal(live_database_url, tmp_path_factory.mktemp("e2e-files")) as settings:
        yield settings.base_url


@pytest.fixture(scope="session")
def portal_server():
    """`serve_portal` for tests that need a server of their own (other settings, their own rate-limit counters)."""
    return serve_portal


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser, live_server):
    """A phone-sized page (iPhone 12-ish viewport, touch, Swedish Accept-Language)."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=live_server, locale="sv-SE")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shoot(request):
    """Saves a full-page screenshot per step under test-artifacts/screenshots/<test>/."""
    folder = ARTIFACTS / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 100))

    def take(page, step: str) -> Path:
        path = folder / f"{next(counter):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
