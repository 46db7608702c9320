"""The back-office in Swedish: every staff message is in the `staff` catalogue, translated, with the same
placeholders; and a translated message is shown safely (escaped, values filled in, English left alone)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import DictLoader

from portal import i18n
from portal.staff.vocabulary import TERMS, term
from portal.web.templating import build_environment
from tests.unit.test_catalogues import catalogue_problems

ROOT = Path(__file__).resolve().parents[2]
STAFF_PO = ROOT / "portal/locale/sv/LC_MESSAGES/staff.po"


def staff_messages() -> set[str]:
    """What `make extract-messages` puts in staff.pot: `_()` in templates/staff, staff_text() in portal/."""
    method_map = [("templates/staff/**.html", "jinja2"), ("portal/**.py", "python")]
    options = {"templates/staff/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
    found = extract_from_dir(str(ROOT), method_map, options, keywords={"_": None, "ngettext": (1, 2), "staff_text": None})
    return {item[2] if isinstance(item[2], str) else item[2][0] for item in found}


def catalogue_ids() -> set[str]:
    with STAFF_PO.open("rb") as fh:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}


def test_the_swedish_staff_catalogue_is_complete_and_not_fuzzy():
    problems = catalogue_problems(STAFF_PO)
    assert not problems, "\n".join(problems)


def test_every_back_office_message_is_in_the_swedish_catalogue():
    found = staff_messages()
    assert {"Receive parcels", "Returns", "Wrong e-mail or password.", "label issued"} <= found  # extraction works
    missing = sorted(found - catalogue_ids())
    assert not missing, f"run `make update-messages` and translate in portal/locale/sv/LC_MESSAGES/staff.po: {missing}"


def test_every_stored_code_has_a_swedish_name():
    for kind, names in TERMS.items():
        for code, name in names.items():
            assert name.translated("sv") != name.msgid or name.msgid in ("RMA", "support", "webhook"), (kind, code)
            assert str(term(kind, code)) == name.msgid  # English: the code as staff always read it
    assert term("status", "some_new_status") == "some new status"


def test_staff_text_reads_as_english_and_translates_with_its_values():
    message = i18n.staff_text("Return %(rma)s is %(status)s; its inspection can no longer be changed.",
                              rma="R4KX9P2T", status=term("status", "closed"))
    assert message == "Return R4KX9P2T is closed; its inspection can no longer be changed."
    assert message.translated("sv") == "Retur R4KX9P2T har status avslutad; inspektionen kan inte längre ändras."
    assert message.translated("en") == str(message)
    assert message.translated("fi") == str(message)  # the back-office speaks English or Swedish only


def test_staff_templates_translate_and_escape_run_time_messages():
    env = build_environment(ROOT / "templates")
    env.loader = DictLoader({
        "staff/page.html": "{{ _('Returns') }}|{{ _(message) }}|{{ _('Hello %(name)s', name=who) }}|{{ code | term('status') }}",
        "pages/page.html": "{{ _('Returns') }}|{{ _(message) }}",
    })
    message = i18n.staff_text("No return found for '%(code)s'", code="<script>50%")
    staff_sv = env.get_template("staff/page.html").render(lang="sv", message=message, who="<b>Åsa</b>", code="label_issued")
    assert staff_sv == ("Returer|Ingen retur hittades för &#39;&lt;script&gt;50%&#39;|Hej &lt;b&gt;Åsa&lt;/b&gt;"
                        "|etikett skapad")
    staff_en = env.get_template("staff/page.html").render(lang="en", message=message, who="Ada", code="label_issued")
    assert staff_en == "Returns|No return found for &#39;&lt;script&gt;50%&#39;|Hello Ada|label issued"
    # A consumer page reads the consumer catalogue, but a staff message keeps its own (staff) translation.
    consumer = env.get_template("pages/page.html").render(lang="sv", message="100% <b>sure</b>")
    assert consumer.split("|")[1] == "100% &lt;b&gt;sure&lt;/b&gt;"


def test_the_staff_language_before_log_in_follows_the_browser():
    assert i18n.pick_staff_language("sv-SE,sv;q=0.9,en;q=0.8") == "sv"
    assert i18n.pick_staff_language("nb-NO,nb;q=0.9,sv;q=0.5") == "sv"
    assert i18n.pick_staff_language("de-DE,de;q=0.9") == "en"
    assert i18n.pick_staff_language("") == "en"
