from __future__ import annotations

import string

import pytest
from hypothesis import given, settings, strategies as st

from customs.mrn import (
    ISO6346_VALUES,
    make_mrn,
    mrn_check_character,
    normalise_cn_code,
    validate_cn_code,
    validate_eori,
    validate_mrn,
)

ALNUM = string.ascii_uppercase + string.digits


def test_letter_values_skip_multiples_of_eleven():
    assert ISO6346_VALUES["A"] == 10
    assert ISO6346_VALUES["B"] == 12  # 11 skipped
    assert ISO6346_VALUES["K"] == 21
    assert ISO6346_VALUES["L"] == 23  # 22 skipped
    assert ISO6346_VALUES["U"] == 32
    assert ISO6346_VALUES["V"] == 34  # 33 skipped
    assert ISO6346_VALUES["Z"] == 38
    assert not any(v % 11 == 0 for k, v in ISO6346_VALUES.items() if k.isalpha())


def test_check_character_by_hand():
    # "24SE000000000123A": non-zero values 2*1, 4*2, SE = 30*4 + 15*8, 1*2**14, 2*2**15, 3*2**16, A=10*2**16
    first17 = "24SE000000000123A"
    total = 2 * 1 + 4 * 2 + 30 * 4 + 15 * 8 + 1 * 2**13 + 2 * 2**14 + 3 * 2**15 + 10 * 2**16
    assert mrn_check_character(first17) == str(total % 11 % 10)


def test_known_public_example_validates():
    # Example MRNs from an independent open-source MRN generator's test suite.
    assert validate_mrn("22ITZXBZYUTJFLJXK6") == []
    assert mrn_check_character("22DK1V0QQK2S6J7TU") == "1"


def test_make_mrn_layout_and_validity():
    mrn = make_mrn(2024, "se", 123, "A")
    assert len(mrn) == 18
    assert mrn.startswith("24SE000000000123A")
    assert validate_mrn(mrn, expect_export=True) == []


def test_remainder_ten_becomes_zero():
    # Find a prefix whose weighted sum is 10 mod 11: its check character must be "0".
    for serial in range(10_000):
        first17 = f"24SE{serial:012d}A"
        total = sum(ISO6346_VALUES[c] << i for i, c in enumerate(first17))
        if total % 11 == 10:
            assert mrn_check_character(first17) == "0"
            return
    pytest.fail("no prefix with remainder 10 found")


def test_one_character_typo_is_detected():
    mrn = make_mrn(2024, "SE", "4F7K2M9Q1R3T", "A")
    typo = mrn[:9] + ("8" if mrn[9] != "8" else "6") + mrn[10:]
    assert validate_mrn(mrn) == []
    assert validate_mrn(typo) != []


@settings(max_examples=40, deadline=None)
@given(serial=st.text(alphabet=ALNUM, min_size=12, max_size=12))
def test_most_single_character_typos_are_detected(serial):
    # ISO 6346 cannot catch everything: a character whose value differs by 11
    # (1/B, 2/C, 9/K, ...) and remainders 0 vs 10 (both give "0") slip through.
    mrn = make_mrn(2023, "SE", serial, "B")
    typos = {mrn[:i] + c + mrn[i + 1 :] for i in range(4, 16) for c in ALNUM} - {mrn}
    caught = sum(1 for typo in typos if validate_mrn(typo))
    assert caught / len(typos) > 0.8


def test_known_blind_spot_values_eleven_apart():
    # "1" (value 1) and "B" (value 12) weigh the same modulo 11: documented limitation.
    mrn = make_mrn(2024, "SE", "100000000000", "A")
    assert validate_mrn(mrn.replace("SE1", "SEB", 1)) == []


def test_typo_message_names_the_check_character():
    mrn = make_mrn(2024, "SE", "ABCDEF123456", "A")
    typo = mrn[:5] + ("X" if mrn[5] != "X" else "Y") + mrn[6:]
    problems = validate_mrn(typo)
    assert any("Check character" in p for p in problems)


@pytest.mark.parametrize(
    ("mrn", "fragment"),
    [
        ("24SE000000000123A", "18 characters"),
        ("24SE000000000123A33", "18 characters"),
        ("24SE00000000012_A3", "letters A-Z and digits"),
        ("XXSE000000000123A3", "two-digit year"),
        ("24S1000000000123A3", "country code"),
        ("24SE000000000123Q3", "procedure category"),
    ],
)
def test_malformed_mrns(mrn, fragment):
    problems = validate_mrn(mrn)
    assert any(fragment in p for p in problems), problems


def test_spaces_and_lowercase_are_tolerated():
    mrn = make_mrn(2024, "SE", "ABCDEF123456", "A")
    assert validate_mrn(" " + mrn[:9].lower() + " " + mrn[9:] + " ") == []


def test_expect_export_refuses_transit_mrn():
    transit = make_mrn(2024, "SE", "ABCDEF123456", "J")
    assert validate_mrn(transit) == []
    problems = validate_mrn(transit, expect_export=True)
    assert len(problems) == 1 and "not an export declaration" in problems[0]


def test_make_mrn_rejects_bad_parts():
    with pytest.raises(ValueError):
        make_mrn(2024, "SE", "SHORT", "A")
    with pytest.raises(ValueError):
        make_mrn(2024, "S", 1, "A")
    with pytest.raises(ValueError):
        make_mrn(2024, "SE", 1, "Q")


@pytest.mark.parametrize("eori", ["SE5561234567", "se 556123-4567", "DE123456789012345", "FR12345678901234", "XI123456789000"])
def test_valid_eori(eori):
    assert validate_eori(eori) == []


@pytest.mark.parametrize(
    ("eori", "fragment"),
    [
        ("5561234567", "two-letter EU country code"),
        ("SE", "two-letter EU country code"),
        ("DE1234567890123456", "two-letter EU country code"),  # 16 characters after prefix
        ("NO123456789", "not an EU Member State"),
        ("GB123456789000", "not an EU Member State"),
        ("SE55612345670001", "exactly 10 digits"),  # supplementary digits are not part of the EORI
        ("SE556123456", "exactly 10 digits"),
    ],
)
def test_invalid_eori(eori, fragment):
    problems = validate_eori(eori)
    assert any(fragment in p for p in problems), problems


def test_cn_code_normalisation_and_validation():
    assert normalise_cn_code("6109 10 00") == "61091000"
    assert normalise_cn_code("6109.10.00") == "61091000"
    assert validate_cn_code("6109.10.00") == []
    assert validate_cn_code(61091000) == []
    assert validate_cn_code("610910") != []
    assert validate_cn_code("610910001") != []
    assert validate_cn_code("6109100A") != []
    assert validate_cn_code("６１０９１０００") != []  # full-width digits are not ASCII digits
