"""The back office's local commands: decided against the entity's state in the log, recorded
(at the version that was read, so a concurrent change is noticed), then pushed by the outbox.
An impossible command raises ``InvalidTransitionError`` and records nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.ingest import fold
from ledger.domain import account, card, customer
from ledger.domain.programme import stream_for
from ledger.events import DomainEvent
from ledger.observations import Address
from ledger.store import AppendResult, Event, EventStore, NewEvent, StoredEvent, StreamState
from ledger.store.base import utc_now


class Commands:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def _state(self, stream: str) -> tuple[Any, int | None]:
        events = await self.store.read_stream(stream)
        return fold(events, stream.partition("-")[0]), (events[-1].version if events else None)

    async def _record(self, stream: str, events: list[DomainEvent],
                      version: int | None) -> AppendResult:
        expected = StreamState.NO_STREAM if version is None else version
        return await self.store.append(stream, [NewEvent(payload=e) for e in events],
                                       expected=expected)

    async def register_customer(self, external_id: str, wallet: str) -> DomainEvent:
        (event,) = customer.decide(customer.RegisterCustomer(external_id, wallet, utc_now()),
                                   None)
        await self.store.append(stream_for(event), [NewEvent(payload=event)],
                                expected=StreamState.NO_STREAM)
        return event

    async def open_account(self, customer_id: str, currency: str) -> DomainEvent:
        stream = f"customer-{customer_id}"
        state, version = await self._state(stream)
        events = customer.decide(customer.OpenAccount(currency, utc_now()), state)
        await self._record(stream, list(events), version)
        return events[0]

    async def request_card(self, account_id: str, billing: Address) -> DomainEvent:
        stream = f"account-{account_id}"
        state, version = await self._state(stream)
        by_card: dict[str, list[StoredEvent[Event]]] = {}
        async for event in self.store.read_all(categories=["card"]):
            if getattr(event.payload, "account_id", None) == account_id:
                by_card.setdefault(event.stream, []).append(event)
        existing = [fold(events, "card") for events in by_card.values()]
        events = account.decide(account.RequestCard(at=utc_now(), billing_address=billing,
                                                    existing_cards=existing), state)
        await self._record(stream, list(events), version)
        return events[0]

    async def card_action(self, card_id: str, action: str) -> DomainEvent:
        now = utc_now()
        command: card.CardCommand
        if action == "deactivate":
            command = card.DeactivateCard(at=now)
        elif action == "activate":
            command = card.ActivateCard(at=now)
        elif action == "terminate":
            command = card.TerminateCard(at=now)
        else:
            raise ValueError(f"unknown card action {action!r}: deactivate, activate, terminate")
        stream = f"card-{card_id}"
        state, version = await self._state(stream)
        events = card.decide(command, state)
        await self._record(stream, list(events), version)
        return events[0]

    async def record_deposit(self, account_id: str, amount: Decimal, currency: str,
                             chain_transaction: str) -> DomainEvent:
        stream = f"account-{account_id}"
        state, version = await self._state(stream)
        events = account.decide(account.RecordDeposit(amount, currency, chain_transaction,
                                                      utc_now()), state)
        await self._record(stream, list(events), version)
        return events[0]
