"""Return header states and the forward-only moves between them (DESIGN.md, lifecycle)."""

from __future__ import annotations

ORDER = (
    "pending_approval",
    "registered",
    "label_issued",
    "dropped_off",
    "in_transit",
    "at_consolidation",
    "collected",
    "customs_cleared",
    "arrived",
    "inspected",
    "resolved",
    "closed",
)
TERMINAL = frozenset({"cancelled", "expired", "rejected", "closed"})
SIDE_STATES = frozenset({"needs_attention"})
_RANK = {state: i for i, state in enumerate(ORDER)}
CANCELLABLE = frozenset({"pending_approval", "registered", "label_issued"})
EXPIRABLE = frozenset({"registered", "label_issued"})  # a label that was never used; never after a carrier scan


def can_advance(current: str, target: str) -> bool:
    """Only forward along the main path; terminal states never move again."""
    if current in TERMINAL:
        return False
    if target == "cancelled":
        return current in CANCELLABLE
    if target == "expired":
        return current in EXPIRABLE
    if target == "rejected":
        return current == "pending_approval"
    if target in SIDE_STATES or current in SIDE_STATES:
        return True
    return _RANK.get(target, -1) > _RANK.get(current, -1)


def is_cancellable(status: str) -> bool:
    return status in CANCELLABLE
