"""One account's book: every fact the balance model needs, folded from the account's events.

An entity's state "as of T" is decided from its reports dated at or before T by the deciders'
rule, which lives in ``ledger.domain.lifecycle.state_of``: the earliest final state if any,
otherwise the latest report. A ``Timeline`` keeps an entity's reports; with ``prune=True`` it
keeps only the two that can still matter at the newest time (the best final and the best open
one), which is what the stored projection needs and all it can afford for a million events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from ledger.domain.lifecycle import (
    AUTHORISATION,
    CARD,
    TRANSACTION,
    Lifecycle,
    Sighting,
    sighting,
    state_of,
    supersedes,
)
from ledger.errors import InvalidInputError
from ledger.events import (
    CARD_STATUS_OF,
    HOLD_STATUS_OF,
    TRANSACTION_STATUS_OF,
    Anomaly,
    CardObserved,
    DomainEvent,
    FeePaid,
    FundsDeposited,
    FundsWithdrawn,
    HoldExpired,
    HoldObserved,
    HoldPlaced,
    Observed,
    TransactionObserved,
    TransactionPosted,
)
from ledger.money import EXACT, format_amount
from ledger.store import account_of


class Timeline(msgspec.Struct, gc=False):
    # A tuple, replaced rather than changed: with the structs' gc=False, a timeline is nothing
    # the cyclic garbage collector walks (a million of them made each pass slow).
    sightings: tuple[Sighting, ...] = ()

    def add(self, lifecycle: Lifecycle, report: Sighting, prune: bool) -> None:
        kept_ones = self.sightings
        if not prune:
            if report not in kept_ones:
                self.sightings = (*kept_ones, report)
            return
        # Pruned: the one final and the one open report that can still decide the state.
        final = lifecycle.is_final(report.status)
        for i, kept in enumerate(kept_ones):
            if lifecycle.is_final(kept.status) == final:
                if supersedes(lifecycle, report, kept):
                    self.sightings = (*kept_ones[:i], report, *kept_ones[i + 1:])
                return
        self.sightings = (*kept_ones, report)

    def at(self, lifecycle: Lifecycle, moment: datetime | None) -> Sighting | None:
        """The state as of ``moment`` (None: as of the newest report)."""
        return state_of(lifecycle, self.sightings, moment)


class HoldFacts(msgspec.Struct, gc=False):
    authorisation_id: str
    card_id: str
    currency: str
    created_at: datetime | None = None
    timeline: Timeline = msgspec.field(default_factory=Timeline)
    expired_at: datetime | None = None


class TransactionFacts(msgspec.Struct, gc=False):
    """A transaction's facts; its amount as of T is that of its state as of T (the timeline's
    sightings carry it), since a clearing can differ from the first report."""

    transaction_id: str
    authorisation_id: str | None
    direction: str
    currency: str
    token: str | None = None
    token_amount: Decimal = Decimal(0)
    fees: tuple[FeePaid, ...] = ()
    token_reported: tuple[datetime, str] | None = None
    """Which processing report the token and fees are from (the earliest)."""
    created_at: datetime | None = None
    timeline: Timeline = msgspec.field(default_factory=Timeline)


class MoneyMovement(msgspec.Struct, frozen=True, gc=False):
    at: datetime
    currency: str
    amount: Decimal
    """Positive for a deposit, negative for a withdrawal."""


class AccountBook(msgspec.Struct):
    """Everything the balance model needs about one account, folded from its events."""

    account_id: str
    prune: bool = False
    movements: list[MoneyMovement] = []
    holds: dict[str, HoldFacts] = {}
    transactions: dict[str, TransactionFacts] = {}
    cards: dict[str, Timeline] = {}
    latest_at: datetime | None = None
    """The account's latest business time: what the stored projection is "as of"."""

    def apply(self, payload: DomainEvent) -> None:
        """Fold one event in; ``Unprojectable`` (and the book unchanged) for one that no rule
        can apply (see ``check_projectable``)."""
        check_projectable(payload)
        if self.latest_at is None or payload.at > self.latest_at:
            self.latest_at = payload.at
        match payload:
            case FundsDeposited() | FundsWithdrawn():
                amount = payload.amount if isinstance(payload, FundsDeposited) else (
                    EXACT.minus(payload.amount))
                self._move(MoneyMovement(payload.at, payload.currency, amount))
            case HoldObserved():
                self._hold(payload)
            case HoldExpired():
                facts = self.holds.get(payload.authorisation_id)
                if facts is not None:
                    facts.expired_at = payload.at
            case TransactionObserved():
                self._transaction(payload)
            case CardObserved():
                status = CARD_STATUS_OF[type(payload)]
                self.cards.setdefault(payload.card_id, Timeline()).add(
                    CARD, sighting(CARD, status, payload.reported_at), self.prune)

    def _move(self, movement: MoneyMovement) -> None:
        if not self.prune:
            self.movements.append(movement)
            return
        # Pruned: one running total per currency, as of the latest movement.
        for i, total in enumerate(self.movements):
            if total.currency == movement.currency:
                self.movements[i] = MoneyMovement(max(total.at, movement.at), total.currency,
                                                  EXACT.add(total.amount, movement.amount))
                return
        self.movements.append(movement)

    def _hold(self, event: HoldObserved) -> None:
        facts = self.holds.get(event.authorisation_id)
        if facts is None:
            facts = self.holds[event.authorisation_id] = HoldFacts(
                event.authorisation_id, event.card_id, event.currency)
        if isinstance(event, HoldPlaced):
            facts.created_at = event.at
        status = HOLD_STATUS_OF[type(event)]
        facts.timeline.add(AUTHORISATION, sighting(AUTHORISATION, status, event.reported_at,
                                                   event.amount), self.prune)

    def _transaction(self, event: TransactionObserved) -> None:
        facts = self.transactions.get(event.transaction_id)
        if facts is None:
            facts = self.transactions[event.transaction_id] = TransactionFacts(
                event.transaction_id, event.authorisation_id, event.direction, event.currency)
        if isinstance(event, TransactionPosted):
            # Token and fees from the earliest processing report, whatever order they came in.
            reported = (event.reported_at, format_amount(event.token_amount))
            if facts.token_reported is None or reported < facts.token_reported:
                facts.token, facts.token_amount, facts.fees = (event.token, event.token_amount,
                                                               event.fees)
                facts.token_reported = reported
            # A later "processing" report is a TransactionPosted too, dated at its own
            # updatedAt: the creation is the earliest of them.
            facts.created_at = event.at if facts.created_at is None else min(facts.created_at,
                                                                             event.at)
        status = TRANSACTION_STATUS_OF[type(event)]
        facts.timeline.add(TRANSACTION, sighting(TRANSACTION, status, event.reported_at,
                                                 event.amount), self.prune)


class Unprojectable(InvalidInputError):
    """A recorded event the projections cannot apply. It is quarantined: listed with its
    position and why, and skipped by the runner, the point-in-time queries and the replay
    alike, so one bad event never stops the ledger."""


# Far enough from the calendar's ends that a hold window (or any policy's) never overflows.
_SAFE_FROM = datetime(1900, 1, 1, tzinfo=UTC)
_SAFE_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
_SAFE_AMOUNT = Decimal(10) ** 30


def check_projectable(payload: DomainEvent) -> None:
    """Dates the rules can add a window to, and finite amounts of at most 30 digits: the
    receiver refuses far narrower ranges, but a log may hold what an older version took."""
    for field in ("at", "observed_at"):
        moment = getattr(payload, field, None)
        if moment is not None and not _SAFE_FROM <= moment <= _SAFE_UNTIL:
            raise Unprojectable(f"{field} {moment.isoformat()} is outside "
                                f"{_SAFE_FROM:%Y} to {_SAFE_UNTIL:%Y}")
    for field in ("amount", "token_amount"):
        amount = getattr(payload, field, None)
        if isinstance(amount, Decimal) and not (amount.is_finite()
                                                and abs(amount) < _SAFE_AMOUNT):
            raise Unprojectable(f"{field} {amount} is not a finite amount below 10^30")


def apply_or_skip(book: AccountBook, payload: DomainEvent) -> bool:
    """Apply, or skip a quarantined event (False): what every reader of the log does."""
    try:
        book.apply(payload)
    except Unprojectable:
        return False
    return True


def quarantine_row(position: int, payload: DomainEvent,
                   why: Unprojectable) -> tuple[int, str, str, str | None, str]:
    """The ``quarantined`` table's row for an event: where it is, what it is about, and why."""
    return (position, *entity_of(payload), account_of(payload), str(why))


def entity_of(event: DomainEvent) -> tuple[str, str]:
    """The entity an event is about: (kind, id)."""
    match event:
        case HoldObserved() | HoldExpired():
            return "hold", event.authorisation_id
        case TransactionObserved():
            return "transaction", event.transaction_id
        case CardObserved():
            return "card", event.card_id
        case FundsDeposited() | FundsWithdrawn():
            return "account", event.account_id
    return "other", str(getattr(event, "account_id", None) or getattr(event, "customer_id", ""))


def contradiction(event: DomainEvent) -> tuple[str, str, str, str | None, str] | None:
    """The anomalies row of a report that changed a final state, if ``event`` is one.

    The other kinds of anomaly relate two entities and are computed by the views, whatever
    order the reports came in; this one is about the report itself."""
    if not (isinstance(event, Observed) and Anomaly.FINAL_STATE_CHANGED in event.anomalies):
        return None
    return (Anomaly.FINAL_STATE_CHANGED.value, *entity_of(event), account_of(event),
            event.at.isoformat())
