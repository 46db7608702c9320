"""Back-office search: find returns by RMA, order number, e-mail, phone, tracking number or name.

Every kind is an equality or prefix look-up that an index can answer, so a search stays fast
with hundreds of thousands of returns:

* RMA: `return.rma` (unique index), after `normalise_rma` (case, dashes, look-alike letters);
* order number: `orders.number` (unique index), as typed and upper-cased;
* e-mail: `lower(customer.email)`, case-insensitive (an expression index on `lower(email)` makes
  it a look-up; without one it reads the customer table, ~20 ms per 100,000 customers on SQLite);
* phone: `customer.phone` (index), every E.164 and local form the typed number can stand for;
* tracking number: `return.tracking_number` (index);
* name: a case-insensitive prefix of the first or last name (`lower(...)` ranges/LIKE prefixes,
  which expression indexes on `lower(first_name)` / `lower(last_name)` answer).

From the customer or order the way to the returns is `orders.customer_id` and `return.order_id`,
both indexed. Each kind runs as its own small query; the matches are merged, newest first.
No web imports here: the controller parses, calls `search_returns`, renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import Customer, Order, Refund, Return
from portal.returns.identifiers import RMA_BODY_LENGTH, RMA_PREFIX, is_valid_rma, normalise_rma

LIMIT = 50
MAX_QUERY = 200
MIN_NAME_PREFIX = 2

# Country calling codes of the markets the shop sells to, and whether their local numbers
# carry a leading trunk 0 (Sweden and Finland do; Norway and Denmark have none).
CALLING_CODES = {"46": True, "358": True, "47": False, "45": False}
_PHONE_CHARS = re.compile(r"^[+\d\s().\-/]+$")
_LIKE_SPECIAL = re.compile(r"([\\%_])")

KIND_LABELS = {
    "rma": staff_text("RMA"),
    "order": staff_text("order number"),
    "email": staff_text("e-mail"),
    "phone": staff_text("phone"),
    "tracking": staff_text("tracking number"),
    "name": staff_text("name"),
}


@dataclass(frozen=True)
class SearchRow:
    ret: Return
    order: Order
    customer: Customer
    refund_state: str  # state of the latest refund, or "" when none exists yet
    matched_by: tuple[str, ...]


@dataclass(frozen=True)
class OrderHit:
    """An order the query names, so support can register a return even when it has none yet."""

    number: str
    customer_name: str
    placed_at: datetime


@dataclass(frozen=True)
class SearchResult:
    query: str
    kinds: tuple[str, ...]  # the kinds the query was tried as
    rows: list[SearchRow]
    orders: list[OrderHit] = field(default_factory=list)
    truncated: bool = False  # more than LIMIT matched; the newest LIMIT are shown

    @property
    def recent(self) -> bool:
        return not self.query


# --- Reading the query -----------------------------------------------------------------------


def clean_query(text: str | None) -> str:
    """Whitespace collapsed, control characters (NUL breaks PostgreSQL) dropped, length capped."""
    text = "".join(ch for ch in (text or "") if ch.isprintable() or ch.isspace())
    return " ".join(text.split())[:MAX_QUERY]


def phone_digits(text: str) -> str:
    """Digits with a leading + kept ("+46 70-123 45 67" -> "+46701234567"); "00" becomes "+"."""
    text = text.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return digits


def phone_variants(text: str) -> list[str]:
    """Every stored form the typed number can stand for: E.164 and the local (national) form.

    "070-123 45 67" -> +46701234567 (and 0701234567); "+47 912 34 567" -> +4791234567 and
    91234567; "46701234567" (a + forgotten) -> +46701234567. Stored numbers are expected
    in E.164 (the demo data and the order API use it); local forms are matched too.
    """
    number = phone_digits(text)
    bare = number.lstrip("+")
    if len(bare) < 6 or len(bare) > 15:
        return []
    found: list[str] = [number]
    if number.startswith("+"):
        for code, trunk in CALLING_CODES.items():
            if bare.startswith(code) and len(bare) > len(code) + 5:
                national = bare[len(code):]
                found.append(("0" + national) if trunk else national)
    else:
        if bare[0] != "0":
            found.append("+" + bare)  # an international number typed without its +
        for code, trunk in CALLING_CODES.items():
            if trunk and bare.startswith("0") and not bare.startswith("00"):
                found.append("+" + code + bare[1:])
            elif not trunk and not bare.startswith("0") and len(bare) == 8:
                found.append("+" + code + bare)
    return list(dict.fromkeys(found))


def looks_like_phone(text: str) -> bool:
    return bool(_PHONE_CHARS.match(text)) and sum(ch.isdigit() for ch in text) >= 6


def looks_like_rma(text: str) -> bool:
    rma = normalise_rma(text)
    return rma.startswith(RMA_PREFIX) and len(rma) == 1 + RMA_BODY_LENGTH + 1


def email_variants(text: str) -> list[str]:
    """The lower-cased address as PostgreSQL's lower() and SQLite's (ASCII-only) lower() give it."""
    text = text.strip()
    return list(dict.fromkeys([text.lower(), _ascii_lower(text), _ascii_lower(text.upper())]))


def query_kinds(q: str) -> tuple[str, ...]:
    """Which look-ups a query is worth trying as; each one is a cheap index probe."""
    if not q:
        return ()
    if "@" in q:
        return ("email",)
    kinds = []
    if looks_like_rma(q):
        kinds.append("rma")
    kinds += ["order", "tracking"]
    if looks_like_phone(q):
        kinds.append("phone")
    if not any(ch.isdigit() for ch in q) and len(q) >= MIN_NAME_PREFIX:
        kinds.append("name")
    return tuple(kinds)


# --- The look-ups ------------------------------------------------------------------------------


def _ascii_lower(text: str) -> str:
    """What SQLite's lower() does: ASCII letters only (PostgreSQL folds every letter)."""
    return "".join(ch.lower() if ch.isascii() else ch for ch in text)


def _prefix_forms(prefix: str) -> list[str]:
    """Lower-cased prefixes that meet `lower(column)` on both SQLite (ASCII-only lower) and PostgreSQL.

    "öster" must find "Österberg": SQLite lowers that to "Österberg", PostgreSQL to "österberg".
    """
    forms = [prefix.lower(), _ascii_lower(prefix.upper()), _ascii_lower(prefix[:1].upper() + prefix[1:].lower())]
    return list(dict.fromkeys(forms))


def _prefix_clause(column, prefix: str, dialect: str):
    """Case-insensitive prefix on lower(column), in a form an expression index can serve."""
    lowered = sa.func.lower(column)
    terms = []
    for form in _prefix_forms(prefix):
        like = lowered.like(_LIKE_SPECIAL.sub(r"\\\1", form) + "%", escape="\\")
        if dialect == "sqlite":
            # SQLite's LIKE optimisation does not apply to expressions; a BINARY range does, and is exact.
            upper_bound = form[:-1] + chr(ord(form[-1]) + 1)
            terms.append(sa.and_(lowered >= form, lowered < upper_bound, like))
        else:
            terms.append(like)  # PostgreSQL: an index on lower(col) text_pattern_ops serves LIKE 'x%'
    return sa.or_(*terms)


def _name_clause(q: str, dialect: str):
    tokens = q.split()
    if len(tokens) == 1:
        return sa.or_(_prefix_clause(Customer.first_name, tokens[0], dialect),
                      _prefix_clause(Customer.last_name, tokens[0], dialect))
    first, rest = tokens[0], " ".join(tokens[1:])
    last, before = tokens[-1], " ".join(tokens[:-1])
    return sa.or_(
        sa.and_(_prefix_clause(Customer.first_name, first, dialect), _prefix_clause(Customer.last_name, rest, dialect)),
        sa.and_(_prefix_clause(Customer.first_name, before, dialect), _prefix_clause(Customer.last_name, last, dialect)),
        sa.and_(_prefix_clause(Customer.last_name, first, dialect), _prefix_clause(Customer.first_name, rest, dialect)),
    )


def _customer_filter(kind: str, q: str, dialect: str):
    if kind == "email":
        # Case-insensitive for real; an index on lower(email) turns this into a look-up
        # (the indexes this module wants are in bench/search.py, PROPOSED).
        return sa.func.lower(Customer.email).in_(email_variants(q))
    if kind == "phone":
        return Customer.phone.in_(phone_variants(q))
    return _name_clause(q, dialect)


def _return_ids(session: Session, kind: str, q: str, limit: int) -> list[int]:
    """Ids of matching returns, newest first.

    `Return.id + 0` in ORDER BY keeps SQLite from walking the primary key backwards in the
    hope of meeting a match early: the selective index drives the join, the few matches sort.
    """
    dialect = session.get_bind().dialect.name
    newest_first = (Return.id + 0).desc()
    if kind == "rma":
        rma = normalise_rma(q)
        if not is_valid_rma(rma):
            return []
        stmt = select(Return.id).where(Return.rma == rma)
    elif kind == "order":
        stmt = (select(Return.id).join(Order, Order.id == Return.order_id)
                .where(Order.number.in_(list(dict.fromkeys([q, q.upper()])))))
    elif kind == "tracking":
        variants = list(dict.fromkeys([q, q.upper(), q.replace(" ", ""), q.replace(" ", "").upper()]))
        stmt = select(Return.id).where(Return.tracking_number.in_(variants))
    elif kind in ("email", "phone", "name"):
        condition = _customer_filter(kind, q, dialect)
        if kind == "phone" and not phone_variants(q):
            return []
        stmt = (select(Return.id).join(Order, Order.id == Return.order_id)
                .join(Customer, Customer.id == Order.customer_id).where(condition))
    else:
        raise ValueError(f"unknown search kind {kind!r}")
    return list(session.exec(stmt.order_by(newest_first).limit(limit)).all())


def _matching_orders(session: Session, kinds: tuple[str, ...], q: str) -> list[OrderHit]:
    """Orders the query names directly (number, e-mail, phone), for "register a return"."""
    dialect = session.get_bind().dialect.name
    stmt = select(Order.number, Customer.first_name, Customer.last_name, Order.placed_at).join(
        Customer, Customer.id == Order.customer_id)
    conditions = []
    if "order" in kinds:
        conditions.append(Order.number.in_(list(dict.fromkeys([q, q.upper()]))))
    for kind in ("email", "phone"):
        if kind in kinds and (kind != "phone" or phone_variants(q)):
            conditions.append(_customer_filter(kind, q, dialect))
    hits: dict[str, OrderHit] = {}
    for condition in conditions:  # one indexed query each; an OR across tables would scan
        for number, first, last, placed in session.exec(stmt.where(condition).order_by((Order.id + 0).desc()).limit(20)):
            hits.setdefault(number, OrderHit(number, f"{first} {last}".strip(), placed))
    return list(hits.values())


def _rows(session: Session, ids: list[int], matched: dict[int, list[str]]) -> list[SearchRow]:
    if not ids:
        return []
    found = session.exec(
        select(Return, Order, Customer)
        .join(Order, Order.id == Return.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Return.id.in_(ids))
    ).all()
    latest_refund: dict[int, str] = {}
    for return_id, state in session.exec(
        select(Refund.return_id, Refund.state).where(Refund.return_id.in_(ids)).order_by(Refund.id)
    ):
        latest_refund[return_id] = state  # ordered by id: the last one wins
    by_id = {ret.id: (ret, order, customer) for ret, order, customer in found}
    return [
        SearchRow(*by_id[i], latest_refund.get(i, ""), tuple(matched.get(i, ())))
        for i in sorted(ids, reverse=True) if i in by_id
    ]


def search_returns(session: Session, text: str | None, limit: int = LIMIT) -> SearchResult:
    """Returns matching the query, newest first; an empty query lists the newest returns."""
    q = clean_query(text)
    if not q:
        ids = list(session.exec(select(Return.id).order_by(Return.id.desc()).limit(limit + 1)).all())
        return SearchResult(q, (), _rows(session, ids[:limit], {}), truncated=len(ids) > limit)
    kinds = query_kinds(q)
    matched: dict[int, list[str]] = {}
    for kind in kinds:
        for return_id in _return_ids(session, kind, q, limit + 1):
            matched.setdefault(return_id, []).append(kind)
    ids = sorted(matched, reverse=True)
    return SearchResult(
        q, kinds, _rows(session, ids[:limit], matched), orders=_matching_orders(session, kinds, q),
        truncated=len(ids) > limit,
    )
