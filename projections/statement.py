"""An account's statement for a period: the opening balance, one line per change in
business-time order with the running balance after it, and the closing balance.

A statement's regular lines are what the ledger knew when the period closed (reports
recorded by its end). A report learnt later about that period is never a silent rewrite: it
shows, after them, as a **correction** line dated when it was learnt (``known_at``), with the
change it made to the closing figures. So a statement printed again later repeats every line
it printed before, and the statement as known at a past moment is the one printed then.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal

import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.events import (
    DomainEvent,
    FundsDeposited,
    FundsWithdrawn,
    HoldAmended,
    HoldCaptured,
    HoldCaptureStarted,
    HoldExpired,
    HoldObserved,
    HoldPlaced,
    HoldReleased,
    HoldReleaseStarted,
    Observed,
    TransactionObserved,
    TransactionPosted,
    TransactionProcessed,
    TransactionReversalStarted,
    TransactionReversed,
)
from ledger.interop import JSONReady
from ledger.money import EXACT
from ledger.store import Event, StoredEvent
from projections.book import AccountBook, apply_or_skip
from projections.running import Running
from projections.views import Balance, view


class Figures(msgspec.Struct, JSONReady, frozen=True):
    posted: Decimal
    held: Decimal
    available: Decimal


ZERO = Figures(Decimal(0), Decimal(0), Decimal(0))


class StatementLine(msgspec.Struct, JSONReady, frozen=True, kw_only=True, rename="camel"):
    at: datetime
    """The change's business time."""
    recorded_at: datetime | None
    """When the ledger recorded what made it (None: a hold's expiry, which no report makes)."""
    kind: str
    """deposit, withdrawal, hold placed, hold amended, captured, released, expired, debit,
    credit, cleared, reversal (see ``kind_of``)."""
    authorisation_id: str | None = None
    transaction_id: str | None = None
    card_id: str | None = None
    chain_transaction: str | None = None
    change: Figures
    """The signed change to each figure."""
    balance: Figures
    """The running balance after it."""
    correction: bool = False
    """Learnt after the period closed: its change is to the closing figures."""
    known_at: datetime | None = None
    """When a correction was learnt."""


def figures(book: AccountBook, moment: datetime, currency: str,
            policy: HoldPolicy) -> Figures:
    return figures_in(view(book, moment, policy).balances, currency)


def figures_in(balances: Sequence[Balance], currency: str) -> Figures:
    for balance in balances:
        if balance.currency == currency:
            return Figures(balance.posted, balance.held, balance.available)
    return ZERO


def _change(before: Figures, after: Figures) -> Figures:
    return Figures(EXACT.subtract(after.posted, before.posted),
                   EXACT.subtract(after.held, before.held),
                   EXACT.subtract(after.available, before.available))


_KINDS: tuple[tuple[type, str], ...] = (
    (FundsDeposited, "deposit"), (FundsWithdrawn, "withdrawal"),
    (TransactionReversed, "reversal"), (TransactionReversalStarted, "reversal"),
    (HoldCaptured, "captured"), (HoldCaptureStarted, "captured"),
    (HoldReleased, "released"), (HoldReleaseStarted, "released"),
    (HoldExpired, "expired"), (HoldAmended, "hold amended"), (HoldPlaced, "hold placed"),
    (TransactionProcessed, "cleared"))


def kind_of(events: Sequence[DomainEvent]) -> str:
    """What a change was, from the events behind it (the first that names it): a capture
    and its debit at one moment are one ``captured`` line; a debit with no hold is a
    ``debit``, a credit (a refund) a ``credit``; a change with no event is an expiry."""
    for event_type, kind in _KINDS:
        if any(type(e) is event_type for e in events):
            return kind
    for event in events:
        if isinstance(event, TransactionPosted):
            return "debit" if event.direction == "debit" else "credit"
    return "expired" if not events else type(events[0]).__name__


def _references(events: Iterable[DomainEvent]) -> dict[str, str]:
    found: dict[str, str] = {}
    for event in events:
        for field in ("authorisation_id", "transaction_id", "card_id", "chain_transaction"):
            value = getattr(event, field, None)
            if isinstance(value, str):
                found.setdefault(field, value)
    return found


def moments_of(event: DomainEvent) -> set[datetime]:
    """The business times a line can be about an event: its own and, for a report, the
    time it was reported at (which the state rule orders by)."""
    return {event.at, event.reported_at} if isinstance(event, Observed) else {event.at}


_MONEY = (FundsDeposited, FundsWithdrawn, HoldObserved, HoldExpired, TransactionObserved)
"""The events that move an account's figures (a card's or the account's own reports at the
same moment do not: they are not what a line is about)."""


def line_at(moment: datetime, stored: Sequence[StoredEvent[Event]], before: Figures,
            after: Figures, **extra: object) -> StatementLine:
    """The line of a change at ``moment`` from ``before`` to ``after``, made by ``stored``
    (the events at that moment)."""
    events = [s.payload for s in stored if isinstance(s.payload, _MONEY)]
    return StatementLine(at=moment, recorded_at=max((s.recorded_at for s in stored),
                                                    default=None),
                         kind=kind_of(events), change=_change(before, after), balance=after,
                         **_references(events), **extra)  # type: ignore[arg-type]


class Printed(msgspec.Struct, frozen=True):
    opening: Figures
    lines: list[StatementLine]
    closing: Figures


def statement(account_id: str, events: Sequence[StoredEvent[Event]], currency: str,
              start: datetime, end: datetime, known_at: datetime,
              policy: HoldPolicy = DEFAULT_POLICY) -> Printed:
    """The statement of ``events`` (the account's, in log order, recorded by ``known_at``)
    for the period after ``start`` up to ``end``, in ``currency``."""
    printed = stream(account_id, events, currency, start, end, known_at, policy)
    opening = next(printed)
    assert isinstance(opening, Figures)
    lines = [line for line in printed if isinstance(line, StatementLine)]
    return Printed(opening, lines, lines[-1].balance if lines else opening)


def stream(account_id: str, events: Sequence[StoredEvent[Event]], currency: str,
           start: datetime, end: datetime, known_at: datetime,
           policy: HoldPolicy = DEFAULT_POLICY) -> Iterator[Figures | StatementLine]:
    """``statement`` as it is made: the opening figures, then each line (the closing
    figures are the last line's, or the opening's), holding no line once given."""
    closed = min(end, known_at)
    book = AccountBook(account_id)
    at_moment: dict[datetime, list[StoredEvent[Event]]] = {}
    for stored in events:
        if stored.recorded_at <= closed:
            assert isinstance(stored.payload, DomainEvent)
            apply_or_skip(book, stored.payload)
            for moment in moments_of(stored.payload):
                if start < moment <= end:
                    at_moment.setdefault(moment, []).append(stored)
    opening = previous = ZERO
    started = False
    for moment, balances in Running(book, policy).walk(until=end):
        now = figures_in(balances, currency)
        if moment <= start:
            opening = previous = now
            continue
        if not started:
            started = True
            yield opening
        if now != previous:
            yield line_at(moment, at_moment.get(moment, []), previous, now)
            previous = now
    if not started:
        yield opening
    for stored in events:  # learnt after the period closed: each a correction of its close
        if stored.recorded_at <= closed:
            continue
        assert isinstance(stored.payload, DomainEvent)
        apply_or_skip(book, stored.payload)
        now = figures(book, end, currency, policy)
        if now != previous:
            yield line_at(stored.payload.at, [stored], previous, now, correction=True,
                          known_at=stored.recorded_at)
            previous = now
