"""The balance model: balances, holds and cards of one account as of a business time T.

Per account and currency, as of T:

- ``deposits`` = funds deposited minus withdrawn (at or before T);
- ``debits`` / ``credits`` = the amounts of the debit / credit transactions whose state as of
  T is processing, processed or reversing (reversed ones count for nothing);
- ``posted`` = deposits - debits + credits;
- ``held`` = the sum of each authorisation's remaining hold as of T: 0 when released; the
  latest amount minus its counted debits (never below 0) when pending, capturing or
  releasing; when captured, 0 once a linked debit is known, else the full amount; and 0 once
  T reaches the hold's expiry;
- ``available`` = posted - held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from ledger.domain.anomalies import HoldTerms, authorisation_anomalies, debit_anomalies
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy, expiry
from ledger.domain.lifecycle import AUTHORISATION, CARD, TRANSACTION, Sighting
from ledger.interop import JSONReady
from ledger.money import EXACT, exact_sum
from projections.book import AccountBook, HoldFacts, Timeline, TransactionFacts

COUNTED = frozenset({"processing", "processed", "reversing"})


class Balance(msgspec.Struct, JSONReady, frozen=True, rename="camel", gc=False):
    account_id: str
    currency: str
    deposits: Decimal
    debits: Decimal
    credits: Decimal
    posted: Decimal
    held: Decimal
    available: Decimal


class HoldView(msgspec.Struct, JSONReady, frozen=True, rename="camel", gc=False):
    authorisation_id: str
    account_id: str
    card_id: str
    currency: str
    amount: Decimal
    remaining: Decimal
    status: str
    created_at: datetime
    expires_at: datetime
    card_status: str
    closed: str | None = None
    """Why the hold no longer reserves funds: released, captured, expired (None: open)."""


class CardView(msgspec.Struct, JSONReady, frozen=True, rename="camel", gc=False):
    card_id: str
    account_id: str
    status: str
    capture_window_until: datetime | None = None


class TokenTotal(msgspec.Struct, JSONReady, frozen=True, rename="camel", gc=False):
    account_id: str
    token: str
    kind: str
    """``debit``, ``credit`` or ``fee:<type>``."""
    token_amount: Decimal


class AnomalyView(msgspec.Struct, JSONReady, frozen=True, rename="camel", gc=False):
    """A fact that contradicts another, as of T: counted all the same, and listed."""

    kind: str
    entity: str
    entity_id: str
    account_id: str
    at: datetime
    detail: str | None = None
    """For a quarantined event: its position and why (not a column of ``anomalies``)."""


class AccountView(msgspec.Struct, JSONReady, frozen=True):
    balances: list[Balance]
    holds: list[HoldView]
    cards: list[CardView]
    tokens: list[TokenTotal]
    anomalies: list[AnomalyView] = []


class TransactionPart(msgspec.Struct, frozen=True, gc=False):
    """What one transaction contributes as of T: the rest of the view is sums of these."""

    state: Sighting
    amount: Decimal
    """Its amount as of T (that of the report its state comes from)."""
    counted: bool
    """Counted in the debits or credits (processing, processed, reversing)."""
    link: tuple[str, str] | None
    """(authorisation id, currency) of a debit with an authorisation: what it nets."""


def transaction_part(tx: TransactionFacts, as_of: datetime | None) -> TransactionPart | None:
    state = tx.timeline.at(TRANSACTION, as_of)
    if state is None:
        return None
    link = (tx.authorisation_id, tx.currency) if (
        tx.direction == "debit" and tx.authorisation_id is not None) else None
    return TransactionPart(state, amount_of(state), state.status in COUNTED, link)


def token_parts(tx: TransactionFacts,
                part: TransactionPart) -> list[tuple[tuple[str, str], Decimal]]:
    """A counted transaction's token amounts, by (token, kind)."""
    if not part.counted or tx.token is None:
        return []
    return [((tx.token, tx.direction), tx.token_amount), *(
        ((tx.token, f"fee:{fee.type}"), fee.token_amount) for fee in tx.fees)]


def view(book: AccountBook, as_of: datetime | None,
         policy: HoldPolicy = DEFAULT_POLICY) -> AccountView:
    """Everything about the account as of ``as_of`` (None: as of its latest business time)."""
    moment = as_of if as_of is not None else book.latest_at
    zero = Decimal(0)
    deposits: dict[str, Decimal] = defaultdict(lambda: zero)
    debits: dict[str, Decimal] = defaultdict(lambda: zero)
    credits: dict[str, Decimal] = defaultdict(lambda: zero)
    held: dict[str, Decimal] = defaultdict(lambda: zero)
    for movement in book.movements:
        if moment is None or movement.at <= moment:
            deposits[movement.currency] = EXACT.add(deposits[movement.currency], movement.amount)

    linked = Links()
    tokens: dict[tuple[str, str], Decimal] = defaultdict(lambda: zero)
    parts: dict[str, TransactionPart] = {}
    for tx in book.transactions.values():
        part = transaction_part(tx, as_of)
        if part is None:
            continue
        parts[tx.transaction_id] = part
        linked.add(part, 1)
        if part.counted:
            totals = debits if tx.direction == "debit" else credits
            totals[tx.currency] = EXACT.add(totals[tx.currency], part.amount)
        for key, amount in token_parts(tx, part):
            tokens[key] = EXACT.add(tokens[key], amount)

    cards = {card.card_id: card for card_id, timeline in book.cards.items()
             if (card := card_view(book.account_id, card_id, timeline, as_of, policy))}
    holds = []
    for facts in book.holds.values():
        hold = hold_view(book.account_id, facts, as_of, moment, cards.get(facts.card_id),
                         linked, policy)
        if hold is not None:
            holds.append(hold)
            held[hold.currency] = EXACT.add(held[hold.currency], hold.remaining)

    by_id = {h.authorisation_id: h for h in holds}
    anomalies = []
    for tx_id, part in parts.items():
        tx = book.transactions[tx_id]
        anomalies += transaction_anomalies(book.account_id, tx, part,
                                           by_id.get(tx.authorisation_id or ""))
    anomalies += [a for h in holds for a in hold_anomalies(h, cards.get(h.card_id), policy)]
    currencies = sorted(set(deposits) | set(debits) | set(credits) | set(held))
    return AccountView(
        [balance(book.account_id, c, deposits[c], debits[c], credits[c], held[c])
         for c in currencies], holds, list(cards.values()),
        [TokenTotal(book.account_id, token, kind, amount)
         for (token, kind), amount in sorted(tokens.items())], sort_anomalies(anomalies))


def balance(account_id: str, currency: str, deposits: Decimal, debits: Decimal,
            credits: Decimal, held: Decimal) -> Balance:
    posted = EXACT.add(EXACT.subtract(deposits, debits), credits)
    return Balance(account_id, currency, deposits, debits, credits, posted, held,
                   EXACT.subtract(posted, held))


def listed_anomalies(found: Iterable[AnomalyView], contradictions: Iterable[tuple[Any, ...]],
                     quarantined: Iterable[tuple[Any, ...]], moment: datetime,
                     ) -> list[AnomalyView]:
    """Every anomaly as of ``moment``, as an auditor reads them: the views' own, final states
    reported as changed (``(kind, entity, id, account, at)`` rows, kept by the table or the
    replay), oldest first; then quarantined events (``(position, entity, id, account,
    why)``), in log order."""
    listed = list(found) + [
        AnomalyView(kind, entity, entity_id, account_id or "", datetime.fromisoformat(at))
        for kind, entity, entity_id, account_id, at in contradictions
        if kind == "final_state_changed" and datetime.fromisoformat(at) <= moment]
    listed.sort(key=lambda a: a.at)
    return listed + [AnomalyView("quarantined", entity, entity_id, account_id or "", moment,
                                 f"event {position}: {why}")
                     for position, entity, entity_id, account_id, why in sorted(quarantined)]


def sort_anomalies(anomalies: list[AnomalyView]) -> list[AnomalyView]:
    return sorted(anomalies, key=lambda a: (a.at, a.kind, a.entity_id))


class Links:
    """Per (authorisation, currency): the amounts of the debits linked to it that are counted,
    and how many are known at all. A debit in one currency never nets a hold in another."""

    def __init__(self) -> None:
        self.counted: dict[tuple[str, str], tuple[Decimal, ...]] = {}
        self.known: dict[tuple[str, str], int] = {}

    def add(self, part: TransactionPart, sign: int) -> None:
        """Count ``part`` in (sign 1) or out (sign -1)."""
        if part.link is None:
            return
        key = part.link
        known = self.known.get(key, 0) + sign
        if known:
            self.known[key] = known
        else:
            self.known.pop(key, None)
        if part.counted:
            amounts = list(self.counted.get(key, ()))
            if sign > 0:
                amounts.append(part.amount)
            else:
                amounts.remove(part.amount)
            if amounts:
                self.counted[key] = tuple(amounts)
            else:
                del self.counted[key]

    def of(self, facts: HoldFacts) -> tuple[Decimal, bool]:
        """The debits counted against a hold (summed as the view sums: from 0), and whether
        any linked debit is known."""
        key = (facts.authorisation_id, facts.currency)
        return exact_sum(self.counted.get(key, ())), key in self.known


def amount_of(state: Sighting) -> Decimal:
    """The amount a hold's or a transaction's state as of T carries."""
    return Decimal(state.detail[0])


def transaction_anomalies(account_id: str, tx: TransactionFacts, part: TransactionPart,
                          hold: HoldView | None) -> list[AnomalyView]:
    """A debit with no known authorisation, above its hold, or after the hold expired: from
    everything known as of T, whatever order it arrived in."""
    if tx.direction != "debit" or tx.created_at is None:
        return []
    terms = None if hold is None else HoldTerms(hold.currency, hold.amount, hold.expires_at)
    return [AnomalyView(kind.value, "transaction", tx.transaction_id, account_id,
                        tx.created_at)
            for kind in debit_anomalies(part.amount, tx.currency, tx.created_at, terms)]


def hold_anomalies(hold: HoldView, card: CardView | None,
                   policy: HoldPolicy) -> list[AnomalyView]:
    """An authorisation created after its card was terminated."""
    terminated = (card.capture_window_until - policy.window
                  if card is not None and card.capture_window_until is not None else None)
    return [AnomalyView(kind.value, "authorisation", hold.authorisation_id, hold.account_id,
                        hold.created_at)
            for kind in authorisation_anomalies(hold.created_at, terminated)]


def card_view(account_id: str, card_id: str, timeline: Timeline, as_of: datetime | None,
              policy: HoldPolicy) -> CardView | None:
    state = timeline.at(CARD, as_of)
    if state is None:
        return None
    window = state.at + policy.window if state.status == "terminated" else None
    return CardView(card_id, account_id, state.status, window)


def hold_view(account_id: str, facts: HoldFacts, as_of: datetime | None,
              moment: datetime | None, card: CardView | None, linked: Links,
              policy: HoldPolicy) -> HoldView | None:
    state = facts.timeline.at(AUTHORISATION, as_of)
    if state is None or facts.created_at is None:
        return None
    amount = amount_of(state)
    terminated = card.capture_window_until - policy.window if (
        card is not None and card.capture_window_until is not None) else None
    closed_at = state.at if AUTHORISATION.is_final(state.status) else None
    expires = expiry(facts.created_at, terminated, closed_at, policy)
    counted, known = linked.of(facts)
    closed: str | None = None
    if state.status == "released":
        remaining, closed = Decimal(0), "released"
    elif state.status == "captured":
        remaining = Decimal(0) if known else amount
        closed = "captured" if known else None
    else:
        remaining = max(Decimal(0), EXACT.subtract(amount, counted))
    if closed is None and moment is not None and moment >= expires:
        remaining, closed = Decimal(0), "expired"
    return HoldView(facts.authorisation_id, account_id, facts.card_id, facts.currency,
                    amount, remaining, state.status, facts.created_at, expires,
                    card_status(card, moment), closed)


def card_status(card: CardView | None, moment: datetime | None) -> str:
    if card is None:
        return "unknown"
    until = card.capture_window_until
    if until is None:
        return card.status
    state = "closed on" if moment is not None and moment >= until else "open until"
    return f"terminated, capture window {state} {until:%Y-%m-%d}"
