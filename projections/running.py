"""An account's figures walked forward through business time: at each moment, only what
changes then is re-derived, so a statement or a journal of n changes costs about n steps,
not n views of the whole account.

The parts are the full view's (``projections.views``): a transaction's part as of the
moment, its card's view, a hold's view with the debits linked to it. A transaction's change
re-derives the hold it nets; a card's change, its holds; and a hold is looked at again when
the expiry it had last reached comes (a heap). A property checks every moment against
``view(book, moment)``.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.events import (
    CardObserved,
    DomainEvent,
    FundsDeposited,
    FundsWithdrawn,
    HoldExpired,
    HoldObserved,
    Observed,
    TransactionObserved,
)
from ledger.money import EXACT
from projections.book import AccountBook
from projections.views import (
    Balance,
    CardView,
    HoldView,
    Links,
    TransactionPart,
    balance,
    card_view,
    hold_view,
    transaction_part,
)

_ZERO = Decimal(0)


class Running:
    def __init__(self, book: AccountBook, policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.book, self.policy = book, policy
        self._at: dict[datetime, list[tuple[str, str]]] = {}
        for tx_id, tx in book.transactions.items():
            for sighting in tx.timeline.sightings:
                self._at.setdefault(sighting.at, []).append(("transaction", tx_id))
        for hold_id, facts in book.holds.items():
            for sighting in facts.timeline.sightings:
                self._at.setdefault(sighting.at, []).append(("hold", hold_id))
        for card_id, timeline in book.cards.items():
            for sighting in timeline.sightings:
                self._at.setdefault(sighting.at, []).append(("card", card_id))
        for n, movement in enumerate(book.movements):
            self._at.setdefault(movement.at, []).append(("movement", str(n)))
        self._holds_of_card: dict[str, set[str]] = {}
        for hold_id, facts in book.holds.items():
            self._holds_of_card.setdefault(facts.card_id, set()).add(hold_id)
        self.parts: dict[str, TransactionPart] = {}
        self.cards: dict[str, CardView] = {}
        self.links = Links()
        self.remaining: dict[str, tuple[str, Decimal]] = {}
        self.deposits: dict[str, Decimal] = {}
        self.debits: dict[str, Decimal] = {}
        self.credits: dict[str, Decimal] = {}
        self.held: dict[str, Decimal] = {}
        self._expiring: list[tuple[datetime, str]] = []
        self._pending = sorted(self._at)
        """Every moment of a report or movement, in order; those from ``_next`` on are
        still to walk."""
        self._next = 0
        self.walked: datetime | None = None
        """The last moment of a report or movement walked."""

    def walk(self, until: datetime | None = None) -> Iterator[tuple[datetime, list[Balance]]]:
        """Each moment at which something may change, up to ``until``, with the balances
        as of it (every currency the account has touched so far)."""
        yield from self.advance(until)
        yield from self._expiries(until, through=True)

    def advance(self, until: datetime | None = None,
                ) -> Iterator[tuple[datetime, list[Balance]]]:
        """``walk`` as far as the last report or movement not yet walked (up to ``until``),
        without the expiries after it: a report that comes later may still change those."""
        while self._next < len(self._pending):
            moment = self._pending[self._next]
            if until is not None and moment > until:
                return
            self._next += 1
            if self._next > 4_096:  # what was walked is let go: a walk of millions of moments
                del self._pending[:self._next]
                self._next = 0
            yield from self._expiries(moment, through=False)
            self._step(moment, self._at.pop(moment))
            self.walked = moment
            yield moment, self.balances()

    def add(self, kind: str, entity_id: str, moment: datetime) -> None:
        """Walk ``entity_id`` (a ``hold``, ``transaction``, ``card`` or ``movement`` index,
        already in the book) again at ``moment``, which must come after every moment walked:
        how a walk takes in a report that arrived after it began. Looking at a hold, a
        transaction or a card again when nothing changed is harmless (a step re-derives what
        it touches); a movement is added once, since walking it adds its amount."""
        assert self.walked is None or moment > self.walked, (moment, self.walked)
        if moment not in self._at:
            bisect.insort(self._pending, moment, lo=self._next)
        self._at.setdefault(moment, []).append((kind, entity_id))
        if kind == "hold":
            self._holds_of_card.setdefault(self.book.holds[entity_id].card_id,
                                           set()).add(entity_id)

    def retake(self, moment: datetime, touched: list[tuple[str, str]]) -> list[Balance]:
        """The balances as of ``moment``, the last one walked or after it, once the book's
        facts about ``touched`` (as ``touches`` names them) changed after the walk got there:
        how a report learnt later is counted in figures already walked."""
        for kind, entity_id in touched:
            if kind == "hold":
                self._holds_of_card.setdefault(self.book.holds[entity_id].card_id,
                                               set()).add(entity_id)
        self._step(moment, [(kind, entity_id) for kind, entity_id in touched if (
            kind != "movement" or self.book.movements[int(entity_id)].at <= moment)])
        return self.balances()

    def forget(self, holds: set[str], transactions: set[str]) -> None:
        """Let go of holds and transactions that can change no more: no report about them
        is still to come, every moment of theirs is walked, and a hold's remaining is 0 (so
        what it adds to ``held`` stays as it is). What they added to the totals stays."""
        for tx_id in transactions:
            self.parts.pop(tx_id, None)
            del self.book.transactions[tx_id]
        for hold_id in holds:
            facts = self.book.holds.pop(hold_id)
            self.remaining.pop(hold_id, None)
            self._holds_of_card.get(facts.card_id, set()).discard(hold_id)
            self.links.counted.pop((hold_id, facts.currency), None)
            self.links.known.pop((hold_id, facts.currency), None)
        if holds and self._expiring:
            self._expiring = [e for e in self._expiring if e[1] not in holds]
            heapq.heapify(self._expiring)

    def hold_at_walked(self, hold_id: str) -> HoldView | None:
        """The hold's view as of the last moment walked."""
        facts = self.book.holds[hold_id]
        return hold_view(self.book.account_id, facts, self.walked, self.walked,
                         self.cards.get(facts.card_id), self.links, self.policy)

    def remaining_of(self, hold_id: str) -> Decimal:
        found = self.remaining.get(hold_id)
        return _ZERO if found is None else found[1]

    def tail(self) -> list[tuple[datetime, list[Balance]]]:
        """The expiries still to come after the last moment walked, as ``walk`` would give
        them, leaving the walk where it is (``advance`` can go on from there)."""
        if not self._expiring:
            return []
        kept = self.remaining, self.held, self._expiring
        self.remaining, self.held = dict(self.remaining), dict(self.held)
        self._expiring = list(self._expiring)
        try:
            return list(self._expiries(None, through=True))
        finally:
            self.remaining, self.held, self._expiring = kept

    def _expiries(self, moment: datetime | None,
                  through: bool) -> Iterator[tuple[datetime, list[Balance]]]:
        """Moments before ``moment`` (or up to it, ``through``; None: all) at which only a
        hold's expiry falls."""
        while self._expiring and (moment is None or self._expiring[0][0] < moment or (
                through and self._expiring[0][0] == moment)):
            when = self._expiring[0][0]
            due = set()
            while self._expiring and self._expiring[0][0] == when:
                due.add(heapq.heappop(self._expiring)[1])
            for hold_id in sorted(due):
                self._hold(hold_id, when)
            yield when, self.balances()

    def _step(self, moment: datetime, touched: list[tuple[str, str]]) -> None:
        holds: set[str] = set()
        for kind, entity_id in touched:
            if kind == "movement":
                movement = self.book.movements[int(entity_id)]
                _add(self.deposits, movement.currency, movement.amount)
            elif kind == "card":
                self._card(entity_id, moment)
                holds |= self._holds_of_card.get(entity_id, set())
            elif kind == "hold":
                holds.add(entity_id)
        for kind, entity_id in touched:
            if kind == "transaction":
                linked = self._transaction(entity_id, moment)
                if linked is not None:
                    holds.add(linked)
        while self._expiring and self._expiring[0][0] <= moment:
            holds.add(heapq.heappop(self._expiring)[1])
        for hold_id in sorted(holds):
            self._hold(hold_id, moment)

    def _card(self, card_id: str, moment: datetime) -> None:
        new = card_view(self.book.account_id, card_id, self.book.cards[card_id], moment,
                        self.policy)
        if new is None:
            self.cards.pop(card_id, None)
        else:
            self.cards[card_id] = new

    def _transaction(self, tx_id: str, moment: datetime) -> str | None:
        tx = self.book.transactions[tx_id]
        old, new = self.parts.get(tx_id), transaction_part(tx, moment)
        totals = self.debits if tx.direction == "debit" else self.credits
        if old is not None:
            self.links.add(old, -1)
            if old.counted:
                _add(totals, tx.currency, EXACT.minus(old.amount))
        if new is not None:
            self.parts[tx_id] = new
            self.links.add(new, 1)
            if new.counted:
                _add(totals, tx.currency, new.amount)
        else:
            self.parts.pop(tx_id, None)
        linked = tx.authorisation_id
        return linked if linked is not None and linked in self.book.holds else None

    def _hold(self, hold_id: str, moment: datetime) -> None:
        facts = self.book.holds[hold_id]
        found = hold_view(self.book.account_id, facts, moment, moment,
                          self.cards.get(facts.card_id), self.links, self.policy)
        old = self.remaining.pop(hold_id, None)
        if old is not None:
            _add(self.held, old[0], EXACT.minus(old[1]))
        if found is not None:
            self.remaining[hold_id] = (found.currency, found.remaining)
            _add(self.held, found.currency, found.remaining)
            if found.closed is None and found.expires_at > moment:
                heapq.heappush(self._expiring, (found.expires_at, hold_id))

    def balances(self) -> list[Balance]:
        currencies = sorted(set(self.deposits) | set(self.debits) | set(self.credits)
                            | set(self.held))
        return [balance(self.book.account_id, c, self.deposits.get(c, _ZERO),
                        self.debits.get(c, _ZERO), self.credits.get(c, _ZERO),
                        self.held.get(c, _ZERO)) for c in currencies]


def moments_of(event: DomainEvent) -> set[datetime]:
    """The business times a line can be about an event: its own and, for a report, the
    time it was reported at (which the state rule orders by)."""
    return {event.at, event.reported_at} if isinstance(event, Observed) else {event.at}


def touches(book: AccountBook, event: DomainEvent) -> list[tuple[str, str, datetime]]:
    """What a walk must look at again (``Running.add``), and when, for an event just folded
    into ``book``: its entity at each of its business times."""
    match event:
        case FundsDeposited() | FundsWithdrawn():
            return [("movement", str(len(book.movements) - 1), event.at)]
        case HoldObserved():
            entity = ("hold", event.authorisation_id)
        case HoldExpired():  # about a hold the book has, or nothing to look at
            if event.authorisation_id not in book.holds:
                return []
            entity = ("hold", event.authorisation_id)
        case TransactionObserved():
            entity = ("transaction", event.transaction_id)
        case CardObserved():
            entity = ("card", event.card_id)
        case _:
            return []
    return [(*entity, moment) for moment in sorted(moments_of(event))]


def _add(totals: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    totals[currency] = EXACT.add(totals.get(currency, _ZERO), amount)
