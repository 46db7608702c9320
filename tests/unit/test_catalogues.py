"""Every consumer-facing message is translated in every language, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = sorted(ROOT.glob("portal/locale/*/LC_MESSAGES/messages.po")) + sorted(ROOT.glob("labels/locale/*/LC_MESSAGES/labels.po"))
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_all_five_languages_exist_for_both_domains():
    langs = {(p.parts[-3], p.stem) for p in CATALOGUES}
    assert langs == {(l, d) for l in ("sv", "nb", "da", "fi", "en") for d in ("messages", "labels")}


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: f"{p.parts[-3]}-{p.stem}")
def test_catalogue_is_complete_and_not_fuzzy(path):
    problems = catalogue_problems(path)
    assert not problems, "\n".join(problems)


def catalogue_problems(path: Path) -> list[str]:
    """Fuzzy and untranslated messages, and translations whose placeholders differ from the msgid's."""
    with path.open("rb") as fh:
        catalog = read_po(fh)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {ids[0]!r}")
        for s in strings:
            if not s:
                problems.append(f"untranslated: {ids[0]!r}")
            elif set(PLACEHOLDER.findall(s)) != set(PLACEHOLDER.findall(" ".join(ids))):
                problems.append(f"placeholders differ: {ids[0]!r}")
    return problems


def test_every_page_message_is_in_the_catalogue():
    method_map = [("templates/pages/**.html", "jinja2"), ("portal/**.py", "python")]
    found = {item[2] for item in _extract(method_map)}
    with (ROOT / "portal/locale/sv/LC_MESSAGES/messages.po").open("rb") as fh:
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    missing = sorted(m if isinstance(m, str) else m[0] for m in found if (m if isinstance(m, str) else m[0]) not in known)
    assert not missing, f"run `make update-messages` and translate: {missing}"


def _extract(method_map):
    options = {"templates/pages/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    return extract_from_dir(str(ROOT), method_map, options, keywords=keywords)
