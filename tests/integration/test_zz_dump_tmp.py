from datetime import datetime, UTC
from sqlmodel import Session
from portal.demo import load_demo_norway

def test_dump(staff_client, demo_engine):
    with Session(demo_engine) as s:
        ref = load_demo_norway(s, datetime.now(UTC)); s.commit()
    c = staff_client("admin")
    for url in ["/staff/norway/", f"/staff/norway/collections/{ref}", "/staff/norway/rates?amount=100&from=NOK&to=SEK", "/staff/norway/settings"]:
        r = c.get(url)
        open("/tmp/dump" + url.replace("/", "_").replace("?", "_") + ".html", "w").write(r.text)
