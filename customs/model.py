"""Plain data passed into and out of the customs library.

Money is integer minor units plus an ISO 4217 code; weights are integer grams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from customs.mrn import normalise_cn_code, normalise_eori, normalise_mrn

EntryRoute = Literal["voec", "simplified", "ordinary"]
ENTRY_ROUTES: frozenset[str] = frozenset({"voec", "simplified", "ordinary"})

# Procedure 61 (re-import with release for free circulation) after 10
# (permanent export); F01 = relief from import duty for returned goods
# (Article 203 of the Union Customs Code).
REIMPORT_PROCEDURE = "6110"
RETURNED_GOODS_RELIEF = "F01"

GoodsItemKey = tuple[str, int]
"""(MRN, goods item number): identifies one line of an export declaration."""


@dataclass(frozen=True, slots=True)
class ExportLine:
    """One goods item of an export declaration.

    unit_value_minor is in the declaration's currency; net_weight_grams is the
    net mass declared for the whole goods item (all `quantity` units).
    """

    goods_item_number: int
    order_line_ref: str
    cn_code: str
    description: str
    quantity: int
    unit_value_minor: int
    origin_country: str
    net_weight_grams: int
    agricultural: bool = False

    def __post_init__(self) -> None:
        if self.goods_item_number < 1:
            raise ValueError(f"goods item numbers start at 1, got {self.goods_item_number}")
        if self.quantity < 1:
            raise ValueError(f"exported quantity must be positive, got {self.quantity}")
        if self.unit_value_minor < 0 or self.net_weight_grams < 0:
            raise ValueError("values and weights cannot be negative")
        object.__setattr__(self, "cn_code", normalise_cn_code(self.cn_code))

    def net_weight_for(self, quantity: int) -> int:
        """Net mass of `quantity` units, pro rata, rounded half up to the gram."""
        return (2 * self.net_weight_grams * quantity + self.quantity) // (2 * self.quantity)


@dataclass(frozen=True, slots=True)
class ExportDeclaration:
    """The EU export declaration the goods originally left on."""

    mrn: str
    export_date: date
    exporter_eori: str
    invoice_number: str
    invoice_date: date
    currency: str
    entry_route: EntryRoute
    voec_number: str | None
    lines: tuple[ExportLine, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mrn", normalise_mrn(self.mrn))
        object.__setattr__(self, "exporter_eori", normalise_eori(self.exporter_eori))
        object.__setattr__(self, "lines", tuple(sorted(self.lines, key=lambda l: l.goods_item_number)))
        if self.entry_route not in ENTRY_ROUTES:
            raise ValueError(f"entry_route must be one of {sorted(ENTRY_ROUTES)}, got {self.entry_route!r}")
        if self.entry_route == "voec" and not self.voec_number:
            raise ValueError("a VOEC entry needs the merchant's VOEC number")
        numbers = [line.goods_item_number for line in self.lines]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"duplicate goods item numbers in {self.mrn}: {numbers}")

    def lines_for_order_line(self, order_line_ref: str) -> tuple[ExportLine, ...]:
        """Goods items that carried this order line, in goods-item order."""
        return tuple(line for line in self.lines if line.order_line_ref == order_line_ref)


@dataclass(frozen=True, slots=True)
class ReturnLineClaim:
    """What the consumer (and later the inspection) says about one returned line.

    same_state: True/False once inspected, None while not yet inspected.
    """

    rma: str
    order_line_ref: str
    cn_code: str
    description: str
    quantity: int
    unit_value_minor: int
    currency: str
    reason: str
    gross_weight_grams: int | None = None
    same_state: bool | None = None

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValueError(f"returned quantity must be positive, got {self.quantity}")
        object.__setattr__(self, "cn_code", normalise_cn_code(self.cn_code))


@dataclass(frozen=True, slots=True)
class RuleResult:
    ok: bool
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class AllocatedQuantity:
    """Part of a returned quantity put against one export goods item."""

    mrn: str
    export_line: ExportLine
    quantity: int

    @property
    def key(self) -> GoodsItemKey:
        return (self.mrn, self.export_line.goods_item_number)


@dataclass(frozen=True, slots=True)
class Allocation:
    """How a returned quantity spreads over the export goods items.

    `unallocated` is what could not be placed because every matching goods
    item is already fully returned (or there was none).
    """

    order_line_ref: str
    parts: tuple[AllocatedQuantity, ...]
    unallocated: int

    @property
    def allocated(self) -> int:
        return sum(part.quantity for part in self.parts)


@dataclass(frozen=True, slots=True)
class LineAssessment:
    """Outcome of all returned-goods-relief rules for one return line."""

    claim: ReturnLineClaim
    matched_export_line: ExportLine | None
    mrn: str | None
    relief: Literal["F01"] | None
    procedure: str
    needs_attention: bool
    results: tuple[RuleResult, ...]
    allocation: Allocation | None = None

    @property
    def problems(self) -> tuple[RuleResult, ...]:
        return tuple(result for result in self.results if not result.ok)

    def result(self, code: str) -> RuleResult | None:
        return next((r for r in self.results if r.code == code), None)


@dataclass(frozen=True, slots=True)
class ManifestInputLine:
    """One line to declare: one returned quantity against one export goods item.

    mrn/goods_item_number are None for goods that matched no export line (they
    are still declared, without relief). unit_value_minor is in `currency`.
    """

    rma: str
    mrn: str | None
    goods_item_number: int | None
    cn_code: str
    description: str
    quantity: int
    unit_value_minor: int
    currency: str
    origin_country: str
    net_weight_grams: int
    gross_weight_grams: int | None
    reason: str
    additional_procedure: Literal["F01"] | None = RETURNED_GOODS_RELIEF
    procedure: str = REIMPORT_PROCEDURE
    needs_attention: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class ManifestLine:
    rma: str
    mrn: str | None
    goods_item_number: int | None
    cn_code: str
    description: str
    quantity: int
    currency: str
    value_minor: int
    declared_currency: str
    declared_value_minor: int
    rate: Decimal
    """Declared-currency units per one unit of `currency`."""
    rate_date: date
    rate_source: str
    origin_country: str
    net_weight_grams: int
    gross_weight_grams: int | None
    reason: str
    procedure: str
    additional_procedure: str | None
    needs_attention: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class ManifestTotals:
    """Sums over lines; gross weight sums only lines where it is known."""

    line_count: int
    quantity: int
    declared_value_minor: int
    net_weight_grams: int
    gross_weight_grams: int
    lines_without_gross_weight: int = 0


@dataclass(frozen=True, slots=True)
class Manifest:
    collection_ref: str
    generated_at: datetime
    """UTC-aware."""
    declared_currency: str
    rate_table_date: date
    rate_table_source: str
    importer_eori: str | None
    lines: tuple[ManifestLine, ...]
    totals_by_cn_code: dict[str, ManifestTotals] = field(default_factory=dict)
    grand_total: ManifestTotals = ManifestTotals(0, 0, 0, 0, 0)
    value_by_currency: dict[str, int] = field(default_factory=dict)
    """Sum of original values per original currency (informational)."""
