"""Accounts: what the processor reports, deposits and withdrawals, and card requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from ledger.domain.card import CardState
from ledger.domain.lifecycle import ACCOUNT, CARD, Sighting, Standing, Verdict, judge
from ledger.errors import (
    CurrencyMismatchError,
    InvalidTransitionError,
    TransferConflictError,
)
from ledger.events import (
    AccountStatusChanged,
    Anomaly,
    CardIssuanceRequested,
    FundsDeposited,
    FundsWithdrawn,
)
from ledger.identifiers import CHAIN_TRANSACTION_ID, check
from ledger.money import Money, currency_amount
from ledger.observations import AccountSnapshot, Address


class AccountState(msgspec.Struct, frozen=True):
    account_id: str
    customer_id: str
    currency: str | None = None
    standing: Standing = Standing()

    @property
    def status(self) -> str:
        return self.standing.status


class ObserveAccount(msgspec.Struct, frozen=True):
    snapshot: AccountSnapshot


class RecordDeposit(msgspec.Struct, frozen=True):
    amount: Decimal
    currency: str
    chain_transaction: str
    at: datetime


class RecordWithdrawal(msgspec.Struct, frozen=True):
    amount: Decimal
    currency: str
    chain_transaction: str
    at: datetime


class RequestCard(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the processor to issue a card: at most one live virtual card per account."""

    at: datetime
    billing_address: Address
    existing_cards: Sequence[CardState] = ()
    card_type: Literal["virtual", "physical"] = "virtual"
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


AccountCommand = ObserveAccount | RecordDeposit | RecordWithdrawal | RequestCard
AccountEvent = AccountStatusChanged | FundsDeposited | FundsWithdrawn | CardIssuanceRequested


def decide(command: AccountCommand, state: AccountState | None) -> list[AccountEvent]:
    if isinstance(command, ObserveAccount):
        return _observe(command.snapshot, state)
    status = state.status if state else "unknown"
    account_id = state.account_id if state else "?"
    verb = {RecordDeposit: "record a deposit", RecordWithdrawal: "record a withdrawal",
            RequestCard: "request a card"}[type(command)]
    if state is None or status != "active":
        raise InvalidTransitionError("account", account_id, status, verb,
                                     "only an active account can")
    if isinstance(command, RequestCard):
        return [_request_card(command, state)]
    amount = currency_amount(command.amount, command.currency)
    currency = command.currency
    if state.currency is not None and currency != state.currency:
        raise CurrencyMismatchError(f"account {account_id} holds {state.currency}, not {currency}")
    event = FundsDeposited if isinstance(command, RecordDeposit) else FundsWithdrawn
    return [event(account_id=account_id, amount=amount, currency=currency,
                  chain_transaction=check(CHAIN_TRANSACTION_ID, command.chain_transaction,
                                          "chain transaction id"), at=command.at)]


_TRANSFERS = uuid.UUID("5d0c6f4e-2b7a-5e91-9c3d-7a1f0e2b4c68")


def transfer_event_id(event: FundsDeposited | FundsWithdrawn) -> uuid.UUID:
    """One on-chain transfer is one deposit (or one withdrawal): its event id is derived from
    the transfer, so the store itself refuses to record it twice, in any account."""
    kind = "deposit" if isinstance(event, FundsDeposited) else "withdrawal"
    return uuid.uuid5(_TRANSFERS, f"{kind}:{event.chain_transaction}")


def check_same_transfer(recorded: object, event: FundsDeposited | FundsWithdrawn) -> None:
    """A retry of a recorded transfer is a no-op; the same transfer with another account,
    amount or currency is refused (``TransferConflictError``) naming what was recorded."""
    if (type(recorded) is type(event) and isinstance(recorded, FundsDeposited | FundsWithdrawn)
            and (recorded.account_id, recorded.amount, recorded.currency)
            == (event.account_id, event.amount, event.currency)):
        return
    kind = "deposit" if isinstance(event, FundsDeposited) else "withdrawal"
    if isinstance(recorded, FundsDeposited | FundsWithdrawn):
        what = "a deposit" if isinstance(recorded, FundsDeposited) else "a withdrawal"
        shown = (f"{what} of {Money(recorded.amount, recorded.currency)} to account "
                 f"{recorded.account_id}, recorded at {recorded.at.isoformat()}")
    else:
        shown = f"a {type(recorded).__name__}"
    raise TransferConflictError(
        f"chain transaction {event.chain_transaction} is already recorded as {shown}; refusing "
        f"a {kind} of {Money(event.amount, event.currency)} to account {event.account_id}")


def _request_card(command: RequestCard, state: AccountState) -> CardIssuanceRequested:
    if command.card_type != "virtual":
        raise InvalidTransitionError("account", state.account_id, state.status,
                                     "request a physical card", "physical cards are not offered")
    live = [c for c in command.existing_cards if not CARD.is_final(c.status)
            if c.status != "unknown"]
    if live:
        raise InvalidTransitionError("account", state.account_id, state.status,
                                     "request a card", f"card {live[0].card_id} is still "
                                     f"{live[0].status} (one virtual card per account)")
    return CardIssuanceRequested(request_id=command.request_id, account_id=state.account_id,
                                 billing_address=command.billing_address,
                                 card_type=command.card_type, at=command.at)


def _observe(snapshot: AccountSnapshot, state: AccountState | None) -> list[AccountEvent]:
    sighting = Sighting(snapshot.updated_at, ACCOUNT.rank[snapshot.status], snapshot.status)
    verdict = judge(ACCOUNT, state.standing if state else Standing(), sighting)
    if verdict in (Verdict.DUPLICATE, Verdict.UNCHANGED):
        return []
    anomalies = (Anomaly.FINAL_STATE_CHANGED,) if verdict is Verdict.CONTRADICTS_FINAL else ()
    return [AccountStatusChanged(
        account_id=snapshot.id, customer_id=snapshot.customer_id, status=snapshot.status,
        currency=snapshot.currencies[0] if snapshot.currencies else None,
        chain_id=snapshot.chain_id, at=snapshot.updated_at, stale=verdict is Verdict.STALE,
        anomalies=anomalies)]


def evolve(state: AccountState | None, event: AccountEvent) -> AccountState:
    if not isinstance(event, AccountStatusChanged):
        assert state is not None, "money moves only on a known account"
        return state  # deposits and requests do not change what the processor holds
    if state is None:
        state = AccountState(event.account_id, event.customer_id, event.currency)
    sighting = Sighting(event.at, ACCOUNT.rank[event.status], event.status)
    return msgspec.structs.replace(state, currency=state.currency or event.currency,
                                   standing=state.standing.add(ACCOUNT, sighting))
