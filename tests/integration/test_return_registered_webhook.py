from sqlmodel import Session, select

from portal.models import OutboxMessage, WebhookEndpoint
from tests.integration.test_consumer_flow import lines_of, open_order, submit


def test_registration_queues_the_return_registered_webhook_once(client, demo_engine):
    with Session(demo_engine) as s:
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", secret="s" * 32, event_types=["return.registered"]))
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/other", secret="t" * 32, event_types=["refund.issued"]))
        s.commit()
    html = open_order(client, "SE-1001", "anna.svensson@example.se")
    ts = lines_of(demo_engine, "SE-1001")["TS-100"].id
    fields = {f"qty_{ts}": "1", f"reason_{ts}": "too_small"}
    assert submit(client, "SE-1001", html, fields).status_code == 302
    assert submit(client, "SE-1001", html, fields).status_code == 302  # double submit
    with Session(demo_engine) as s:
        messages = s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "return.registered")).all()
    assert len(messages) == 1 and messages[0].destination.endswith("/hook")
    assert messages[0].payload["data"]["order_number"] == "SE-1001"
