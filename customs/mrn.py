"""Customs identifiers: MRN, EORI and CN code checks.

MRN layout (Union Customs Code, Delegated Regulation (EU) 2015/2446 Annex B,
"Movement Reference Number"), 18 characters:

    positions 1-2   last two digits of the year of acceptance
    positions 3-4   ISO alpha-2 code of the Member State that issued it
    positions 5-16  unique identifier per year and country (alphanumeric)
    position 17     procedure category letter (see PROCEDURE_CATEGORIES)
    position 18     check character computed per ISO 6346 over positions 1-17

The check character: every character gets a numeric value (digits their own
value; letters A=10, B=12 ... skipping 11, 22 and 33, the multiples of 11),
each value is multiplied by 2**position (position 0 for the first character),
the sum is taken modulo 11 and that remainder modulo 10 (so 10 becomes 0).

The check catches most typos, not all: characters whose values differ by 11
(1/B, 2/C, ... 9/K, A/L, ...) weigh the same modulo 11, and remainders 0 and
10 both give "0". Treat a valid check character as "probably typed right".
"""

from __future__ import annotations

import re
import string
from datetime import date

MRN_LENGTH = 18

# Position 17 of a UCC MRN. Only A and B are export declarations; the others
# are listed so a wrong document type gives a precise message.
PROCEDURE_CATEGORIES: dict[str, str] = {
    "A": "export only",
    "B": "export and exit summary declaration",
    "C": "exit summary declaration only",
    "D": "re-export notification",
    "E": "dispatch of goods in relation with special fiscal territories",
    "J": "transit declaration only",
    "K": "transit declaration and exit summary declaration",
    "L": "transit declaration and entry summary declaration",
    "M": "proof of the customs status of Union goods",
    "R": "import declaration only",
    "S": "import declaration and entry summary declaration",
    "T": "entry summary declaration only",
    "U": "temporary storage declaration",
    "V": "introduction of goods in relation with special fiscal territories",
    "W": "temporary storage declaration and entry summary declaration",
}
EXPORT_PROCEDURE_CATEGORIES = frozenset({"A", "B"})

# EORI numbers are issued by EU Member States (XI = Northern Ireland under the
# Windsor Framework). Greece uses its ISO code GR in EORI, not the VAT prefix EL.
EU_EORI_PREFIXES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK XI".split()
)

_ALNUM_UPPER = frozenset(string.ascii_uppercase + string.digits)
_EORI_RE = re.compile(r"^([A-Z]{2})([A-Z0-9]{1,15})$")


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {d: int(d) for d in string.digits}
    value = 10
    for letter in string.ascii_uppercase:
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


ISO6346_VALUES: dict[str, int] = _letter_values()


def mrn_check_character(first17: str) -> str:
    """Check character (a digit) for the first 17 characters of an MRN (ISO 6346)."""
    if len(first17) != MRN_LENGTH - 1:
        raise ValueError(f"need exactly 17 characters, got {len(first17)}")
    total = 0
    for position, char in enumerate(first17.upper()):
        try:
            total += ISO6346_VALUES[char] << position
        except KeyError:
            raise ValueError(f"character {char!r} is not allowed in an MRN") from None
    return str(total % 11 % 10)


def normalise_mrn(mrn: str) -> str:
    """Upper-case and drop spaces and hyphens people add when copying MRNs."""
    return re.sub(r"[\s-]", "", mrn).upper()


def validate_mrn(mrn: str, *, expect_export: bool = False) -> list[str]:
    """Problems with an MRN as human-readable sentences; empty when valid.

    With expect_export=True the procedure category must be an export one
    (A or B), which is what a returned-goods claim must point at.
    """
    value = normalise_mrn(mrn)
    if len(value) != MRN_LENGTH:
        return [f"An MRN has {MRN_LENGTH} characters; this one has {len(value)}."]
    bad = sorted({c for c in value if c not in _ALNUM_UPPER})
    if bad:
        return [f"An MRN contains only letters A-Z and digits; found {' '.join(repr(c) for c in bad)}."]
    problems: list[str] = []
    if not value[:2].isdigit():
        problems.append(f"Positions 1-2 must be the two-digit year; found {value[:2]!r}.")
    if not value[2:4].isalpha():
        problems.append(f"Positions 3-4 must be a country code; found {value[2:4]!r}.")
    category = value[16]
    if category not in PROCEDURE_CATEGORIES:
        problems.append(f"Position 17 must be a procedure category letter; {category!r} is not one.")
    elif expect_export and category not in EXPORT_PROCEDURE_CATEGORIES:
        problems.append(
            f"Position 17 is {category!r} ({PROCEDURE_CATEGORIES[category]}), "
            "not an export declaration (A or B)."
        )
    expected = mrn_check_character(value[:17])
    if value[17] != expected:
        problems.append(
            f"Check character is {value[17]!r} but should be {expected!r}: "
            "the MRN was probably mistyped."
        )
    return problems


def make_mrn(year: int | date, country: str, serial: str | int, procedure_char: str = "A") -> str:
    """Build a valid MRN, for demo and test data.

    `serial` is the 12-character unique part; an int is zero-padded.
    """
    year_number = year.year if isinstance(year, date) else year
    serial_text = f"{serial:012d}" if isinstance(serial, int) else serial.upper()
    country_code = country.upper()
    if len(serial_text) != 12 or any(c not in _ALNUM_UPPER for c in serial_text):
        raise ValueError(f"serial must be 12 letters/digits, got {serial_text!r}")
    if len(country_code) != 2 or not country_code.isalpha():
        raise ValueError(f"country must be an ISO alpha-2 code, got {country!r}")
    if procedure_char.upper() not in PROCEDURE_CATEGORIES:
        raise ValueError(f"unknown procedure category {procedure_char!r}")
    first17 = f"{year_number % 100:02d}{country_code}{serial_text}{procedure_char.upper()}"
    return first17 + mrn_check_character(first17)


def normalise_eori(eori: str) -> str:
    return re.sub(r"[\s-]", "", eori).upper()


def validate_eori(eori: str) -> list[str]:
    """Problems with an EORI number; empty when valid.

    EORI = EU country code + up to 15 letters/digits. Swedish EORI numbers are
    exactly SE + 10 digits (the organisation or personal identity number);
    Swedish Customs' 2-digit supplementary number is not part of the EORI.
    """
    value = normalise_eori(eori)
    match = _EORI_RE.match(value)
    if match is None:
        return [
            "An EORI number is a two-letter EU country code followed by 1-15 letters or digits; "
            f"{eori!r} is not."
        ]
    country, rest = match.groups()
    problems: list[str] = []
    if country not in EU_EORI_PREFIXES:
        problems.append(f"{country} is not an EU Member State code, so it cannot prefix an EU EORI number.")
    if country == "SE" and not (len(rest) == 10 and rest.isdigit()):
        problems.append(f"A Swedish EORI number is SE followed by exactly 10 digits; got SE{rest}.")
    return problems


def normalise_cn_code(code: str | int) -> str:
    """Drop spaces and dots: '6109 10 00' and '6109.10.00' both become '61091000'."""
    return re.sub(r"[\s.]", "", str(code))


def validate_cn_code(code: str | int) -> list[str]:
    """Problems with a Combined Nomenclature code; empty when it is exactly 8 digits."""
    value = normalise_cn_code(code)
    if len(value) == 8 and value.isdigit() and value.isascii():
        return []
    return [f"A CN code has exactly 8 digits; {str(code)!r} does not."]
