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
from datetime import datetime
from decimal import Decimal

import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy, expiry
from ledger.domain.lifecycle import AUTHORISATION, CARD, TRANSACTION, Sighting
from ledger.events import Anomaly
from ledger.money import EXACT
from projections.book import AccountBook, HoldFacts

COUNTED = frozenset({"processing", "processed", "reversing"})


class Balance(msgspec.Struct, frozen=True, rename="camel", gc=False):
    account_id: str
    currency: str
    deposits: Decimal
    debits: Decimal
    credits: Decimal
    posted: Decimal
    held: Decimal
    available: Decimal


class HoldView(msgspec.Struct, frozen=True, rename="camel", gc=False):
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


class CardView(msgspec.Struct, frozen=True, rename="camel", gc=False):
    card_id: str
    account_id: str
    status: str
    capture_window_until: datetime | None = None


class TokenTotal(msgspec.Struct, frozen=True, rename="camel", gc=False):
    account_id: str
    token: str
    kind: str
    """``debit``, ``credit`` or ``fee:<type>``."""
    token_amount: Decimal


class AnomalyView(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """A fact that contradicts another, as of T: counted all the same, and listed."""

    kind: str
    entity: str
    entity_id: str
    account_id: str
    at: datetime


class AccountView(msgspec.Struct, frozen=True):
    balances: list[Balance]
    holds: list[HoldView]
    cards: list[CardView]
    tokens: list[TokenTotal]
    anomalies: list[AnomalyView] = []


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

    # Per authorisation and currency: a debit in one currency never nets a hold in another.
    linked_counted: dict[tuple[str, str], Decimal] = defaultdict(lambda: zero)
    linked_known: set[tuple[str, str]] = set()
    tokens: dict[tuple[str, str], Decimal] = defaultdict(lambda: zero)
    tx_states: dict[str, Sighting] = {}  # each transaction's state as of T, for the anomalies
    for tx in book.transactions.values():
        state = tx.timeline.at(TRANSACTION, as_of)
        if state is None:
            continue
        tx_states[tx.transaction_id] = state
        if tx.direction == "debit" and tx.authorisation_id is not None:
            linked_known.add((tx.authorisation_id, tx.currency))
        if state.status not in COUNTED:
            continue
        amount = amount_of(state)
        totals = debits if tx.direction == "debit" else credits
        totals[tx.currency] = EXACT.add(totals[tx.currency], amount)
        if tx.direction == "debit" and tx.authorisation_id is not None:
            key = (tx.authorisation_id, tx.currency)
            linked_counted[key] = EXACT.add(linked_counted[key], amount)
        if tx.token is not None:
            tokens[(tx.token, tx.direction)] = EXACT.add(tokens[(tx.token, tx.direction)],
                                                         tx.token_amount)
            for fee in tx.fees:
                key = (tx.token, f"fee:{fee.type}")
                tokens[key] = EXACT.add(tokens[key], fee.token_amount)

    cards = _cards(book, as_of, policy)
    holds = []
    for facts in book.holds.values():
        hold = _hold(book, facts, as_of, moment, cards, linked_counted, linked_known, policy)
        if hold is not None:
            holds.append(hold)
            held[hold.currency] = EXACT.add(held[hold.currency], hold.remaining)

    anomalies = _anomalies(book, tx_states, {h.authorisation_id: h for h in holds}, cards,
                           policy)
    currencies = sorted(set(deposits) | set(debits) | set(credits) | set(held))
    balances = []
    for currency in currencies:
        posted = EXACT.add(EXACT.subtract(deposits[currency], debits[currency]),
                           credits[currency])
        balances.append(Balance(book.account_id, currency, deposits[currency], debits[currency],
                                credits[currency], posted, held[currency],
                                EXACT.subtract(posted, held[currency])))
    return AccountView(balances, holds, list(cards.values()), [
        TokenTotal(book.account_id, token, kind, amount)
        for (token, kind), amount in sorted(tokens.items())], anomalies)


def amount_of(state: Sighting) -> Decimal:
    """The amount a hold's or a transaction's state as of T carries."""
    return Decimal(state.detail[0])


def _anomalies(book: AccountBook, tx_states: dict[str, Sighting], holds: dict[str, HoldView],
               cards: dict[str, CardView], policy: HoldPolicy) -> list[AnomalyView]:
    """Facts that contradict each other, from everything known as of T, whatever order it
    arrived in: a debit with no known authorisation, above its hold, or after the hold expired;
    an authorisation created after its card was terminated."""
    found = []
    for tx in book.transactions.values():
        if (tx.direction != "debit" or tx.created_at is None
                or tx.transaction_id not in tx_states):
            continue
        hold = holds.get(tx.authorisation_id or "")

        def flag(kind: Anomaly, at: datetime, tx_id: str = tx.transaction_id) -> None:
            found.append(AnomalyView(kind.value, "transaction", tx_id, book.account_id, at))

        if hold is None:
            flag(Anomaly.UNKNOWN_AUTHORISATION, tx.created_at)
            continue
        if tx.currency == hold.currency and amount_of(tx_states[tx.transaction_id]) > hold.amount:
            flag(Anomaly.CAPTURE_ABOVE_HOLD, tx.created_at)
        if tx.created_at >= hold.expires_at:
            flag(Anomaly.CAPTURE_AFTER_EXPIRY, tx.created_at)
    for hold in holds.values():
        card = cards.get(hold.card_id)
        if card is not None and card.capture_window_until is not None and (
                hold.created_at >= card.capture_window_until - policy.window):
            found.append(AnomalyView(Anomaly.AUTHORISATION_AFTER_TERMINATION.value,
                                     "authorisation", hold.authorisation_id, book.account_id,
                                     hold.created_at))
    return sorted(found, key=lambda a: (a.at, a.kind, a.entity_id))


def _cards(book: AccountBook, as_of: datetime | None,
           policy: HoldPolicy) -> dict[str, CardView]:
    cards = {}
    for card_id, timeline in book.cards.items():
        state = timeline.at(CARD, as_of)
        if state is None:
            continue
        window = state.at + policy.window if state.status == "terminated" else None
        cards[card_id] = CardView(card_id, book.account_id, state.status, window)
    return cards


def _hold(book: AccountBook, facts: HoldFacts, as_of: datetime | None, moment: datetime | None,
          cards: dict[str, CardView], linked_counted: dict[tuple[str, str], Decimal],
          linked_known: set[tuple[str, str]], policy: HoldPolicy) -> HoldView | None:
    state = facts.timeline.at(AUTHORISATION, as_of)
    if state is None or facts.created_at is None:
        return None
    amount = amount_of(state)
    card = cards.get(facts.card_id)
    terminated = card.capture_window_until - policy.window if (
        card is not None and card.capture_window_until is not None) else None
    closed_at = state.at if AUTHORISATION.is_final(state.status) else None
    expires = expiry(facts.created_at, terminated, closed_at, policy)
    closed: str | None = None
    if state.status == "released":
        remaining, closed = Decimal(0), "released"
    elif state.status == "captured":
        known = (facts.authorisation_id, facts.currency) in linked_known
        remaining = Decimal(0) if known else amount
        closed = "captured" if known else None
    else:
        counted = linked_counted.get((facts.authorisation_id, facts.currency), Decimal(0))
        remaining = max(Decimal(0), EXACT.subtract(amount, counted))
    if closed is None and moment is not None and moment >= expires:
        remaining, closed = Decimal(0), "expired"
    card_status = _card_status(card, moment)
    return HoldView(facts.authorisation_id, book.account_id, facts.card_id, facts.currency,
                    amount, remaining, state.status, facts.created_at, expires, card_status,
                    closed)


def _card_status(card: CardView | None, moment: datetime | None) -> str:
    if card is None:
        return "unknown"
    until = card.capture_window_until
    if until is None:
        return card.status
    state = "closed on" if moment is not None and moment >= until else "open until"
    return f"terminated, capture window {state} {until:%Y-%m-%d}"
