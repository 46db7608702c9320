"""fingerprint(): the portal's cache key for rendered labels."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone

import pytest

from labels import model
from labels.model import Address, LabelLine, NorwayInfo, fingerprint

LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # only its bytes matter here, not whether it draws


def _changed(value: object) -> object:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"x"
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond + 1)
    if isinstance(value, date):
        return date.fromordinal(value.toordinal() + 1)
    if value is None:
        return "x"
    raise TypeError(type(value))


def _variants(obj: object):
    """Every copy of obj with exactly one leaf field changed (recursing into nested dataclasses)."""
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            for inner in _variants(value):
                yield f"{field.name}.{inner[0]}", dataclasses.replace(obj, **{field.name: inner[1]})
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for path, inner in _variants(value[0]):
                yield f"{field.name}[0].{path}", dataclasses.replace(obj, **{field.name: (inner, *value[1:])})
            yield f"{field.name} dropped", dataclasses.replace(obj, **{field.name: value[:-1]})
        elif isinstance(value, tuple):
            yield f"{field.name} appended", dataclasses.replace(obj, **{field.name: (*value, "x")})
            if value:
                yield f"{field.name}[0]", dataclasses.replace(obj, **{field.name: (_changed(value[0]), *value[1:])})
        else:
            yield field.name, dataclasses.replace(obj, **{field.name: _changed(value)})


@pytest.fixture
def full(kit):
    """A label with every optional part set, so every field is exercised."""
    return kit.make_norway_label(
        sender=Address("Kari", ("Storgata 5",), "0155", "Oslo", "NO", "+4791234567"),
        recipient=Address("Retursenter", ("Alnabru",), "0668", "Oslo", "NO", "+4722000000"),
        logo=LOGO,
    )


def test_fingerprint_is_a_stable_sha256(full, kit):
    value = fingerprint(full)
    assert len(value) == 64 and int(value, 16) >= 0
    rebuilt = kit.make_norway_label(
        sender=Address("Kari", ("Storgata 5",), "0155", "Oslo", "NO", "+4791234567"),
        recipient=Address("Retursenter", ("Alnabru",), "0668", "Oslo", "NO", "+4722000000"),
        logo=bytes(LOGO),
    )
    assert rebuilt is not full and fingerprint(rebuilt) == value


def test_every_field_change_changes_the_fingerprint(full):
    base = fingerprint(full)
    seen = {base}
    variants = list(_variants(full))
    assert len(variants) > 30
    for path, variant in variants:
        value = fingerprint(variant)
        assert value != base, path
        seen.add(value)
    assert len(seen) == len(variants) + 1  # and no two changes collide


def test_a_new_logo_or_none_changes_the_fingerprint(kit):
    assert fingerprint(kit.make_label()) != fingerprint(kit.make_label(logo=LOGO))
    assert fingerprint(kit.make_label(logo=LOGO)) != fingerprint(kit.make_label(logo=LOGO[:-1] + b"!"))


def test_norway_none_versus_set(kit):
    assert fingerprint(kit.make_label()) != fingerprint(kit.make_label(norway=NorwayInfo(None, None, "ordinary")))


def test_layout_version_is_part_of_the_fingerprint(full, monkeypatch):
    before = fingerprint(full)
    monkeypatch.setattr(model, "LAYOUT_VERSION", model.LAYOUT_VERSION + "-next")
    assert fingerprint(full) != before


def test_same_instant_in_other_timezone_is_a_different_input(kit):
    utc = datetime(2025, 11, 22, 10, 30, tzinfo=timezone.utc)
    naive = utc.replace(tzinfo=None)
    assert fingerprint(kit.make_label(created_at=utc)) != fingerprint(kit.make_label(created_at=naive))


def test_line_order_matters(kit):
    lines = kit.make_lines(2)
    assert fingerprint(kit.make_label(lines=lines)) != fingerprint(kit.make_label(lines=lines[::-1]))
    assert isinstance(lines[0], LabelLine)
