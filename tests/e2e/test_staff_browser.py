"""Staff in a real browser: log in, scan a demo RMA at the receiving station, inspect, issue the refund, see the dashboard."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from portal.db import make_engine
from portal.models import Order, OrderLine, Refund, Return, ReturnLine, StaffUser
from portal.returns import policy, service
from portal.staff.accounts import create_staff

pytestmark = pytest.mark.e2e
PASSWORD = "browser-test-password"


def _register_demo_return(database_url: str) -> tuple[str, list[int]]:
    engine = make_engine(database_url)
    with Session(engine) as s:
        if s.exec(select(StaffUser).where(StaffUser.email == "admin@browser.example")).first() is None:
            create_staff(s, "admin@browser.example", "Browser Admin", "admin", PASSWORD, actor="test")
        order = s.exec(select(Order).where(Order.number == "DK-3001")).one()
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, resolution="refund", language="da", form_nonce="browser-staff-0123456789",
            lines=[policy.RequestedLine(l.id, "1", "too_small", "") for l in lines]), date.today())
        s.commit()
        line_ids = [rl.id for rl in s.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id))]
        return ret.rma, line_ids


def test_staff_receives_inspects_and_refunds(browser, live_server, live_database_url, shoot):
    rma, line_ids = _register_demo_return(live_database_url)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server)
    page = context.new_page()
    page.goto("/staff/login")
    page.locator("#email").fill("admin@browser.example")
    page.locator("#password").fill(PASSWORD)
    shoot(page, "login")
    page.locator("button[type=submit].primary").click()
    page.wait_for_url("**/staff/")

    page.goto("/staff/receive")
    scan = page.locator("#code")
    assert scan.evaluate("el => el === document.activeElement")  # ready for the scanner
    scan.type(rma.lower())  # a keyboard-wedge scanner types the code …
    scan.press("Enter")     # … and presses Enter
    page.wait_for_url(f"**/staff/returns/{rma}/inspect?*")
    shoot(page, "inspect")

    for line_id in line_ids:
        page.locator(f"#received_{line_id}").fill("1")
        page.locator(f"#condition_{line_id}").select_option("as_new")
        page.locator(f"input[name=acceptance_{line_id}][value=accepted]").check()
        page.locator(f"#disposition_{line_id}").select_option("restock")
    page.locator("form button[type=submit].primary").click()
    page.wait_for_load_state()
    shoot(page, "inspected")

    page.goto(f"/staff/returns/{rma}/refund")
    issue = page.locator("button[name=action][value=issue]")
    assert issue.is_visible()
    shoot(page, "refund-calculation")
    issue.click()
    page.wait_for_load_state()
    shoot(page, "refund-issued")

    with Session(make_engine(live_database_url)) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        refunds = s.exec(select(Refund).where(Refund.return_id == ret.id)).all()
        assert ret.arrived_at is not None
        assert len(refunds) == 1 and refunds[0].state == "requested" and refunds[0].amount_minor > 0

    page.goto("/staff/dashboard?country=DK")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.locator("svg.chart[role=img]").count() >= 3  # server-side SVG charts, no script needed
    reasons = page.locator("#reasons-heading").locator("xpath=ancestor::section[1]")
    assert "too_small" in reasons.inner_html() or "Too small" in reasons.inner_text()  # the reason just returned
    shoot(page, "dashboard")
    with page.expect_download() as csv_download:
        page.locator("a[href*='reasons.csv']").first.click()
    assert csv_download.value.suggested_filename.endswith(".csv")

    page.locator("#language-switch button").click()  # the back-office in Swedish
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Översikt" and page.locator("html").get_attribute("lang") == "sv"
    shoot(page, "dashboard-sv")
    context.close()
