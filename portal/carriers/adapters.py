"""One adapter per carrier: its event codes mapped to our return states.

Mapped states: dropped_off | in_transit | at_consolidation | arrived | exception; None = not relevant
(e.g. the label was printed, or an informational code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

STATES = ("dropped_off", "in_transit", "at_consolidation", "arrived", "exception")


class Adapter(Protocol):
    name: str

    def map(self, code: str) -> str | None: ...


class MappingAdapter:
    """A generic adapter configured by a mapping table {carrier code: state}; codes compare case-insensitively."""

    def __init__(self, name: str, mapping: Mapping[str, str | None]):
        bad = {code: state for code, state in mapping.items() if state is not None and state not in STATES}
        if bad:
            raise ValueError(f"unknown states in the mapping for {name}: {bad}")
        self.name = name
        self._mapping = {code.strip().upper(): state for code, state in mapping.items()}

    def map(self, code: str) -> str | None:
        return self._mapping.get((code or "").strip().upper())


# PostNord-style codes: the shipment-status words of the Track & Trace API plus the short EDI event
# codes its scanners report (pre-advice, handed in at a service point, terminal scans, delivered).
POSTNORD_CODES: dict[str, str | None] = {
    # informational: the label exists, nothing has moved yet
    "INFORMED": None, "CREATED": None, "EE": None,  # EDI pre-advice received
    # handed in by the consumer (first scan = proof of sending)
    "ITEM_ACCEPTED": "dropped_off", "AA": "dropped_off",  # accepted at service point / parcel locker
    "COLLECTED_FROM_SENDER": "dropped_off",
    # moving between terminals
    "EN_ROUTE": "in_transit", "ARRIVED_AT_TERMINAL": "in_transit", "DEPARTED_FROM_TERMINAL": "in_transit",
    "71": "in_transit", "72": "in_transit", "B2": "in_transit",  # terminal arrival / departure / sorted
    # Norway: held at the consolidation point until the merchant's collection
    "HELD_AT_CONSOLIDATION": "at_consolidation", "NO_CONSOL": "at_consolidation",
    # delivered to the merchant's return address
    "DELIVERED": "arrived", "DK": "arrived", "AV": "arrived",
    # something is wrong
    "DELAYED": "exception", "EXPECTED_DELAY": "exception", "DELIVERY_IMPOSSIBLE": "exception",
    "DELIVERY_REFUSED": "exception", "STOPPED": "exception", "RETURNED": "exception", "DAMAGED": "exception",
}


def postnord() -> MappingAdapter:
    return MappingAdapter("postnord", POSTNORD_CODES)


def generic(name: str, mapping: Mapping[str, str | None]) -> MappingAdapter:
    return MappingAdapter(name, mapping)


# The carriers this installation knows; a new one = a line here (or register() at start-up).
REGISTRY: dict[str, Adapter] = {"postnord": postnord()}


def register(adapter: Adapter) -> None:
    REGISTRY[adapter.name.lower()] = adapter


def adapter_for(carrier: str) -> Adapter | None:
    return REGISTRY.get((carrier or "").lower())
