"""Norway collections: the schedule, the returns waiting, and the collections that pick them up.

A collection gathers Norwegian returns waiting at the consolidation point, freezes its customs
manifest (stored as the JSON document), and moves through

    planned -> frozen -> collected -> declared (import MRN) -> released

while the returns in it advance their own state and timeline
(at_consolidation -> collected -> customs_cleared). Returns can be moved in and out until the
collection is declared; a frozen manifest is rebuilt whenever its contents change.

The cut-off job (create_collection_at_cutoff) creates one collection per cut-off: the cut-off
moment is unique on the collection row, so running it twice, or on two workers at once, creates
one collection. Every function takes `now` (UTC-aware) so callers and tests control the clock.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from babel.numbers import is_currency
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from customs.documents import manifest_from_json, manifest_to_json
from customs.model import Manifest
from customs.mrn import normalise_mrn, validate_mrn
from customs.rates import RateError, format_minor, parse_minor
from customs.schedule import next_cutoffs, storage_fee
from portal.i18n import staff_text
from portal.models import Collection, CollectionItem, NorwaySettings, Order, Return, ReturnEvent
from portal.norway import manifests
from portal.outbox.service import enqueue, enqueue_webhook_event
from portal.returns import service
from portal.staff.accounts import StaffPrincipal, audit
from portal.staff.common import bump_version, staff_event
from portal.staff.vocabulary import term
from portal.numbers import is_digits

log = logging.getLogger("portal.norway")

WAITING_STATUSES = ("dropped_off", "in_transit", "at_consolidation")
STATES = ("planned", "frozen", "collected", "declared", "released")
MOVABLE_STATES = ("planned", "frozen", "collected")  # returns move in or out until declared
SCHEDULER = "scheduler"
CUTOFF_GRACE = timedelta(hours=6)  # a job run this long after a cut-off still creates its collection
WEEKDAY_NAMES = (staff_text("Monday"), staff_text("Tuesday"), staff_text("Wednesday"), staff_text("Thursday"),
                 staff_text("Friday"), staff_text("Saturday"), staff_text("Sunday"))
IMPORT_CATEGORIES = ("R", "S")  # MRN position 17 of an import declaration
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Actor = StaffPrincipal | None  # None: the scheduler or a command-line/demo run


class CollectionError(Exception):
    """A request the collection service refuses; `fields` maps form fields to messages."""

    status_code = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class CollectionConflict(CollectionError):
    """Someone else changed the collection since the form was rendered (HTTP 409)."""

    status_code = 409


def _actor_name(actor: Actor) -> str:
    return actor.email if actor is not None else "system"


def _actor_data(actor: Actor) -> dict:
    return {"staff_id": actor.id, "role": actor.role} if actor is not None else {}


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


# --- Settings and schedule -----------------------------------------------------------------


def get_settings(session: Session) -> NorwaySettings:
    """The settings row, or the defaults (Tuesday and Friday 12:00 Oslo time, 5 free days, NOK 50/day)."""
    return session.exec(select(NorwaySettings).order_by(NorwaySettings.id)).first() or NorwaySettings()


def cutoff_time(settings: NorwaySettings) -> time:
    hours, minutes = settings.cutoff.split(":")
    return time(int(hours), int(minutes))


def upcoming_cutoffs(settings: NorwaySettings, now: datetime, count: int = 4) -> list[datetime]:
    cutoffs = next_cutoffs(_require_aware(now), settings.weekdays, cutoff_time(settings), settings.timezone)
    return [next(cutoffs) for _ in range(count)]


def latest_cutoff(settings: NorwaySettings, now: datetime) -> datetime:
    """The most recent cut-off at or before `now` (there is one at least every week)."""
    now = _require_aware(now)
    latest = None
    for moment in next_cutoffs(now - timedelta(days=8), settings.weekdays, cutoff_time(settings), settings.timezone):
        if moment > now:
            return latest
        latest = moment
    raise AssertionError("unreachable: next_cutoffs is endless")


@dataclass(frozen=True)
class SettingsForm:
    weekdays: Sequence[str]
    cutoff: str
    timezone: str
    free_storage_days: str
    fee_per_day: str
    fee_currency: str
    alert_email: str


def settings_values(settings: NorwaySettings) -> dict:
    """The settings as the form shows them (fee in major units)."""
    return {
        "weekdays": [str(d) for d in settings.weekdays],
        "cutoff": settings.cutoff,
        "timezone": settings.timezone,
        "free_storage_days": str(settings.free_storage_days),
        "fee_per_day": format_minor(settings.fee_per_day_minor, settings.fee_currency),
        "fee_currency": settings.fee_currency,
        "alert_email": settings.alert_email,
    }


def update_settings(session: Session, form: SettingsForm, actor: StaffPrincipal, now: datetime) -> NorwaySettings:
    """Validate every field, then save and audit; raises CollectionError with per-field messages."""
    errors: dict[str, str] = {}
    weekdays: list[int] = []
    for value in form.weekdays:
        if not (is_digits(value) and 0 <= int(value) <= 6):
            errors["weekdays"] = staff_text("Pick collection days from Monday to Sunday.")
            break
        weekdays.append(int(value))
    weekdays = sorted(set(weekdays))
    if not weekdays and "weekdays" not in errors:
        errors["weekdays"] = staff_text("Pick at least one collection day.")
    cutoff = form.cutoff.strip()
    if not _HHMM.match(cutoff):
        errors["cutoff"] = staff_text("Enter the cut-off as HH:MM (24-hour clock), e.g. 12:00.")
    timezone = form.timezone.strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = staff_text("Enter an IANA time zone, e.g. Europe/Oslo.")
    free_days = form.free_storage_days.strip()
    if not is_digits(free_days) or int(free_days) > 365:
        errors["free_storage_days"] = staff_text("Enter a whole number of days from 0 to 365.")
    currency = form.fee_currency.strip().upper()
    if not (len(currency) == 3 and currency.isalpha() and is_currency(currency)):
        errors["fee_currency"] = staff_text("Enter a three-letter ISO currency code, e.g. NOK.")
        fee = None
    else:
        try:
            fee = parse_minor(form.fee_per_day.strip() or "x", currency)
            if fee < 0 or fee > 10**9:
                errors["fee_per_day"] = staff_text("Enter a fee from 0 upwards.")
        except ValueError:
            errors["fee_per_day"] = staff_text("Enter the fee per day in %(currency)s, e.g. 50.00.", currency=currency)
            fee = None
    email = form.alert_email.strip()
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        errors["alert_email"] = staff_text("Enter a valid e-mail address, or leave it empty to use the support address.")
    if errors:
        raise CollectionError(staff_text("Some settings need fixing."), errors)
    row = session.exec(select(NorwaySettings).order_by(NorwaySettings.id)).first()
    before = settings_values(row) if row else {}
    row = row or NorwaySettings()
    row.weekdays, row.cutoff, row.timezone = weekdays, cutoff, timezone
    row.free_storage_days, row.fee_per_day_minor, row.fee_currency = int(free_days), fee, currency
    row.alert_email, row.updated_at, row.updated_by = email, now, actor.email
    session.add(row)
    audit(session, actor.email, "norway.settings_changed", "norway_settings", before, settings_values(row))
    return row


def alert_address(session: Session, settings: NorwaySettings) -> str:
    return settings.alert_email or service.get_policy(session).support_email


# --- Waiting returns -----------------------------------------------------------------------


def _active_item_of_return():
    return sa.exists().where(CollectionItem.return_id == Return.id, CollectionItem.removed_at.is_(None))


def waiting_returns(session: Session) -> list[Return]:
    """Norwegian returns dropped off or at consolidation (not yet collected) and in no collection."""
    return list(session.exec(
        select(Return)
        .where(Return.is_norway, Return.status.in_(WAITING_STATUSES), ~_active_item_of_return())
        .order_by(Return.created_at, Return.id)
    ))


def consolidation_arrivals(session: Session, return_ids: Sequence[int]) -> dict[int, datetime]:
    """When each return reached the consolidation point (its first move to at_consolidation)."""
    if not return_ids:
        return {}
    arrived: dict[int, datetime] = {}
    for event in session.exec(
        select(ReturnEvent).where(ReturnEvent.return_id.in_(list(return_ids))).order_by(ReturnEvent.at, ReturnEvent.id)
    ):
        if event.return_id not in arrived and isinstance(event.data, dict) and event.data.get("to") == "at_consolidation":
            arrived[event.return_id] = event.at
    return arrived


@dataclass(frozen=True)
class WaitingReturn:
    ret: Return
    order_number: str
    arrived_at: datetime | None  # at the consolidation point; None while still on its way there
    days_waited: int
    fee_minor: int
    overdue: bool


def describe_waiting(session: Session, returns: Sequence[Return], settings: NorwaySettings,
                     now: datetime) -> list[WaitingReturn]:
    """Waiting returns with their storage time and the fee run up so far."""
    numbers = dict(session.exec(
        select(Order.id, Order.number).where(Order.id.in_([r.order_id for r in returns] or [0]))
    ).all())
    arrivals = consolidation_arrivals(session, [r.id for r in returns if r.status == "at_consolidation"])
    described = []
    for ret in returns:
        arrived = arrivals.get(ret.id) if ret.status == "at_consolidation" else None
        if ret.status == "at_consolidation" and arrived is None:
            arrived = ret.updated_at
        charge = storage_fee(arrived, now, settings.free_storage_days, settings.fee_per_day_minor) if arrived else None
        described.append(WaitingReturn(
            ret, numbers.get(ret.order_id, ""), arrived, charge.days_waited if charge else 0,
            charge.fee_minor if charge else 0, bool(charge and charge.chargeable_days > 0),
        ))
    return described


# --- Reading collections -------------------------------------------------------------------


def collection_by_reference(session: Session, reference: str) -> Collection | None:
    return session.exec(select(Collection).where(Collection.reference == reference.strip().upper())).first()


def list_collections(session: Session, limit: int = 100) -> list[tuple[Collection, int]]:
    """Newest first, with the number of returns in each."""
    counts = (
        select(CollectionItem.collection_id, sa.func.count(CollectionItem.id).label("n"))
        .where(CollectionItem.removed_at.is_(None)).group_by(CollectionItem.collection_id).subquery()
    )
    rows = session.exec(
        select(Collection, sa.func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.collection_id == Collection.id)
        .order_by(Collection.planned_for.desc(), Collection.id.desc()).limit(limit)
    ).all()
    return [(c, int(n)) for c, n in rows]


def active_items(session: Session, collection: Collection) -> list[CollectionItem]:
    return list(session.exec(
        select(CollectionItem)
        .where(CollectionItem.collection_id == collection.id, CollectionItem.removed_at.is_(None))
        .order_by(CollectionItem.added_at, CollectionItem.id)
    ))


def active_return_ids(session: Session, collection: Collection) -> list[int]:
    return list(session.exec(
        select(CollectionItem.return_id)
        .where(CollectionItem.collection_id == collection.id, CollectionItem.removed_at.is_(None))
        .order_by(CollectionItem.added_at, CollectionItem.id)
    ).all())


def returns_in(session: Session, collection: Collection) -> list[tuple[Return, str]]:
    """(return, order number) for the returns in the collection, in the order they were added."""
    return [
        (ret, number)
        for _, ret, number in session.exec(
            select(CollectionItem, Return, Order.number)
            .join(Return, Return.id == CollectionItem.return_id)
            .join(Order, Order.id == Return.order_id)
            .where(CollectionItem.collection_id == collection.id, CollectionItem.removed_at.is_(None))
            .order_by(CollectionItem.added_at, CollectionItem.id)
        ).all()
    ]


def collection_of_return(session: Session, return_id: int) -> Collection | None:
    return session.exec(
        select(Collection).join(CollectionItem, CollectionItem.collection_id == Collection.id)
        .where(CollectionItem.return_id == return_id, CollectionItem.removed_at.is_(None))
    ).first()


def frozen_manifest(collection: Collection) -> Manifest | None:
    return manifest_from_json(collection.manifest) if collection.manifest else None


def manifest_preview(session: Session, collection: Collection, now: datetime) -> Manifest:
    """The frozen manifest, or (while planned) what it would be now. Raises RateError without rates."""
    frozen = frozen_manifest(collection)
    if frozen is not None:
        return frozen
    return manifests.build_for_returns(session, collection.reference, active_return_ids(session, collection), now,
                                       rate_day=_rate_day(session, now))


def _rate_day(session: Session, now: datetime):
    """Rates are taken for the local date at the consolidation point (latest published on or before it)."""
    return now.astimezone(ZoneInfo(get_settings(session).timezone)).date()


# --- Creating collections ------------------------------------------------------------------


def _reference_for(session: Session, planned_for: datetime, tz: str) -> str:
    day = planned_for.astimezone(ZoneInfo(tz)).date()
    prefix = f"NO-{day.isoformat()}-"
    taken = set(session.exec(select(Collection.reference).where(Collection.reference.startswith(prefix))).all())
    suffixes = list(string.ascii_uppercase) + [f"{a}{b}" for a in string.ascii_uppercase for b in string.ascii_uppercase]
    return next(prefix + s for s in suffixes if prefix + s not in taken)


def _insert_collection(session: Session, planned_for: datetime, cutoff_at: datetime | None, created_by: str,
                       now: datetime) -> Collection | None:
    """Insert with a fresh reference; None when a collection for this cut-off already exists."""
    tz = get_settings(session).timezone
    for _ in range(5):
        collection = Collection(reference=_reference_for(session, planned_for, tz), planned_for=planned_for,
                                cutoff_at=cutoff_at, state="planned", created_at=now, created_by=created_by)
        try:
            with session.begin_nested():
                session.add(collection)
        except IntegrityError:
            if cutoff_at is not None and session.exec(select(Collection.id).where(Collection.cutoff_at == cutoff_at)).first():
                return None  # another worker created this cut-off's collection first
            continue  # the reference was taken at the same moment: pick the next letter
        return collection
    raise CollectionError(staff_text("Could not find a free collection reference; try again."))


def _add_item(session: Session, collection: Collection, ret: Return, actor: Actor, now: datetime) -> CollectionItem:
    item = CollectionItem(collection_id=collection.id, return_id=ret.id, added_at=now, added_by=_actor_name(actor))
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        other = collection_of_return(session, ret.id)
        raise CollectionError(f"Return {ret.rma} is already in collection {other.reference if other else 'another one'}.",
                              {"rma": f"{ret.rma} is already in collection {other.reference if other else 'another one'}."})
    if actor is not None:
        staff_event(session, ret, actor, "collection.return_added", {"collection": None},
                    {"collection": collection.reference})
    else:
        service.record_event(session, ret, "collection.return_added", "system", {"collection": collection.reference}, at=now)
    return item


@dataclass
class CutoffOutcome:
    cutoff_at: datetime | None
    collection: Collection | None = None
    created: bool = False
    returns: list[str] = field(default_factory=list)
    manifest_error: str = ""
    reason: str = ""


def create_collection_at_cutoff(session: Session, now: datetime, base_url: str = "") -> CutoffOutcome:
    """Create the collection of the latest cut-off (if due and not yet created) and freeze its manifest.

    Idempotent: the cut-off moment is unique on the collection, so a second run, or a concurrent one,
    finds the first collection and creates nothing. Nothing waiting means no collection. A run more
    than CUTOFF_GRACE after the cut-off leaves the returns for the next one (the storage check warns).
    Without exchange rates the collection is still created, planned, and the alert says why the
    manifest is not frozen; the next run within the grace period tries again.
    """
    now = _require_aware(now)
    settings = get_settings(session)
    cutoff = latest_cutoff(settings, now)
    if now - cutoff > CUTOFF_GRACE:
        return CutoffOutcome(cutoff, reason=f"last cut-off {cutoff.isoformat()} is more than {CUTOFF_GRACE} ago")
    existing = session.exec(select(Collection).where(Collection.cutoff_at == cutoff)).first()
    if existing is not None:
        if existing.state == "planned" and existing.manifest_error and active_items(session, existing):
            _lock(session, existing, None)
            _try_freeze(session, existing, now)  # the rates may have arrived since
        return CutoffOutcome(cutoff, existing, reason="already created", manifest_error=existing.manifest_error)
    waiting = waiting_returns(session)
    if not waiting:
        return CutoffOutcome(cutoff, reason="no returns waiting")
    collection = _insert_collection(session, cutoff, cutoff, SCHEDULER, now)
    if collection is None:
        existing = session.exec(select(Collection).where(Collection.cutoff_at == cutoff)).one()
        return CutoffOutcome(cutoff, existing, reason="already created")
    rmas = []
    for ret in waiting:
        try:
            _add_item(session, collection, ret, None, now)
            rmas.append(ret.rma)
        except CollectionError:
            continue  # put in a collection by hand at this very moment: it stays there
    _try_freeze(session, collection, now)
    _announce(session, collection, rmas, settings, base_url)
    log.info("collection %s created at cut-off %s with %d returns", collection.reference, cutoff.isoformat(), len(rmas))
    return CutoffOutcome(cutoff, collection, True, rmas, collection.manifest_error)


def _try_freeze(session: Session, collection: Collection, now: datetime) -> None:
    try:
        _freeze(session, collection, now)
    except RateError as exc:
        collection.manifest_error = str(exc)[:1000]
        session.add(collection)


def _announce(session: Session, collection: Collection, rmas: list[str], settings: NorwaySettings, base_url: str) -> None:
    """Alert staff by e-mail and the shop's systems by webhook; each once per collection."""
    link = f"{base_url}/staff/norway/collections/{collection.reference}"
    local = collection.planned_for.astimezone(ZoneInfo(settings.timezone))
    status = ("Manifest frozen." if collection.state == "frozen"
              else f"Manifest NOT frozen: {collection.manifest_error}")
    text = "\n".join([
        f"Collection {collection.reference} was created at the cut-off {local:%A %d %B %Y %H:%M} ({settings.timezone}).",
        f"{len(rmas)} return(s): {', '.join(rmas)}.",
        status,
        f"Documents and actions: {link}",
    ])
    enqueue(session, key=f"norway:collection.created:{collection.reference}", channel="email",
            destination=alert_address(session, settings), event_type="collection.created",
            payload={"subject": f"Norway collection {collection.reference}: {len(rmas)} return(s)", "text": text})
    enqueue_webhook_event(session, "collection.created", {
        "reference": collection.reference,
        "planned_for": collection.planned_for.isoformat(),
        "cutoff_at": collection.cutoff_at.isoformat() if collection.cutoff_at else None,
        "state": collection.state,
        "returns": rmas,
    }, unique=collection.reference)


def build_collection(session: Session, planned_for: datetime, rmas: Sequence[str], actor: Actor,
                     now: datetime) -> Collection:
    """A collection built by hand from the chosen waiting returns (all waiting ones when none are chosen)."""
    now = _require_aware(now)
    planned_for = _require_aware(planned_for)
    if planned_for < now - timedelta(days=7):
        raise CollectionError(staff_text("The pickup date is too far in the past."), {"planned_for": staff_text("Pick today or a later date.")})
    waiting = {ret.rma: ret for ret in waiting_returns(session)}
    chosen = [r.strip().upper() for r in rmas if r.strip()]
    unknown = [rma for rma in chosen if rma not in waiting]
    if unknown:
        raise CollectionError(staff_text("Not waiting for a collection: %(rmas)s.", rmas=", ".join(unknown)),
                              {"rmas": staff_text("These returns are not waiting for a collection: %(rmas)s.",
                                                  rmas=", ".join(unknown))})
    picked = [waiting[rma] for rma in dict.fromkeys(chosen)] if chosen else list(waiting.values())
    if not picked:
        raise CollectionError(staff_text("No Norwegian returns are waiting for a collection."),
                              {"rmas": staff_text("No Norwegian returns are waiting for a collection.")})
    collection = _insert_collection(session, planned_for, None, _actor_name(actor), now)
    for ret in picked:
        _add_item(session, collection, ret, actor, now)
    session.flush()
    if actor is not None:
        audit(session, actor.email, "norway.collection_built", f"collection:{collection.reference}", {},
              {"returns": [r.rma for r in picked], "planned_for": planned_for.isoformat()})
    enqueue_webhook_event(session, "collection.created", {
        "reference": collection.reference, "planned_for": planned_for.isoformat(), "cutoff_at": None,
        "state": collection.state, "returns": [r.rma for r in picked],
    }, unique=collection.reference)
    return collection


# --- Changing collections ------------------------------------------------------------------


def _lock(session: Session, collection: Collection, expected_version: int | str | None) -> None:
    """Compare-and-set on the version: one writer at a time, a stale form gets a 409."""
    if expected_version is not None and str(expected_version) != str(collection.version):
        raise CollectionConflict(staff_text(
            "Someone else changed collection %(reference)s after you opened it. Reload the page.", reference=collection.reference
        ))
    current = collection.version
    result = session.exec(
        sa.update(Collection).where(Collection.id == collection.id, Collection.version == current).values(version=current + 1)
    )
    if result.rowcount != 1:
        raise CollectionConflict(staff_text("Someone else changed collection %(reference)s at the same time. Reload and try "
                                            "again.", reference=collection.reference))
    collection.version = current + 1


def _require_state(collection: Collection, allowed: Sequence[str], action: str) -> None:
    if collection.state not in allowed:
        raise CollectionError(staff_text("Collection %(reference)s is %(state)s; it cannot be %(action)s now.",
                                         reference=collection.reference, state=term("collection_state", collection.state),
                                         action=action))


def _freeze(session: Session, collection: Collection, now: datetime) -> Manifest:
    """Build and store the manifest JSON; planned becomes frozen. RateError when rates are missing."""
    manifest = manifests.build_for_returns(session, collection.reference, active_return_ids(session, collection), now,
                                           rate_day=_rate_day(session, now))
    collection.manifest = manifest_to_json(manifest)
    collection.manifest_error = ""
    collection.frozen_at = now
    if collection.state == "planned":
        collection.state = "frozen"
    session.add(collection)
    return manifest


def _refreeze_after_change(session: Session, collection: Collection, now: datetime) -> None:
    if collection.manifest is None:
        return
    session.flush()
    if not active_items(session, collection) and collection.state == "frozen":
        collection.manifest, collection.frozen_at, collection.state = None, None, "planned"
        session.add(collection)
        return
    try:
        _freeze(session, collection, now)
    except RateError as exc:
        raise CollectionError(f"The manifest could not be rebuilt: {exc}") from exc


def freeze(session: Session, collection: Collection, actor: Actor, now: datetime,
           expected_version: int | str | None = None) -> Manifest:
    """Freeze (or, while still frozen, rebuild) the manifest with today's rates."""
    now = _require_aware(now)
    _lock(session, collection, expected_version)
    _require_state(collection, ("planned", "frozen"), staff_text("frozen"))
    if not active_items(session, collection):
        raise CollectionError(staff_text("Collection %(reference)s has no returns to declare.", reference=collection.reference))
    before = {"state": collection.state, "frozen_at": collection.frozen_at.isoformat() if collection.frozen_at else None}
    try:
        manifest = _freeze(session, collection, now)
    except RateError as exc:
        raise CollectionError(str(exc)) from exc
    if actor is not None:
        audit(session, actor.email, "norway.collection_frozen", f"collection:{collection.reference}", before,
              {"state": collection.state, "lines": manifest.grand_total.line_count,
               "declared_value_minor": manifest.grand_total.declared_value_minor})
    return manifest


def _return_by_rma(session: Session, rma: str) -> Return:
    from portal.returns.identifiers import normalise_rma

    ret = session.exec(select(Return).where(Return.rma == normalise_rma(rma))).first()
    if ret is None:
        raise CollectionError(staff_text("No return with RMA %(rma)s.", rma=rma),
                              {"rma": staff_text("No return with RMA %(rma)s.", rma=rma.strip() or "(empty)")})
    return ret


def add_return(session: Session, collection: Collection, rma: str, actor: Actor, now: datetime,
               expected_version: int | str | None = None) -> Return:
    """Move a waiting Norwegian return into the collection (before it is declared)."""
    now = _require_aware(now)
    _lock(session, collection, expected_version)
    _require_state(collection, MOVABLE_STATES, staff_text("changed"))
    ret = _return_by_rma(session, rma)
    if not ret.is_norway:
        raise CollectionError(staff_text("Return %(rma)s is not a Norwegian return.", rma=ret.rma),
                              {"rma": staff_text("%(rma)s is not from Norway.", rma=ret.rma)})
    if ret.status not in WAITING_STATUSES:
        raise CollectionError(staff_text("Return %(rma)s is %(status)s, not waiting for a collection.", rma=ret.rma,
                                         status=term("status", ret.status)),
                              {"rma": staff_text("%(rma)s is %(status)s, not dropped off or at consolidation.", rma=ret.rma,
                                                 status=term("status", ret.status))})
    _add_item(session, collection, ret, actor, now)
    return _after_move(session, collection, ret, "collected", "collection.collected", actor, now)


def remove_return(session: Session, collection: Collection, rma: str, actor: Actor, now: datetime,
                  expected_version: int | str | None = None) -> Return:
    """Move a return out of the collection (before it is declared).

    Out of a collection already collected, the parcel was not picked up after all: the return
    is set to needs_attention for staff to find it.
    """
    now = _require_aware(now)
    _lock(session, collection, expected_version)
    _require_state(collection, MOVABLE_STATES, staff_text("changed"))
    ret = _return_by_rma(session, rma)
    item = session.exec(select(CollectionItem).where(
        CollectionItem.collection_id == collection.id, CollectionItem.return_id == ret.id, CollectionItem.removed_at.is_(None),
    )).first()
    if item is None:
        raise CollectionError(staff_text("Return %(rma)s is not in collection %(reference)s.", rma=ret.rma,
                                         reference=collection.reference),
                              {"rma": staff_text("%(rma)s is not in this collection.", rma=ret.rma)})
    remaining = len(active_items(session, collection)) - 1
    if collection.state == "collected" and remaining == 0:
        raise CollectionError(staff_text("A collected collection keeps at least one return; move another one in first."))
    item.removed_at, item.removed_by = now, _actor_name(actor)
    session.add(item)
    if actor is not None:
        staff_event(session, ret, actor, "collection.return_removed", {"collection": collection.reference},
                    {"collection": None})
    else:
        service.record_event(session, ret, "collection.return_removed", "system", {"collection": collection.reference}, at=now)
    return _after_move(session, collection, ret, "needs_attention", "collection.not_collected", actor, now)


def _after_move(session: Session, collection: Collection, ret: Return, target: str, event_type: str,
                actor: Actor, now: datetime) -> Return:
    """A move into or out of a collection already collected changes the return's own state too."""
    if collection.state == "collected":
        bump_version(session, ret, ret.version)
        service.advance(session, ret, target, _actor_name(actor), event_type,
                        {"collection": collection.reference, **_actor_data(actor)}, at=now)
    _refreeze_after_change(session, collection, now)
    return ret


def _advance_all(session: Session, collection: Collection, target: str, event_type: str, actor: Actor,
                 now: datetime, extra: dict | None = None) -> list[str]:
    moved = []
    for ret, _ in returns_in(session, collection):
        bump_version(session, ret, ret.version)
        if service.advance(session, ret, target, _actor_name(actor), event_type,
                           {"collection": collection.reference, **(extra or {}), **_actor_data(actor)}, at=now):
            moved.append(ret.rma)
    return moved


def mark_collected(session: Session, collection: Collection, actor: Actor, now: datetime,
                   expected_version: int | str | None = None) -> list[str]:
    """The carrier handed the parcels over: frozen -> collected; each return -> collected."""
    now = _require_aware(now)
    _lock(session, collection, expected_version)
    _require_state(collection, ("frozen",), staff_text("marked collected (freeze the manifest first)"))
    moved = _advance_all(session, collection, "collected", "collection.collected", actor, now)
    collection.state, collection.collected_at = "collected", now
    session.add(collection)
    if actor is not None:
        audit(session, actor.email, "norway.collection_collected", f"collection:{collection.reference}",
              {"state": "frozen"}, {"state": "collected", "returns": moved})
    return moved


def mark_declared(session: Session, collection: Collection, import_mrn: str, actor: Actor, now: datetime,
                  expected_version: int | str | None = None) -> str:
    """The import declaration was lodged: collected -> declared, with its MRN on every return's timeline."""
    now = _require_aware(now)
    mrn = normalise_mrn(import_mrn or "")
    problems = validate_mrn(mrn) if mrn else [staff_text("Enter the MRN of the import declaration.")]
    if not problems and mrn[16] not in IMPORT_CATEGORIES:
        problems = [staff_text("Position 17 is %(char)s: that is not an import declaration (R or S).", char=repr(mrn[16]))]
    if problems:
        raise CollectionError(staff_text("The import MRN is not valid."),
                              {"import_mrn": problems[0] if len(problems) == 1 else " ".join(problems)})
    _lock(session, collection, expected_version)
    _require_state(collection, ("collected",), staff_text("marked declared"))
    for ret, _ in returns_in(session, collection):
        if actor is not None:
            staff_event(session, ret, actor, "customs.declared", {}, {"import_mrn": mrn}, collection=collection.reference)
        else:
            service.record_event(session, ret, "customs.declared", "system",
                                 {"collection": collection.reference, "import_mrn": mrn}, at=now)
    collection.state, collection.import_mrn, collection.declared_at = "declared", mrn, now
    session.add(collection)
    if actor is not None:
        audit(session, actor.email, "norway.collection_declared", f"collection:{collection.reference}",
              {"state": "collected"}, {"state": "declared", "import_mrn": mrn})
    return mrn


def mark_released(session: Session, collection: Collection, actor: Actor, now: datetime,
                  expected_version: int | str | None = None) -> list[str]:
    """Customs released the goods: declared -> released; each return -> customs_cleared."""
    now = _require_aware(now)
    _lock(session, collection, expected_version)
    _require_state(collection, ("declared",), staff_text("marked released"))
    moved = _advance_all(session, collection, "customs_cleared", "customs.cleared", actor, now,
                         {"import_mrn": collection.import_mrn})
    collection.state, collection.released_at = "released", now
    session.add(collection)
    if actor is not None:
        audit(session, actor.email, "norway.collection_released", f"collection:{collection.reference}",
              {"state": "declared"}, {"state": "released", "returns": moved})
    return moved
