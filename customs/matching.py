"""Match return lines to the export goods items they left on."""

from __future__ import annotations

from collections.abc import Mapping

from customs.model import (
    AllocatedQuantity,
    Allocation,
    ExportDeclaration,
    GoodsItemKey,
    LineAssessment,
)


def remaining_quantity(
    mrn: str, goods_item_number: int, exported: int, already_returned: Mapping[GoodsItemKey, int]
) -> int:
    """Exported minus everything earlier returns already put against the item."""
    return max(0, exported - already_returned.get((mrn, goods_item_number), 0))


def allocate_return(
    declaration: ExportDeclaration,
    order_line_ref: str,
    quantity: int,
    already_returned: Mapping[GoodsItemKey, int],
) -> Allocation:
    """Spread `quantity` over the goods items carrying `order_line_ref`.

    An order line split over several goods items is filled in goods-item
    order, never beyond what each item has left; the rest is `unallocated`.
    """
    still_needed = quantity
    parts: list[AllocatedQuantity] = []
    for line in declaration.lines_for_order_line(order_line_ref):
        if still_needed == 0:
            break
        left = remaining_quantity(declaration.mrn, line.goods_item_number, line.quantity, already_returned)
        taken = min(left, still_needed)
        if taken:
            parts.append(AllocatedQuantity(declaration.mrn, line, taken))
            still_needed -= taken
    return Allocation(order_line_ref=order_line_ref, parts=tuple(parts), unallocated=still_needed)


def record_returned(
    already_returned: Mapping[GoodsItemKey, int], assessment: LineAssessment
) -> dict[GoodsItemKey, int]:
    """New running totals including the quantities this assessment allocated."""
    totals = dict(already_returned)
    if assessment.allocation is not None:
        for part in assessment.allocation.parts:
            totals[part.key] = totals.get(part.key, 0) + part.quantity
    return totals
