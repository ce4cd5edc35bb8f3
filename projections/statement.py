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
from projections.running import Running, moments_of
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
    credit, cleared, reversal (see ``_rank``)."""
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


def _rank(event: DomainEvent) -> tuple[int, str]:
    """What an event says a change was, and how strongly (the lowest rank names the line):
    a capture and its debit at one moment are one ``captured`` line; a debit with no hold is
    a ``debit``, a credit (a refund) a ``credit``; a change with no event is an expiry."""
    for rank, (event_type, kind) in enumerate(_KINDS):
        if type(event) is event_type:
            return rank, kind
    if isinstance(event, TransactionPosted):
        return len(_KINDS), "debit" if event.direction == "debit" else "credit"
    return len(_KINDS) + 1, type(event).__name__


_REFERENCES = ("authorisation_id", "transaction_id", "card_id", "chain_transaction")


class Moment:
    """What a line at one business time says, from the money events about it, taken one by
    one: its kind, the first of each reference, and the latest record time (kept instead of
    the events, so that a statement of millions of lines holds no event)."""

    __slots__ = ("kind", "rank", "recorded_at", "references")

    def __init__(self) -> None:
        self.rank, self.kind = len(_KINDS) + 2, "expired"
        self.references: dict[str, str] = {}
        self.recorded_at: datetime | None = None

    def add(self, event: DomainEvent, recorded_at: datetime) -> None:
        if self.recorded_at is None or recorded_at > self.recorded_at:
            self.recorded_at = recorded_at
        if not isinstance(event, _MONEY):
            return
        rank, kind = _rank(event)
        if rank < self.rank:
            self.rank, self.kind = rank, kind
        for field in _REFERENCES:
            value = getattr(event, field, None)
            if isinstance(value, str):
                self.references.setdefault(field, value)

    def line(self, moment: datetime, before: Figures, after: Figures,
             **extra: object) -> StatementLine:
        """The line of this moment's change from ``before`` to ``after``."""
        return StatementLine(at=moment, recorded_at=self.recorded_at, kind=self.kind,
                             change=_change(before, after), balance=after,
                             **self.references, **extra)  # type: ignore[arg-type]


_MONEY = (FundsDeposited, FundsWithdrawn, HoldObserved, HoldExpired, TransactionObserved)
"""The events that move an account's figures (a card's or the account's own reports at the
same moment do not: they are not what a line is about)."""


def line_at(moment: datetime, stored: Sequence[StoredEvent[Event]], before: Figures,
            after: Figures, **extra: object) -> StatementLine:
    """The line of a change at ``moment`` from ``before`` to ``after``, made by ``stored``
    (the events at that moment)."""
    found = Moment()
    for event in stored:
        assert isinstance(event.payload, DomainEvent)
        found.add(event.payload, event.recorded_at)
    return found.line(moment, before, after, **extra)


def note_moments(moments: dict[datetime, Moment], event: DomainEvent, recorded_at: datetime,
                 start: datetime, end: datetime) -> None:
    """What ``event`` says of the lines at its business times after ``start`` up to ``end``."""
    for moment in moments_of(event):
        if start < moment <= end:
            found = moments.get(moment)
            if found is None:
                found = moments[moment] = Moment()
            found.add(event, recorded_at)


class Printed(msgspec.Struct, frozen=True):
    opening: Figures
    lines: list[StatementLine]
    closing: Figures


def statement(account_id: str, events: Iterable[StoredEvent[Event]], currency: str,
              start: datetime, end: datetime, known_at: datetime,
              policy: HoldPolicy = DEFAULT_POLICY) -> Printed:
    """The statement of ``events`` (the account's, in log order, recorded by ``known_at``)
    for the period after ``start`` up to ``end``, in ``currency``."""
    walk = StatementWalk(account_id, currency, start, end, known_at, policy)
    walk.take(events)
    printed = walk.lines()
    opening = next(printed)
    assert isinstance(opening, Figures)
    lines = [line for line in printed if isinstance(line, StatementLine)]
    return Printed(opening, lines, lines[-1].balance if lines else opening)


class StatementWalk:
    """``statement`` as it is made: take the account's events (``take``, in log order, in
    as many pieces as they come), then ``lines`` gives the opening figures and each line.
    It holds the account's whole book: the definition, kept plain. A statement of millions
    of lines is streamed by ``projections.statement_stream``, which a property checks
    against this."""

    def __init__(self, account_id: str, currency: str, start: datetime, end: datetime,
                 known_at: datetime, policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.currency, self.start, self.end, self.policy = currency, start, end, policy
        self.closed = min(end, known_at)
        self.book = AccountBook(account_id)
        self.moments: dict[datetime, Moment] = {}
        self.late: list[StoredEvent[Event]] = []
        """Recorded after the period closed (by ``known_at``): each a correction."""

    def take(self, events: Iterable[StoredEvent[Event]]) -> None:
        for stored in events:
            payload = stored.payload
            assert isinstance(payload, DomainEvent)
            if stored.recorded_at > self.closed:
                self.late.append(stored)
                continue
            apply_or_skip(self.book, payload)
            note_moments(self.moments, payload, stored.recorded_at, self.start, self.end)

    def lines(self) -> Iterator[Figures | StatementLine]:
        opening = previous = ZERO
        started = False
        for moment, balances in Running(self.book, self.policy).walk(until=self.end):
            now = figures_in(balances, self.currency)
            if moment <= self.start:
                opening = previous = now
                continue
            if not started:
                started = True
                yield opening
            if now != previous:
                yield self.moments.pop(moment, Moment()).line(moment, previous, now)
                previous = now
        if not started:
            yield opening
        self.moments.clear()
        for stored in self.late:  # learnt after the period closed: each a correction
            assert isinstance(stored.payload, DomainEvent)
            apply_or_skip(self.book, stored.payload)
            now = figures(self.book, self.end, self.currency, self.policy)
            if now != previous:
                yield line_at(stored.payload.at, [stored], previous, now, correction=True,
                              known_at=stored.recorded_at)
                previous = now
