"""A statement streamed from the log, for accounts with millions of lines: the lines of
``projections.statement.statement``, made while the account's events are read, and what
can change no more let go as the walk through business time passes it.

The events come by the log's account index, so in the order they were recorded, not in
business time. Two passes over them:

1. ``survey``: for each hold, transaction and card, the earliest and the latest business
   time of its events, and where its last event is. A debit's events count as its hold's
   too (they change what the hold nets), and a report recorded after the period closed
   keeps its entities to the end (it is a correction).
2. ``take``: the events again. After each batch the walk (``projections.running``) goes up
   to just before the earliest business time of the events still to come: a report changes
   what is known from its own time on, and a placement also dates its hold's creation, so
   it counts from the hold's earliest time. Before that, the walk says what the whole book
   says. Then the holds and transactions that are done are let go: their last event taken,
   every moment of theirs walked, a hold's remaining 0 (an expired one's also needs no
   correction of its card to come, which could move its expiry).

Reports recorded after the period closed come last in the log (record times never go
back): the walk is closed through the period's end at the first of them, and each is then a
correction, counted on the walk's closing figures as it comes (``Running.retake``).

What stays meanwhile: the entities not done yet (in a log recorded about as things happen,
a few days' worth), the entities of corrections, the account's deposits and withdrawals (one
small record each), cards, and the survey: about 110 bytes per entity and 8 per event (12
while it is made), where the book of the whole account took about 2.6 KB a line. Entities
are keyed by their id's hash; two ids with one hash are only kept longer, never counted
wrong. A property checks every line against ``statement``, for every history and arrival
order.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.events import (
    CardObserved,
    DomainEvent,
    HoldExpired,
    HoldObserved,
    HoldPlaced,
    Observed,
    TransactionObserved,
)
from ledger.store import Event, StoredEvent
from ledger.store.planner import from_micros, micros
from projections.book import AccountBook, apply_or_skip
from projections.running import Running, moments_of, touches
from projections.statement import (
    ZERO,
    Figures,
    Moment,
    StatementLine,
    figures_in,
    line_at,
    note_moments,
)
from projections.views import Balance

_NEVER = 2**62
"""Later than any business time, in microseconds; as a last event's place: never done."""
_FIRST = micros(datetime(1, 1, 2, tzinfo=UTC))
"""The first representable day but one: no walk goes to before it."""
HOLD, TRANSACTION, CARD = 0, 1, 2


def entities_of(event: DomainEvent) -> list[tuple[int, str]]:
    """The entities an event tells about: a debit tells about its hold too."""
    match event:
        case HoldObserved() | HoldExpired():
            return [(HOLD, event.authorisation_id)]
        case TransactionObserved():
            found = [(TRANSACTION, event.transaction_id)]
            if event.authorisation_id is not None:
                found.append((HOLD, event.authorisation_id))
            return found
        case CardObserved():
            return [(CARD, event.card_id)]
    return []


class _Survey:
    """The first pass: per entity its earliest and latest business time and its last event's
    place; per event the earliest time the walk must wait for it (``horizons``, once done)."""

    def __init__(self) -> None:
        self.slots: tuple[dict[int, int], ...] = ({}, {}, {})
        self.earliest, self.latest, self.last = array("q"), array("q"), array("q")
        self._placed = array("i")  # per event: a placement's hold slot, else -1
        self._hold_of = array("q")
        """Per entity: for a transaction, the slot of the hold its reports name (-1: none)."""
        self._more_holds: dict[int, set[int]] = {}
        """A transaction whose reports name more than one hold: the others."""
        self.horizons = array("q")
        """Per event: its earliest business time, until ``finish`` makes it the earliest
        time the walk must wait for among the events after it."""
        self.events = 0

    def slot(self, kind: int, entity_id: str) -> int | None:
        return self.slots[kind].get(hash(entity_id))

    def add(self, event: DomainEvent, late: int | None) -> None:
        """One event, the next in log order; ``late``: it was recorded after the period
        closed, which ends then (µs). (One a rule cannot apply, which the walk skips,
        counts here all the same: its entity is only kept longer.)"""
        place = self.events
        self.events += 1
        at = event.at
        reported = event.reported_at if isinstance(event, Observed) else at
        first, newest = micros(min(at, reported)), micros(max(at, reported))
        earliest, latest, last = self.earliest, self.latest, self.last
        if late is not None:  # a correction, counted after the walk
            self.horizons.append(_NEVER)
            self._placed.append(-1)
            for kind, entity_id in entities_of(event):
                # Its entities are kept to the end. One only corrections tell about, and
                # none of them by the period's end, gets no mark: it changes no figure.
                slot = self.slot(kind, entity_id)
                if slot is None and first <= late:
                    slot = self._slot_for(kind, entity_id)
                if slot is not None:
                    last[slot] = _NEVER
                    earliest[slot] = min(earliest[slot], first)
            return
        found = [self._slot_for(kind, entity_id) for kind, entity_id in entities_of(event)]
        for slot in found:
            last[slot] = place
            if first < earliest[slot]:
                earliest[slot] = first
            if newest > latest[slot]:
                latest[slot] = newest
        if isinstance(event, TransactionObserved) and len(found) == 2:
            tx, hold = found
            if self._hold_of[tx] < 0:
                self._hold_of[tx] = hold
            elif self._hold_of[tx] != hold:
                self._more_holds.setdefault(tx, set()).add(hold)
        # A report changes what is known from its own time on; only a placement also
        # dates its hold's creation, which counts at every moment the hold has a state.
        self.horizons.append(first)
        self._placed.append(found[0] if isinstance(event, HoldPlaced) else -1)

    def _slot_for(self, kind: int, entity_id: str) -> int:
        slots = self.slots[kind]
        key = hash(entity_id)
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = len(self.earliest)
            self.earliest.append(_NEVER)
            self.latest.append(-_NEVER)
            self.last.append(-1)
            self._hold_of.append(-1)
        return slot

    def finish(self) -> None:
        """The horizons, from the last event back, in place. A hold lasts as long as any
        debit that names it: a later report of the debit (which need not name it again)
        changes what the hold nets."""
        last, latest = self.last, self.latest
        for tx, hold in enumerate(self._hold_of):
            for linked in (hold, *self._more_holds.get(tx, ())) if hold >= 0 else ():
                last[linked] = max(last[linked], last[tx])
                latest[linked] = max(latest[linked], latest[tx])
        horizons, earliest, placed, soonest = self.horizons, self.earliest, self._placed, _NEVER
        for place in range(len(horizons) - 1, -1, -1):
            starts = horizons[place]
            if placed[place] >= 0:
                starts = min(starts, earliest[placed[place]])
            horizons[place] = soonest
            soonest = min(soonest, starts)
        self._placed, self._hold_of, self._more_holds = array("i"), array("q"), {}


class StreamedStatement:
    """``survey`` every event (the account's, in log order, recorded by ``known_at``), then
    ``take`` the same ones in the same order, then ``finish``: together they give the
    opening figures and then each line, as ``statement`` prints them."""

    def __init__(self, account_id: str, currency: str, start: datetime, end: datetime,
                 known_at: datetime, policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.currency, self.start, self.end, self.policy = currency, start, end, policy
        self.closed = min(end, known_at)
        self._survey = _Survey()
        self._book = AccountBook(account_id)
        self._running = Running(self._book, policy)
        self._moments: dict[datetime, Moment] = {}
        self._done: list[tuple[int, str]] = []
        """Holds and transactions whose last event is taken, to let go once walked past."""
        self._taken = 0
        self._surveyed = False
        self._closed_walk = False
        """The walk went through the period's end: what comes now are corrections."""
        self._opening = self._previous = ZERO
        self._started = False

    def survey(self, events: Iterable[StoredEvent[Event]]) -> None:
        end = micros(self.end)
        for stored in events:
            self._survey.add(_payload(stored), end if stored.recorded_at > self.closed else None)

    def take(self, events: Iterable[StoredEvent[Event]]) -> list[Figures | StatementLine]:
        """Fold events in (after ``survey`` has seen them all); the lines made so far."""
        if not self._surveyed:
            self._survey.finish()
            self._surveyed = True
        made: list[Figures | StatementLine] = []
        for stored in events:
            assert self._taken < self._survey.events, "take more events than surveyed"
            # Record times never go back along the log: once one is after the period
            # closed, so are all the rest, and every regular line is made before them.
            if stored.recorded_at > self.closed:
                made += self._close_walk()
                made += self._correction(stored)
            else:
                assert not self._closed_walk, "a record time went back along the log"
                self._take(stored)
            self._taken += 1
        if self._taken and not self._closed_walk:
            horizon = self._survey.horizons[self._taken - 1]
            if horizon > _FIRST:  # else an event dated in year 1 is still to come
                until = self.end if horizon == _NEVER else min(
                    self.end, from_micros(horizon - 1))
                made += self._lines(self._running.advance(until))
                self._let_go()
        return made

    def finish(self) -> list[Figures | StatementLine]:
        """The lines still to walk, once every surveyed event is taken."""
        assert self._taken == self._survey.events, "every surveyed event must be taken"
        return self._close_walk()

    def _close_walk(self) -> list[Figures | StatementLine]:
        if self._closed_walk:
            return []
        self._closed_walk = True
        made = list(self._lines(self._running.walk(until=self.end)))
        if not self._started:
            made.append(self._opening)
        self._moments.clear()
        return made

    def _correction(self, stored: StoredEvent[Event]) -> list[StatementLine]:
        """A report learnt after the period closed, as the change it makes to the closing
        figures (the walk's, at the end: the report's entity looked at again there)."""
        payload = _payload(stored)
        if not self._about_the_period(payload) or not apply_or_skip(self._book, payload):
            return []
        touched = [(kind, entity_id) for kind, entity_id, _ in touches(self._book, payload)]
        now = figures_in(self._running.retake(self.end, touched), self.currency)
        if now == self._previous:
            return []
        line = line_at(payload.at, [stored], self._previous, now, correction=True,
                       known_at=stored.recorded_at)
        self._previous = now
        return [line]

    def _about_the_period(self, event: DomainEvent) -> bool:
        """Whether a report learnt late can change the figures at the period's end: it, or
        an entity it tells about, has a business time by then. (One that cannot is not even
        folded in: the reports of the months after an old period keep no memory.)"""
        end = micros(self.end)
        if micros(min(moments_of(event))) <= end:
            return True
        return any(slot is not None and self._survey.earliest[slot] <= end
                   for slot in (self._survey.slot(*e) for e in entities_of(event)))

    def _take(self, stored: StoredEvent[Event]) -> None:
        payload = _payload(stored)
        note_moments(self._moments, payload, stored.recorded_at, self.start, self.end)
        if apply_or_skip(self._book, payload):
            for kind, entity_id, moment in touches(self._book, payload):
                self._running.add(kind, entity_id, moment)
            entities = entities_of(payload)
            if isinstance(payload, TransactionObserved):  # the hold its first report named
                linked = self._book.transactions[payload.transaction_id].authorisation_id
                if linked is not None and linked != payload.authorisation_id:
                    entities.append((HOLD, linked))
            for entity in entities:
                slot = self._survey.slot(*entity)
                if entity[0] != CARD and slot is not None and (
                        self._survey.last[slot] == self._taken):
                    self._done.append(entity)

    def _lines(self, walked: Iterable[tuple[datetime, list[Balance]]],
               ) -> Iterator[Figures | StatementLine]:
        for moment, balances in walked:
            found = self._moments.pop(moment, None)
            now = figures_in(balances, self.currency)
            if moment <= self.start:
                self._opening = self._previous = now
                continue
            if not self._started:
                self._started = True
                yield self._opening
            if now != self._previous:
                yield (found or Moment()).line(moment, self._previous, now)
                self._previous = now

    def _let_go(self) -> None:
        walked = self._running.walked
        if walked is None or not self._done:
            return
        walked_us, survey = micros(walked), self._survey
        holds, transactions, waiting = set(), set(), []
        for kind, entity_id in self._done:
            slot = survey.slot(kind, entity_id)
            assert slot is not None
            if survey.latest[slot] > walked_us:
                waiting.append((kind, entity_id))
            elif kind == TRANSACTION:
                transactions.add(entity_id)
            elif entity_id not in self._book.holds:
                continue  # a debit's authorisation the account never reported: no hold
            elif self._hold_is_done(entity_id):
                holds.add(entity_id)
            else:
                waiting.append((kind, entity_id))
        self._done = waiting
        self._running.forget(holds, transactions)

    def _hold_is_done(self, hold_id: str) -> bool:
        """Nothing can change it: its remaining is 0 and stays so. A report of its card
        could only move an expiry, and only one dated inside the hold's window (a
        termination); the walk has read every card report up to where it is, so only a
        correction can still do that."""
        if self._running.remaining_of(hold_id):
            return False
        card = self._survey.slot(CARD, self._book.holds[hold_id].card_id)
        if card is None or self._survey.last[card] != _NEVER:
            return True
        found = self._running.hold_at_walked(hold_id)
        return found is None or found.closed != "expired"


def _payload(stored: StoredEvent[Event]) -> DomainEvent:
    assert isinstance(stored.payload, DomainEvent)
    return stored.payload
