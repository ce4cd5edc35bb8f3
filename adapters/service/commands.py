"""The back office's local commands: decided against the entity's state in the log, recorded
(at the version that was read, so a concurrent change is noticed), then pushed by the outbox.
An impossible command raises ``InvalidTransitionError`` and records nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar

import msgspec

from ledger.clock import Clock, utc_now
from ledger.domain import account, card, customer
from ledger.domain.programme import stream_for
from ledger.errors import EventIdConflictError, InvalidInputError, NotFoundError
from ledger.events import (
    AccountOpeningRequested,
    CardIssuanceRequested,
    CardRequest,
    CustomerRegistrationRequested,
    DomainEvent,
    FundsDeposited,
    FundsWithdrawn,
)
from ledger.ids import Ids, uuid7
from ledger.interop import JSONReady
from ledger.observations import Address
from ledger.repository import decide_and_append, load
from ledger.store import Event, EventStore, NewEvent, StreamState
from projections import ProjectionRunner
from projections.backends import backend_for

E = TypeVar("E", bound=DomainEvent)


class Commands:
    """The back office's decisions, each decided against its stream and appended (a
    request the outbox then sends, or a deposit or withdrawal), timed by ``clock``, with
    event and request ids from ``ids``."""

    def __init__(self, store: EventStore, clock: Clock = utc_now, ids: Ids = uuid7) -> None:
        self.store, self.clock, self.ids = store, clock, ids

    async def _record(self, stream: str, decide: Callable[[Any], Sequence[E]]) -> E:
        """Decide against the stream's state and append at the version read (the
        repository's loop); the first event decided."""
        decided = await decide_and_append(self.store, stream, lambda state: [
            NewEvent(payload=event, event_id=self.ids()) for event in decide(state)])
        event: E = decided.batch[0].payload
        return event

    async def register_customer(self, external_id: str,
                                wallet: str) -> CustomerRegistrationRequested:
        (event,) = customer.decide(customer.RegisterCustomer(
            external_id, wallet, self.clock(), request_id=self.ids()),
                                   None)
        assert isinstance(event, CustomerRegistrationRequested)
        await self.store.append(stream_for(event), [NewEvent(payload=event, event_id=self.ids())],
                                expected=StreamState.NO_STREAM)
        return event

    async def open_account(self, customer_id: str, currency: str) -> AccountOpeningRequested:
        event = await self._record(f"customer-{customer_id}", lambda state: customer.decide(
            customer.OpenAccount(currency, self.clock(), request_id=self.ids()),
            _known(state, "customer", customer_id)))
        assert isinstance(event, AccountOpeningRequested)
        return event

    async def request_card(self, account_id: str, billing: Address) -> CardIssuanceRequested:
        existing = [(await load(self.store, f"card-{card_id}")).state
                    for card_id in sorted(await self._card_ids(account_id))]
        event = await self._record(f"account-{account_id}", lambda state: account.decide(
            account.RequestCard(at=self.clock(), billing_address=billing, request_id=self.ids(),
                                existing_cards=existing), _known(state, "account", account_id)))
        assert isinstance(event, CardIssuanceRequested)
        return event

    async def _card_ids(self, account_id: str) -> set[str]:
        """The account's cards: those the projection indexes, and those the log gained since
        its checkpoint. Its cost follows the account's cards, not the log."""
        backend = backend_for(self.store, ProjectionRunner.name)
        await backend.open()
        try:
            checkpoint = await backend.checkpoint()  # before the table: nothing falls between
            found = set(await backend.card_ids(account_id))
        finally:
            await backend.close()
        async for stored in self.store.read_all(after=checkpoint, categories=["card"]):
            if getattr(stored.payload, "account_id", None) == account_id:
                found.add(stored.stream.removeprefix("card-"))
        return found

    async def card_action(self, card_id: str, action: CardAction) -> CardRequest:
        kind = _CARD_COMMANDS.get(action)
        if kind is None:
            raise InvalidInputError(f"unknown card action {action!r}: "
                                    f"{', '.join(_CARD_COMMANDS)}")
        command = kind(at=self.clock(), request_id=self.ids())
        event = await self._record(f"card-{card_id}", lambda state: card.decide(
            command, _known(state, "card", card_id)))
        assert isinstance(event, CardRequest)
        return event

    async def record_deposit(self, account_id: str, amount: Decimal, currency: str,
                             chain_transaction: str) -> MoneyRecorded:
        """Record an on-chain transfer into the account. The same transfer again is a no-op
        (``duplicate``); with another account, amount or currency, ``TransferConflictError``."""
        return await self._move_money(account_id, account.RecordDeposit(
            amount, currency, chain_transaction, self.clock()))

    async def record_withdrawal(self, account_id: str, amount: Decimal, currency: str,
                                chain_transaction: str) -> MoneyRecorded:
        """Record an on-chain transfer out of the account, with the rules of deposits."""
        return await self._move_money(account_id, account.RecordWithdrawal(
            amount, currency, chain_transaction, self.clock()))

    async def _move_money(self, account_id: str,
                          command: account.RecordDeposit | account.RecordWithdrawal,
                          ) -> MoneyRecorded:
        decided: list[FundsDeposited | FundsWithdrawn] = []

        def decide(state: Any) -> list[NewEvent[Any]]:
            (event,) = account.decide(command, _known(state, "account", account_id))
            assert isinstance(event, FundsDeposited | FundsWithdrawn)
            decided.append(event)
            return [NewEvent(payload=event, event_id=account.transfer_event_id(event))]

        try:
            result = await decide_and_append(self.store, f"account-{account_id}", decide)
        except EventIdConflictError as conflict:  # the transfer is recorded already
            recorded = await self._event_at(conflict.position)
            account.check_same_transfer(recorded, decided[-1])
            assert isinstance(recorded, FundsDeposited | FundsWithdrawn)
            return MoneyRecorded(recorded, conflict.position, duplicate=True)
        assert result.result is not None
        return MoneyRecorded(decided[-1], result.result.positions[0], duplicate=False)

    async def has_withdrawal(self, account_id: str, chain_transaction: str) -> bool:
        """Whether the account's stream holds a withdrawal of this on-chain transfer."""
        return any(isinstance(e.payload, FundsWithdrawn)
                   and e.payload.chain_transaction == chain_transaction
                   for e in await self.store.read_stream(f"account-{account_id}"))

    async def _event_at(self, position: int) -> Event:
        async for stored in self.store.read_all(after=position - 1):
            return stored.payload
        raise LookupError(f"no event at position {position}")


CardAction = Literal["deactivate", "activate", "terminate"]
"""What the processor lets the back office do to a card (``PATCH .../deactivate``,
``.../activate``, ``DELETE``)."""
_CARD_COMMANDS: dict[str, type[card.DeactivateCard | card.ActivateCard | card.TerminateCard]] = {
    "deactivate": card.DeactivateCard, "activate": card.ActivateCard,
    "terminate": card.TerminateCard}


def _known(state: Any, entity: str, entity_id: str) -> Any:
    """``state``, or ``NotFoundError`` naming the id when the log knows no such entity."""
    if state is None:
        raise NotFoundError(f"no {entity} {entity_id[:64]!r} in the ledger: it learns of "
                            f"a {entity} from the processor's reports (webhooks or a pull)")
    return state


class MoneyRecorded(msgspec.Struct, JSONReady, frozen=True):
    """A deposit or withdrawal as the log holds it, and whether this call only found it."""

    event: FundsDeposited | FundsWithdrawn
    position: int
    duplicate: bool
