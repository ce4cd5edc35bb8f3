"""One account's stored view, kept up to date by parts: a report costs what it changes.

The stored view of an account is its state as of its latest business time, ``view(book,
None)``. Computing that whole on every commit costs the account's whole history (a corporate
account with a hundred thousand payments would take seconds per webhook). ``LiveAccount``
keeps each entity's part instead (a transaction's contribution, a hold's view, a card's view,
their anomalies) and the account's running sums, and on each commit recomputes only the
entities the commit touched and those that depend on them:

- a card's change re-derives its holds (their expiry, card status and anomalies);
- a transaction's change moves the sums and re-derives the hold it nets;
- a hold's change re-derives the anomalies of the debits linked to it;
- the latest business time moving on re-derives the holds whose ``expiresAt`` it reached (a
  heap ordered by ``expiresAt``) and those of terminated cards whose capture window it closed.

Only rows that changed are written. The parts are the functions the full view is computed
with (``projections.views``), and a property checks that both give the same rows.

**Memory follows what is open, not history.** A *group* (a hold and the debits that name it;
a transaction without one) leaves memory once it is settled: the hold closed (released,
captured with its debit known, or expired and recorded so) and every debit processed or
reversed. Its facts stay in their table, its contributions stay in the sums (which are stored
with the account), and it is read back (``restore``) before a report that concerns it is
folded in: a late report of its own, or a change of its card's state or capture window.
Restored parts equal the parts it left with, since nothing they depend on changed meanwhile.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from ledger.domain.hold import HoldPolicy
from ledger.money import ExactSum, exact_sum
from projections import tables
from projections.book import AccountBook, TransactionFacts
from projections.tables import BatchWrite
from projections.views import (
    AnomalyView,
    Balance,
    CardView,
    HoldView,
    Links,
    TokenTotal,
    TransactionPart,
    balance,
    card_view,
    hold_anomalies,
    hold_view,
    token_parts,
    transaction_anomalies,
    transaction_part,
)

_ZERO = Decimal(0)
Entity = tuple[str, str]
"""(kind, id) as ``projections.book.entity_of`` names it."""
SumState = tuple[Decimal, dict[int, int]]
SETTLED = frozenset({"processed", "reversed"})
"""Transaction states a group may leave memory in (a late reversal reads it back)."""


class Sums(msgspec.Struct, array_like=True, gc=False):
    """An account's running sums as stored with it: what settled groups still count for."""

    debits: dict[str, SumState]
    credits: dict[str, SumState]
    held: dict[str, SumState]
    tokens: list[tuple[str, str, SumState]]
    present: dict[str, int]


def group_of(kind: str, entity_id: str, facts: object) -> str:
    """The group an entity leaves memory with: a hold's own id, a debit's authorisation id,
    ``~id`` for a transaction without one, ``card:id`` for a card (cards stay in memory)."""
    if kind == "transaction":
        assert isinstance(facts, TransactionFacts)
        return facts.authorisation_id or f"~{entity_id}"
    return entity_id if kind == "hold" else f"{kind}:{entity_id}"


class _Changes:
    """What one refresh must re-derive, filled as parts change."""

    def __init__(self) -> None:
        self.holds: set[str] = set()
        self.currencies: set[str] = set()
        self.tokens: set[tuple[str, str]] = set()
        self.anomalies: set[Entity] = set()


class LiveAccount:
    def __init__(self, book: AccountBook, policy: HoldPolicy) -> None:
        self.book, self.policy = book, policy
        self.moment: datetime | None = None
        """The business time the parts are as of: the book's latest, when refreshed."""
        self.parts: dict[str, TransactionPart] = {}
        self.tokens_of: dict[str, list[tuple[tuple[str, str], Decimal]]] = {}
        self.holds: dict[str, HoldView] = {}
        self.cards: dict[str, CardView] = {}
        self.links = Links()
        self.debits: dict[str, ExactSum] = {}
        self.credits: dict[str, ExactSum] = {}
        self.held: dict[str, ExactSum] = {}
        self.present: Counter[str] = Counter()
        """Per currency, how many counted transactions and visible holds it has: a balance
        row exists while it has any (or a deposit)."""
        self.tokens: dict[tuple[str, str], ExactSum] = {}
        self.anomalies: dict[Entity, list[AnomalyView]] = {}
        self.balances: dict[str, Balance] = {}
        self.holds_of_card: dict[str, set[str]] = {}
        self.debits_of_hold: dict[str, set[str]] = {}
        """Authorisation id -> the transactions that name it (known before the hold may be)."""
        self._expiring: list[tuple[datetime, str]] = []
        self.windows: dict[str, datetime] = {}
        """Terminated cards: when their capture window closes."""
        self._candidates: set[str] = set()
        """Groups whose parts changed since ``settled`` last looked: they may be settled."""

    @property
    def account_id(self) -> str:
        return self.book.account_id

    def refresh(self, touched: Iterable[Entity], write: BatchWrite | None) -> None:
        """Re-derive what the touched entities changed; queue the changed rows in ``write``
        (None: only bring the parts up to date, as after loading)."""
        changes, transactions, cards, money = _Changes(), [], [], False
        for kind, entity_id in touched:
            if kind == "hold":
                changes.holds.add(entity_id)
                card_id = self.book.holds[entity_id].card_id
                self.holds_of_card.setdefault(card_id, set()).add(entity_id)
            elif kind == "transaction":
                transactions.append(entity_id)
                authorisation_id = self.book.transactions[entity_id].authorisation_id
                if authorisation_id is not None:
                    self.debits_of_hold.setdefault(authorisation_id, set()).add(entity_id)
            elif kind == "card":
                cards.append(entity_id)
            elif kind == "account":
                money = True
        for card_id in cards:
            self._card(card_id, changes, write)
        self._advance(changes)
        for transaction_id in transactions:
            self._transaction(transaction_id, changes)
        for hold_id in changes.holds:
            self._hold(hold_id, changes, write)
        for entity in changes.anomalies:
            self._anomalies(entity, write)
        if money:
            changes.currencies |= {m.currency for m in self.book.movements}
        for currency in changes.currencies:
            self._balance(currency, write)
        for key in changes.tokens:
            self._token(key, write)

    # --- parts ------------------------------------------------------------------------------

    def _card(self, card_id: str, changes: _Changes, write: BatchWrite | None) -> None:
        new = card_view(self.account_id, card_id, self.book.cards[card_id], None, self.policy)
        old = self.cards.get(card_id)
        if new == old:
            return
        _put(write, "cards", (card_id,), tables.card_row(new) if new else None)
        if new is None:
            del self.cards[card_id]
        else:
            self.cards[card_id] = new
        if new is not None and new.capture_window_until is not None:
            self.windows[card_id] = new.capture_window_until
        else:
            self.windows.pop(card_id, None)
        changes.holds |= self.holds_of_card.get(card_id, set())

    def _advance(self, changes: _Changes) -> None:
        """Move the parts' moment to the book's latest business time."""
        before, moment = self.moment, self.book.latest_at
        if moment is None or moment == before:
            return
        self.moment = moment
        while self._expiring and self._expiring[0][0] <= moment:
            changes.holds.add(heapq.heappop(self._expiring)[1])
        for card_id, until in self.windows.items():
            if (before is None or before < until) and until <= moment:
                changes.holds |= self.holds_of_card.get(card_id, set())

    def _transaction(self, transaction_id: str, changes: _Changes) -> None:
        tx = self.book.transactions[transaction_id]
        old, new = self.parts.get(transaction_id), transaction_part(tx, None)
        old_tokens = self.tokens_of.get(transaction_id, [])
        new_tokens = token_parts(tx, new) if new is not None else []
        if old is not None:
            self._count(tx.direction, tx.currency, old, old_tokens, -1)
        if new is not None:
            self._count(tx.direction, tx.currency, new, new_tokens, 1)
            self.parts[transaction_id], self.tokens_of[transaction_id] = new, new_tokens
        else:
            self.parts.pop(transaction_id, None)
            self.tokens_of.pop(transaction_id, None)
        changes.currencies.add(tx.currency)
        changes.tokens |= {key for key, _ in (*old_tokens, *new_tokens)}
        changes.anomalies.add(("transaction", transaction_id))
        self._candidates.add(group_of("transaction", transaction_id, tx))
        if tx.authorisation_id is not None:
            changes.holds.add(tx.authorisation_id)

    def _count(self, direction: str, currency: str, part: TransactionPart,
               tokens: list[tuple[tuple[str, str], Decimal]], sign: int) -> None:
        self.links.add(part, sign)
        if part.counted:
            totals = self.debits if direction == "debit" else self.credits
            _add(totals, currency, part.amount, sign)
            self.present[currency] += sign
        for key, amount in tokens:
            _add(self.tokens, key, amount, sign)

    def _hold(self, hold_id: str, changes: _Changes, write: BatchWrite | None) -> None:
        facts = self.book.holds.get(hold_id)
        if facts is None:
            return  # a debit naming an authorisation this account has not seen
        old = self.holds.get(hold_id)
        new = hold_view(self.account_id, facts, None, self.moment,
                        self.cards.get(facts.card_id), self.links, self.policy)
        self._candidates.add(hold_id)
        if _identical(new, old):
            return
        if new is not None and new.closed is None and (
                old is None or old.closed is not None or old.expires_at != new.expires_at):
            heapq.heappush(self._expiring, (new.expires_at, hold_id))  # may expire later
        for view, sign in ((old, -1), (new, 1)):
            if view is not None:
                _add(self.held, view.currency, view.remaining, sign)
                self.present[view.currency] += sign
                changes.currencies.add(view.currency)
        _put(write, "holds", (hold_id,), tables.hold_row(new) if new else None)
        if new is None:
            del self.holds[hold_id]
        else:
            self.holds[hold_id] = new
        changes.anomalies.add(("authorisation", hold_id))
        changes.anomalies |= {("transaction", t) for t in self.debits_of_hold.get(hold_id, ())}

    def _anomalies(self, entity: Entity, write: BatchWrite | None) -> None:
        kind, entity_id = entity
        new: list[AnomalyView] = []
        if kind == "transaction":
            tx, part = self.book.transactions[entity_id], self.parts.get(entity_id)
            if part is not None:
                new = transaction_anomalies(self.account_id, tx, part,
                                            self.holds.get(tx.authorisation_id or ""))
        elif (hold := self.holds.get(entity_id)) is not None:
            new = hold_anomalies(hold, self.cards.get(hold.card_id), self.policy)
        old = self.anomalies.get(entity, [])
        if new == old:
            return
        kept = {a.kind for a in new}
        for gone in old:
            if gone.kind not in kept:
                _put(write, "anomalies", (gone.kind, entity_id), None)
        for anomaly in new:
            if anomaly not in old:
                _put(write, "anomalies", (anomaly.kind, entity_id), tables.anomaly_row(anomaly))
        if new:
            self.anomalies[entity] = new
        else:
            self.anomalies.pop(entity, None)

    # --- leaving memory, and coming back ----------------------------------------------------

    def members(self, group: str) -> list[Entity]:
        if group.startswith("~"):
            return [("transaction", group[1:])]
        return [*((("hold", group),) if group in self.book.holds else ()),
                *(("transaction", t) for t in sorted(self.debits_of_hold.get(group, ())))]

    def settled(self) -> list[str]:
        """The groups that may leave memory now (see the module's docstring)."""
        found = [g for g in sorted(self._candidates) if self._is_settled(g)]
        self._candidates = set()
        return found

    def _is_settled(self, group: str) -> bool:
        members = self.members(group)
        if not members:
            return False
        for kind, entity_id in members:
            if kind == "hold":
                view, facts = self.holds.get(entity_id), self.book.holds[entity_id]
                if view is None or view.closed is None or (
                        view.closed == "expired" and facts.expired_at is None
                        and view.status in ("pending", "capturing")):
                    return False  # open, or expired with the sweeper's record still to come
            else:
                part = self.parts.get(entity_id)
                if part is None or part.state.status not in SETTLED:
                    return False
        return True

    def evict(self, groups: Iterable[str]) -> None:
        """Let settled groups leave memory: their contributions stay in the sums."""
        for group in groups:
            for kind, entity_id in self.members(group):
                if kind == "hold":
                    facts = self.book.holds.pop(entity_id)
                    self.holds.pop(entity_id, None)
                    self.holds_of_card.get(facts.card_id, set()).discard(entity_id)
                    self.anomalies.pop(("authorisation", entity_id), None)
                else:
                    tx = self.book.transactions.pop(entity_id)
                    part = self.parts.pop(entity_id, None)
                    if part is not None:
                        self.links.add(part, -1)
                    self.tokens_of.pop(entity_id, None)
                    self.anomalies.pop(("transaction", entity_id), None)
                    if tx.authorisation_id is not None:
                        linked = self.debits_of_hold.get(tx.authorisation_id, set())
                        linked.discard(entity_id)
                        if not linked:
                            self.debits_of_hold.pop(tx.authorisation_id, None)

    def restore(self, entities: Iterable[tuple[str, str, Any]]) -> None:
        """Take entities back, as (kind, id, facts), with the parts they left with; the sums
        already count them. Cards and transactions first: a hold's view needs both."""
        holds, transactions = [], []
        for kind, entity_id, facts in entities:
            if kind == "card":
                self.book.cards[entity_id] = facts
                card = card_view(self.account_id, entity_id, facts, None, self.policy)
                if card is not None:
                    self.cards[entity_id] = card
                    if card.capture_window_until is not None:
                        self.windows[entity_id] = card.capture_window_until
            elif kind == "transaction":
                self.book.transactions[entity_id] = facts
                transactions.append(entity_id)
            elif kind == "hold":
                self.book.holds[entity_id] = facts
                holds.append(entity_id)
        for transaction_id in transactions:
            tx = self.book.transactions[transaction_id]
            if tx.authorisation_id is not None:
                self.debits_of_hold.setdefault(tx.authorisation_id, set()).add(transaction_id)
            part = transaction_part(tx, None)
            if part is not None:
                self.parts[transaction_id] = part
                self.tokens_of[transaction_id] = token_parts(tx, part)
                self.links.add(part, 1)
        for hold_id in holds:
            facts = self.book.holds[hold_id]
            self.holds_of_card.setdefault(facts.card_id, set()).add(hold_id)
            view = hold_view(self.account_id, facts, None, self.moment,
                             self.cards.get(facts.card_id), self.links, self.policy)
            if view is not None:
                self.holds[hold_id] = view
                if view.closed is None:
                    heapq.heappush(self._expiring, (view.expires_at, hold_id))
        for entity in [*(("transaction", t) for t in transactions),
                       *(("authorisation", h) for h in holds)]:
            self._anomalies(entity, None)

    def sums(self) -> Sums:
        def stored(totals: dict[str, ExactSum]) -> dict[str, SumState]:
            return {key: total.state() for key, total in totals.items()}

        return Sums(stored(self.debits), stored(self.credits), stored(self.held),
                    [(token, kind, total.state())
                     for (token, kind), total in self.tokens.items()], dict(self.present))

    def load(self, sums: Sums, entities: Iterable[tuple[str, str, Any]]) -> None:
        """After a restart: the stored sums, and the entities held in memory when it stopped."""
        def restored(totals: dict[str, SumState]) -> dict[str, ExactSum]:
            return {key: ExactSum.restored(state) for key, state in totals.items()}

        self.debits, self.credits = restored(sums.debits), restored(sums.credits)
        self.held, self.present = restored(sums.held), Counter(sums.present)
        self.tokens = {(token, kind): ExactSum.restored(state)
                       for token, kind, state in sums.tokens}
        self.moment = self.book.latest_at
        self.restore(entities)
        for currency in {*self.present, *(m.currency for m in self.book.movements)}:
            self._balance(currency, None)

    # --- sums -------------------------------------------------------------------------------

    def _balance(self, currency: str, write: BatchWrite | None) -> None:
        deposits = [m.amount for m in self.book.movements if m.currency == currency]
        new = balance(self.account_id, currency, exact_sum(deposits),
                      _value(self.debits, currency), _value(self.credits, currency),
                      _value(self.held, currency)) if (
            deposits or self.present[currency] > 0) else None
        if _identical(new, self.balances.get(currency)):
            return
        _put(write, "balances", (self.account_id, currency),
             tables.balance_row(new) if new else None)
        if new is None:
            del self.balances[currency]
        else:
            self.balances[currency] = new

    def _token(self, key: tuple[str, str], write: BatchWrite | None) -> None:
        token, kind = key
        row = tables.token_row(TokenTotal(self.account_id, token, kind, _value(
            self.tokens, key))) if key in self.tokens else None
        _put(write, "token_totals", (self.account_id, token, kind), row)


def _add(totals: dict[Any, ExactSum], key: Any, amount: Decimal, sign: int) -> None:
    total = totals.get(key)
    if total is None:
        total = totals[key] = ExactSum()
    total.add(amount, sign)
    if not total:
        del totals[key]


def _value(totals: dict[Any, ExactSum], key: Any) -> Decimal:
    total = totals.get(key)
    return _ZERO if total is None else total.value


def _identical(new: msgspec.Struct | None, old: msgspec.Struct | None) -> bool:
    """Equal digit for digit: ``Decimal("1.0") == Decimal("1")``, but the row written from
    one reads ``1.0``, so a view whose amounts only changed their trailing zeros is a change
    (a hold re-reported as ``10.5`` after ``10.50``), as it is to a full replay."""
    return new == old and _ENCODE(new) == _ENCODE(old)


_ENCODE = msgspec.msgpack.Encoder().encode


def _put(write: BatchWrite | None, table: str, key: tuple[Any, ...],
         row: tuple[Any, ...] | None) -> None:
    """Queue a row to write, or (None) the deletion of the row with that key."""
    if write is None:
        return
    if row is None:
        write.deletes[table].append(key)
    else:
        write.upserts[table].append(row)
