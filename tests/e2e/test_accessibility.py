"""WCAG 2.1 AA on the consumer pages: axe-core (npm, pinned in package-lock.json) injected into each page in a real
Chromium, at a phone and a desktop viewport; zero serious or critical violations, and a keyboard walk of the find-order
form. Moderate and minor findings are printed (pytest -s or the failure report shows them) but do not fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from portal.db import make_engine
from portal.demo import load_demo_refunds
from portal.models import Order, Refund, Return
from portal.notify import unsubscribe

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")
VIEWPORTS = {
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
# A different order per viewport, so the two runs do not share returned quantities (and cover two more languages).
ORDER_FOR = {"phone": ("NO-2002", "5003", "nb"), "desktop": ("FI-4001", "aino.virtanen@example.fi", "fi")}


@pytest.fixture(scope="module")
def axe_script() -> Path:
    if AXE.exists():
        return AXE
    message = ("the accessibility tests need axe-core in node_modules/: run `make test` (it runs `npm ci`) "
               "or `npm ci --no-audit --no-fund` at the repository root")
    if os.environ.get("PORTAL_REQUIRE_E2E"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def a11y_server(portal_server, axe_script, tmp_path_factory):
    """A server of this module's own (the demo data, default settings but a roomier look-up limit): its order
    look-ups and returns do not use up the shared server's rate limit or its demo orders."""
    files = tmp_path_factory.mktemp("e2e-a11y")
    with portal_server(f"sqlite:///{files / 'portal.db'}", files, lookup_rate_limit=50) as settings:
        yield settings


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request) -> str:
    return request.param


@pytest.fixture
def page(browser, a11y_server, viewport):
    # The portal's CSP allows scripts only from its own files ("script-src 'self'"), and Playwright's add_script_tag
    # inserts the file's text as an inline script, which that CSP blocks: this test context bypasses the CSP. The
    # pages themselves are served unchanged, and tests/integration/test_security_headers.py checks the header.
    context = browser.new_context(base_url=a11y_server.base_url, locale="sv-SE", bypass_csp=True, **VIEWPORTS[viewport])
    page = context.new_page()
    yield page
    context.close()


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            why = (node.get("failureSummary") or "").strip().splitlines()
            lines.append(f"    {' '.join(map(str, node['target']))}: {why[-1].strip() if why else ''}")
    return "\n".join(lines)


def run_axe(page) -> dict:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)


def audit(page, shoot, step: str) -> dict:
    """Screenshot, then axe-core on the page as it is; fails on serious or critical violations."""
    shoot(page, step)
    result = run_axe(page)
    assert result["passes"], f"{step}: axe checked nothing on {page.url}"
    violations = result["violations"]
    if violations:
        print(f"\naxe on {step} ({page.url}):\n{describe(violations)}")
    if result["incomplete"]:  # what axe could not decide by itself (e.g. text over an image): for a person to look at
        print(f"\naxe on {step}, needs review: {', '.join(sorted(v['id'] for v in result['incomplete']))}")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{step}: the page scrolls sideways by {overflow}px (WCAG 1.4.10 reflow)"
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{step} ({page.url}) has serious/critical WCAG violations:\n{describe(violations)}"
    return result


def find_order(page, number: str, credential: str) -> None:
    page.goto("/")
    page.locator("#order_number").fill(number)
    page.locator("#credential").fill(credential)
    page.locator("form button[type=submit]").click()


def test_axe_reports_what_it_should(page):
    """The harness itself: a field without a label and grey-on-white text are found and fail."""
    page.goto("/")
    page.evaluate("""() => {
        const main = document.querySelector('main');
        main.insertAdjacentHTML('beforeend', '<input id="unlabelled"><p style="color:#bbb;background:#fff">faint</p>');
    }""")
    result = run_axe(page)
    found = {v["id"]: v for v in result["violations"]}
    assert "label" in found and found["label"]["impact"] in BLOCKING, describe(result["violations"])
    assert "color-contrast" in found and found["color-contrast"]["impact"] in BLOCKING, describe(result["violations"])
    assert ["#unlabelled"] in [node["target"] for node in found["label"]["nodes"]]


def test_find_order_page_and_language_switcher(page, shoot):
    page.goto("/?lang=sv")
    assert page.locator("html").get_attribute("lang") == "sv"
    audit(page, shoot, "find-order-sv")
    switcher = page.get_by_role("navigation", name="Språk")
    assert switcher.locator("[aria-current]").get_attribute("lang") == "sv"
    switcher.locator("a[hreflang=nb]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "nb"
    assert page.get_by_role("navigation", name="Språk").locator("[aria-current]").get_attribute("lang") == "nb"
    audit(page, shoot, "find-order-nb")


def test_find_order_errors(page, shoot):
    page.goto("/?lang=sv")
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state()
    for field in ("order_number", "credential"):
        box = page.locator(f"#{field}")
        assert box.get_attribute("aria-invalid") == "true"
        described = box.get_attribute("aria-describedby").split()
        assert any(page.locator(f"#{ref}.error").count() == 1 for ref in described), described
    audit(page, shoot, "find-order-missing-fields")

    find_order(page, "SE-1001", "someone-else@example.se")
    assert page.locator("#form-error").is_visible()
    for field in ("order_number", "credential"):
        assert "form-error" in page.locator(f"#{field}").get_attribute("aria-describedby").split()
    audit(page, shoot, "find-order-not-found")


def test_choose_lines_confirmation_and_status(page, shoot, viewport):
    number, credential, lang = ORDER_FOR[viewport]
    find_order(page, number, credential)
    page.wait_for_url(f"**/orders/{number}")
    assert page.locator("html").get_attribute("lang") == lang
    audit(page, shoot, "choose-lines")

    page.locator("form button[type=submit].primary").click()  # nothing chosen
    page.wait_for_load_state()
    assert page.locator("#form-error").is_visible() and _focused(page) == "form-error"
    audit(page, shoot, "choose-lines-nothing-chosen")

    first = page.locator("li.line").first
    quantity = first.locator("input[type=number]")
    quantity.fill("1")
    page.locator("form button[type=submit].primary").click()  # a quantity without a reason
    page.wait_for_load_state()
    reason = page.locator("li.line").first.locator("select")
    assert reason.get_attribute("aria-invalid") == "true"
    error_id = reason.get_attribute("aria-describedby")
    assert page.locator(f"#{error_id}").is_visible()
    assert page.locator(f"#form-error a[href='#{reason.get_attribute('id')}']").count() == 1
    audit(page, shoot, "choose-lines-reason-missing")

    reason.select_option(index=1)
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url("**/r/**")
    audit(page, shoot, "confirmation")

    page.goto(page.url.split("?")[0])
    assert page.locator(".status-now").is_visible()
    audit(page, shoot, "status-registered")


@pytest.fixture(scope="module")
def refunded_status_path(a11y_server) -> str:
    """The status link of a demo return whose refund has been paid."""
    engine = make_engine(a11y_server.database_url)
    with Session(engine) as session:
        load_demo_refunds(session)
        session.commit()
        ret = session.exec(select(Return).join(Order, Order.id == Return.order_id).join(Refund, Refund.return_id == Return.id)
                           .where(Order.number == "SE-1002", Refund.state == "issued")).first()
        assert ret is not None, "the demo refunds did not produce a paid refund for SE-1002"
        return f"/r/{ret.rma}/{ret.status_token}"


def test_status_page_with_a_refund(page, shoot, refunded_status_path):
    page.goto(f"{refunded_status_path}?lang=sv")
    assert page.locator("section.refund").is_visible()
    audit(page, shoot, "status-refunded")


def test_late_order_and_earlier_returns(page, shoot, refunded_status_path):
    find_order(page, "SE-1003", "252 21")  # delivered 60 days ago: outside the return period
    page.wait_for_url("**/orders/SE-1003")
    assert page.locator(".notice").is_visible()
    audit(page, shoot, "choose-lines-late-order")

    find_order(page, "SE-1002", "erik.lindqvist@example.se")  # a gift card, and jeans already returned
    page.wait_for_url("**/orders/SE-1002")
    assert page.locator("section.existing a").count() >= 1 and page.locator("li.line.blocked").count() >= 2
    audit(page, shoot, "choose-lines-blocked-and-earlier-returns")


def test_error_pages(page, shoot):
    response = page.goto("/no-such-page?lang=sv")
    assert response.status == 404
    audit(page, shoot, "error-404")

    page.goto("/?lang=sv")
    page.locator("#order_number").fill("SE-1001")
    page.locator("#credential").fill("anna.svensson@example.se")
    page.locator("input[name=_csrf_token]").evaluate("input => input.value = 'tampered'")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("form button[type=submit]").click()
    assert posted.value.status == 403
    page.wait_for_load_state()
    audit(page, shoot, "error-403")


@pytest.fixture(scope="module")
def throttled_server(portal_server, tmp_path_factory):
    """A server of its own whose limits are already spent, so its 429 pages leave the other servers' counters alone."""
    files = tmp_path_factory.mktemp("e2e-throttled")
    with portal_server(f"sqlite:///{files / 'portal.db'}", files, lookup_rate_limit=0, status_miss_limit=0) as settings:
        yield settings.base_url


def test_rate_limited_pages(page, shoot, throttled_server):
    response = page.goto(f"{throttled_server}/r/R0000000/not-a-token?lang=sv")
    assert response.status == 429
    audit(page, shoot, "error-429")

    page.goto(f"{throttled_server}/?lang=sv")
    page.locator("#order_number").fill("SE-1001")
    page.locator("#credential").fill("anna.svensson@example.se")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("form button[type=submit]").click()
    assert posted.value.status == 429
    page.wait_for_load_state()
    assert page.locator("#form-error").is_visible()
    audit(page, shoot, "find-order-429")


def _focused(page) -> str:
    return page.evaluate("""() => {
        const e = document.activeElement;
        return e === document.body || !e ? 'body' : (e.id || e.getAttribute('href') || e.tagName.toLowerCase() + '.' + e.className);
    }""")


def test_keyboard_order_and_error_summary(page, shoot):
    page.goto("/?lang=sv")
    assert _focused(page) == "body", "nothing should take focus before the visitor does"
    stops = []
    for _ in range(20):
        page.keyboard.press("Tab")
        stops.append(_focused(page))
        if stops[-1] == "button.primary":
            break
    assert stops[0] == "#main", f"the skip link is not the first stop: {stops}"
    assert stops[-3:] == ["order_number", "credential", "button.primary"], f"tab order: {stops}"
    page.keyboard.press("Enter")  # submit the empty form with the keyboard
    page.wait_for_load_state()
    summary = page.locator("#form-error")
    assert summary.get_attribute("role") == "alert"
    assert _focused(page) == "form-error", "after a failed submit focus moves to the error summary"
    links = summary.locator("a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == ["#order_number", "#credential"]
    shoot(page, "error-summary-focused")
    page.keyboard.press("Tab")
    assert _focused(page) == "#order_number"
    page.keyboard.press("Enter")  # follow the summary's link: the field gets focus, ready to type
    assert _focused(page) == "order_number"
    page.keyboard.type("SE-1001")
    assert page.locator("#order_number").input_value() == "SE-1001"
    shoot(page, "field-focused-from-summary")


def test_unsubscribe_page(page, shoot, a11y_server):
    """The consumer's unsubscribe page (the link in marketing mail), before and after the button."""
    with Session(make_engine(a11y_server.database_url)) as session:
        customer_id = session.exec(select(Order.customer_id).where(Order.number == "SE-1003")).one()
    token = unsubscribe.make_token(a11y_server.secret_key, customer_id)
    response = page.goto(f"{unsubscribe.PATH}/{token}?lang=sv")
    assert response.status == 200
    audit(page, shoot, "unsubscribe")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**done=1")
    audit(page, shoot, "unsubscribed")
