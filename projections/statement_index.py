"""Statements from lines already made: each account's lines, as the ledger knows them now,
walked once and kept, so a page costs a lookup instead of a walk through the account.

``AccountLines`` keeps an account's book, its walk (``projections.running``) and the lines
that walk has made. A report that comes later is taken in by carrying the walk on when every
business time it can change comes after the last one walked (reports arriving in the order
things happened: the usual case); a report about an earlier time makes it walk the account
again from the start.

A statement is printed from the kept lines when they are what it would print: when nothing
recorded after the period closed is about a time inside it. Otherwise (a correction to show,
or a statement as known at a moment before something about its period was recorded)
``print_from`` answers None and the statement is made from the log
(``projections.statement``), which is the definition the kept lines are tested against.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from ledger.domain.hold import HoldPolicy
from ledger.events import DomainEvent
from ledger.store import Event, StoredEvent
from projections.book import AccountBook, apply_or_skip
from projections.running import Running, moments_of, touches
from projections.statement import ZERO, Figures, Printed, StatementLine, line_at
from projections.views import Balance


class _Lines:
    """One currency's lines, in business-time order, and their times (for bisecting)."""

    def __init__(self, last: Figures = ZERO) -> None:
        self.lines: list[StatementLine] = []
        self.times: list[datetime] = []
        self.last = last
        """The balance after the last line (before the first: where these lines go on from)."""

    def add(self, line: StatementLine) -> None:
        self.lines.append(line)
        self.times.append(line.at)
        self.last = line.balance


class AccountLines:
    def __init__(self, account_id: str, policy: HoldPolicy) -> None:
        self.account_id, self.policy = account_id, policy
        self._forget()

    def _forget(self) -> None:
        self.position = 0
        """The last log position of the account's events taken in."""
        self._events: list[StoredEvent[Event]] = []
        """In log order, so in the order they were recorded (record times never go back)."""
        self._at_moment: dict[datetime, list[StoredEvent[Event]]] = {}
        self._book = AccountBook(self.account_id)
        self._running = Running(self._book, self.policy)
        self._currencies: dict[str, _Lines] = {}
        self._tails: dict[str, _Lines] | None = None
        """The lines of the expiries after the last moment walked, until the next event."""

    @property
    def size(self) -> int:
        return sum(len(c.lines) for c in self._currencies.values()) + len(self._events)

    def take(self, events: Sequence[StoredEvent[Event]]) -> None:
        """Take in the account's events after ``position``, in log order."""
        if not events:
            return
        self._tails = None
        walked = self._running.walked
        if walked is not None and any(min(moments_of(_payload(s))) <= walked for s in events):
            self._restart([*self._events, *events])
            return
        for stored in events:
            self._remember(stored)
            if apply_or_skip(self._book, _payload(stored)):
                for kind, entity_id, moment in touches(self._book, _payload(stored)):
                    self._running.add(kind, entity_id, moment)
        self._walk()

    def _restart(self, events: list[StoredEvent[Event]]) -> None:
        self._forget()
        for stored in events:
            self._remember(stored)
            apply_or_skip(self._book, _payload(stored))
        self._running = Running(self._book, self.policy)
        self._walk()

    def _remember(self, stored: StoredEvent[Event]) -> None:
        self._events.append(stored)
        self.position = stored.position
        for moment in moments_of(_payload(stored)):
            self._at_moment.setdefault(moment, []).append(stored)

    def _walk(self) -> None:
        for moment, balances in self._running.advance():
            self._record(moment, balances, self._currencies)

    def _record(self, moment: datetime, balances: list[Balance],
                into: dict[str, _Lines]) -> None:
        for balance in balances:
            kept = into.setdefault(balance.currency, _Lines())
            now = Figures(balance.posted, balance.held, balance.available)
            if now != kept.last:
                kept.add(line_at(moment, self._at_moment.get(moment, []), kept.last, now))

    def print_from(self, currency: str, start: datetime, end: datetime,
                   known_at: datetime) -> Printed | None:
        """The statement (``projections.statement.statement``) from the kept lines, or
        None when something recorded after the period closed is about a time in it."""
        closed = min(end, known_at)
        for stored in reversed(self._events):
            if stored.recorded_at <= closed:
                break
            if min(moments_of(_payload(stored))) <= end:
                return None
        parts = [self._currencies.get(currency, _Lines())]
        walked = self._running.walked
        if walked is None or end > walked:  # expiries still to come
            parts.append(self._tail().get(currency, _Lines()))
        return _between(parts, start, end)

    def _tail(self) -> dict[str, _Lines]:
        if self._tails is None:
            self._tails = {c: _Lines(kept.last) for c, kept in self._currencies.items()}
            for moment, balances in self._running.tail():
                self._record(moment, balances, self._tails)
        return self._tails


def _between(parts: list[_Lines], start: datetime, end: datetime) -> Printed:
    """The statement of the lines after ``start`` up to ``end`` of ``parts`` (one after
    another in business time): the balance before them, them, and the balance after."""
    opening = closing = ZERO
    lines: list[StatementLine] = []
    for part in parts:
        first, last = bisect.bisect_right(part.times, start), bisect.bisect_right(part.times, end)
        if first:
            opening = part.lines[first - 1].balance
        if last:
            closing = part.lines[last - 1].balance
        lines += part.lines[first:last]
    return Printed(opening, lines, closing)


def _payload(stored: StoredEvent[Event]) -> DomainEvent:
    assert isinstance(stored.payload, DomainEvent)
    return stored.payload


class StatementIndex:
    """The kept lines of the accounts asked about lately, at most ``budget`` lines and
    events in all (the least recently asked account goes first)."""

    def __init__(self, policy: HoldPolicy, budget: int = 2_000_000) -> None:
        self.policy, self.budget = policy, budget
        self._accounts: OrderedDict[str, AccountLines] = OrderedDict()

    def account(self, account_id: str) -> AccountLines:
        found = self._accounts.pop(account_id, None)
        if found is None:
            found = AccountLines(account_id, self.policy)
        self._accounts[account_id] = found
        return found

    def trim(self) -> None:
        """Forget accounts, least recently asked first, until the rest fit the budget (the
        one asked last is always kept)."""
        while len(self._accounts) > 1 and sum(a.size for a in self._accounts.values()
                                              ) > self.budget:
            self._accounts.popitem(last=False)
