"""Norway returns under EU returned-goods relief: a pure library.

Rules, matching, manifests, documents, exchange rates and the collection
schedule. No database and no web framework: plain dataclasses in, results
and bytes out. See the module docstrings for the precise rules.
"""

from customs.eligibility import (
    add_years,
    assess_return_line,
    assess_return_lines,
    relief_deadline,
)
from customs.manifest import build_manifest, manifest_lines_for
from customs.matching import allocate_return, record_returned
from customs.model import (
    REIMPORT_PROCEDURE,
    RETURNED_GOODS_RELIEF,
    AllocatedQuantity,
    Allocation,
    ExportDeclaration,
    ExportLine,
    LineAssessment,
    Manifest,
    ManifestInputLine,
    ManifestLine,
    ManifestTotals,
    ReturnLineClaim,
    RuleResult,
)
from customs.mrn import (
    make_mrn,
    mrn_check_character,
    normalise_cn_code,
    validate_cn_code,
    validate_eori,
    validate_mrn,
)
from customs.rates import (
    RateError,
    RateTable,
    UnknownCurrencyError,
    convert_minor,
    cross_rate,
    fetch_ecb_rates,
    parse_ecb_xml,
)
from customs.schedule import StorageCharge, is_overdue_for_storage, next_cutoffs, storage_fee

__all__ = [
    "REIMPORT_PROCEDURE",
    "RETURNED_GOODS_RELIEF",
    "AllocatedQuantity",
    "Allocation",
    "ExportDeclaration",
    "ExportLine",
    "LineAssessment",
    "Manifest",
    "ManifestInputLine",
    "ManifestLine",
    "ManifestTotals",
    "RateError",
    "RateTable",
    "ReturnLineClaim",
    "RuleResult",
    "StorageCharge",
    "UnknownCurrencyError",
    "add_years",
    "allocate_return",
    "assess_return_line",
    "assess_return_lines",
    "build_manifest",
    "convert_minor",
    "cross_rate",
    "fetch_ecb_rates",
    "is_overdue_for_storage",
    "make_mrn",
    "manifest_lines_for",
    "mrn_check_character",
    "next_cutoffs",
    "normalise_cn_code",
    "parse_ecb_xml",
    "record_returned",
    "relief_deadline",
    "storage_fee",
    "validate_cn_code",
    "validate_eori",
    "validate_mrn",
]
