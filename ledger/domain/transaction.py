"""Transactions: debits (captures) and credits (refunds), and their settlement and reversal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from ledger.domain.anomalies import HoldTerms, debit_anomalies
from ledger.domain.card import CardState
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy, HoldState
from ledger.domain.lifecycle import TRANSACTION, Standing, Verdict, judge, sighting
from ledger.errors import InvalidTransitionError
from ledger.events import (
    TRANSACTION_STATUS_EVENTS,
    TRANSACTION_STATUS_OF,
    Anomaly,
    FeePaid,
    TransactionObserved,
    TransactionPosted,
)
from ledger.money import check_amount, check_currency, parse_amount, parse_token_amount
from ledger.observations import Direction, Merchant, TransactionSnapshot, TransactionStatus


class TransactionState(msgspec.Struct, frozen=True):
    transaction_id: str
    account_id: str
    authorisation_id: str | None
    direction: Direction
    currency: str
    created_at: datetime
    standing: Standing = Standing()

    @property
    def status(self) -> str:
        return self.standing.status

    @property
    def amount(self) -> Decimal:
        """The amount of the current report: a clearing may differ from the first report
        (a tip, a moved FX rate), and the latest report says what is owed."""
        current = self.standing.current
        return Decimal(current.detail[0]) if current is not None else Decimal(0)


class ObserveTransaction(msgspec.Struct, frozen=True):
    snapshot: TransactionSnapshot
    hold: HoldState | None = None
    card: CardState | None = None
    policy: HoldPolicy = DEFAULT_POLICY


class PostTransaction(msgspec.Struct, frozen=True, kw_only=True):
    """Post a capture (debit) or a refund (credit): the sandbox and tests."""

    transaction_id: str
    account_id: str
    card_id: str | None
    authorisation_id: str | None
    direction: Direction
    amount: Decimal
    currency: str
    token_amount: Decimal = Decimal(0)
    token: str | None = None
    fees: tuple[FeePaid, ...] = ()
    merchant: Merchant = Merchant()
    at: datetime


class AdvanceTransaction(msgspec.Struct, frozen=True):
    """Move a transaction along its machine: processed, reversing, reversed."""

    to: TransactionStatus
    at: datetime


TransactionCommand = ObserveTransaction | PostTransaction | AdvanceTransaction


def decide(command: TransactionCommand,
           state: TransactionState | None) -> list[TransactionObserved]:
    if isinstance(command, ObserveTransaction):
        return _observe(command, state)
    if isinstance(command, PostTransaction):
        if state is not None:
            raise InvalidTransitionError("transaction", command.transaction_id, state.status,
                                         "post", "it exists already")
        return [TransactionPosted(
            transaction_id=command.transaction_id, account_id=command.account_id,
            card_id=command.card_id, authorisation_id=command.authorisation_id,
            direction=command.direction, amount=check_amount(command.amount),
            currency=check_currency(command.currency),
            token_amount=check_amount(command.token_amount), token=command.token,
            fees=command.fees, merchant=command.merchant, at=command.at)]
    if state is None or not TRANSACTION.allows(state.status, command.to):
        raise InvalidTransitionError("transaction", state.transaction_id if state else "?",
                                     state.status if state else "unknown",
                                     f"move to {command.to}")
    return [TRANSACTION_STATUS_EVENTS[command.to](
        transaction_id=state.transaction_id, account_id=state.account_id,
        authorisation_id=state.authorisation_id, direction=state.direction,
        amount=state.amount, currency=state.currency, at=command.at)]


def _observe(command: ObserveTransaction,
             state: TransactionState | None) -> list[TransactionObserved]:
    snapshot = command.snapshot
    report = sighting(TRANSACTION, snapshot.status, snapshot.updated_at,
                      parse_amount(snapshot.amount))
    verdict = judge(TRANSACTION, state.standing if state else Standing(), report)
    if verdict in (Verdict.DUPLICATE, Verdict.UNCHANGED):
        return []
    common: dict[str, Any] = {"transaction_id": snapshot.id, "account_id": snapshot.account_id,
              "authorisation_id": snapshot.authorisation_id, "direction": snapshot.direction,
              "amount": parse_amount(snapshot.amount),
              "currency": check_currency(snapshot.currency)}
    events: list[TransactionObserved] = []
    if verdict is Verdict.NEW:
        events.append(_posted(command, common))
        if snapshot.status == "processing":
            return events
    anomalies = (Anomaly.FINAL_STATE_CHANGED,) if verdict is Verdict.CONTRADICTS_FINAL else ()
    stale = verdict is Verdict.STALE
    if snapshot.status == "processing":
        # Another processing report (or the first, arriving after a later state): with all it
        # says, token and fees included, so that what is kept does not depend on the order.
        events.append(msgspec.structs.replace(_posted(command, common), at=snapshot.updated_at,
                                              observed_at=None, stale=stale,
                                              anomalies=anomalies))
        return events
    events.append(TRANSACTION_STATUS_EVENTS[snapshot.status](
        at=snapshot.updated_at, stale=stale, anomalies=anomalies, **common))
    return events


def _posted(command: ObserveTransaction, common: dict[str, Any]) -> TransactionPosted:
    """The transaction as first seen, posted at its createdAt, with what contradicts its hold."""
    snapshot, hold = command.snapshot, command.hold
    anomalies: list[Anomaly] = []
    if snapshot.direction == "debit":
        terms = None if hold is None else HoldTerms(
            hold.currency, hold.amount, hold.expires_at(command.card, command.policy))
        anomalies = debit_anomalies(parse_amount(snapshot.amount), snapshot.currency,
                                    snapshot.created_at, terms)
    return TransactionPosted(
        card_id=snapshot.card_id,
        merchant_amount=parse_amount(snapshot.merchant_amount) if snapshot.merchant_amount
        else None, merchant_currency=snapshot.merchant_currency,
        exchange_rate=parse_amount(snapshot.exchange_rate), merchant=snapshot.merchant,
        token_amount=parse_token_amount(snapshot.token_amount), token=snapshot.token,
        fees=tuple(FeePaid(f.type, parse_token_amount(f.token_amount)) for f in snapshot.fees),
        chain_transactions=tuple(c.chain_id for c in snapshot.chain_transactions),
        at=snapshot.created_at, observed_at=snapshot.updated_at, anomalies=tuple(anomalies),
        **common)



def evolve(state: TransactionState | None, event: TransactionObserved) -> TransactionState:
    if state is None:
        assert isinstance(event, TransactionPosted), "a transaction starts with TransactionPosted"
        state = TransactionState(event.transaction_id, event.account_id, event.authorisation_id,
                                 event.direction, event.currency, event.at)
    status = TRANSACTION_STATUS_OF[type(event)]
    standing = state.standing.add(
        TRANSACTION, sighting(TRANSACTION, status, event.reported_at, event.amount))
    return msgspec.structs.replace(state, standing=standing)
