"""A whole card programme held in memory: every entity's state, and where each event goes.

``Programme.observe(snapshot)`` routes a processor snapshot to its entity's decider with the
context that entity's rules need (a hold needs its card; a transaction its hold and card),
applies the resulting events, and returns them. It does no I/O: tests, the property-based
toolkit and the adapter's ingest all use it, the adapter after loading the states it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.domain import account, card, customer, hold, transaction
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.events import (
    AccountOpeningRequested,
    AccountStatusChanged,
    CardIssuanceRequested,
    CardObserved,
    CardRequest,
    CustomerDeactivationRequested,
    CustomerRegistrationRequested,
    CustomerStatusChanged,
    DomainEvent,
    FundsDeposited,
    FundsWithdrawn,
    HoldExpired,
    HoldObserved,
    RequestAccepted,
    RequestRefused,
    TransactionObserved,
)
from ledger.observations import (
    AccountSnapshot,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    TransactionSnapshot,
    kind_of,
)


def stream_for(event: DomainEvent) -> str:
    """The stream an event belongs to: one per entity, ``category-id``."""
    match event:
        case CustomerRegistrationRequested():
            return f"registration-{event.request_id}"
        case CustomerStatusChanged() | CustomerDeactivationRequested() | AccountOpeningRequested():
            return f"customer-{event.customer_id}"
        case AccountStatusChanged() | FundsDeposited() | FundsWithdrawn() | CardIssuanceRequested():
            return f"account-{event.account_id}"
        case CardObserved() | CardRequest():
            return f"card-{event.card_id}"
        case HoldObserved() | HoldExpired():
            return f"authorisation-{event.authorisation_id}"
        case TransactionObserved():
            return f"transaction-{event.transaction_id}"
        case RequestAccepted() | RequestRefused():
            return f"request-{event.request_id}"
    raise TypeError(f"no stream for {type(event).__name__}")


def snapshot_stream(snapshot: AnySnapshot) -> str:
    """The stream of the entity a processor snapshot describes."""
    return f"{kind_of(snapshot)}-{snapshot.id}"


class Programme:
    """Every entity's state, kept by applying events; a fold, so replay equals live."""

    def __init__(self, policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.customers: dict[str, customer.CustomerState] = {}
        self.accounts: dict[str, account.AccountState] = {}
        self.cards: dict[str, card.CardState] = {}
        self.holds: dict[str, hold.HoldState] = {}
        self.transactions: dict[str, transaction.TransactionState] = {}

    def observe(self, snapshot: AnySnapshot) -> list[DomainEvent]:
        """Decide what a processor snapshot tells us, apply it, and return the new events."""
        events: list[Any] = []
        match snapshot:
            case CustomerSnapshot():
                events = customer.decide(customer.ObserveCustomer(snapshot),
                                         self.customers.get(snapshot.id))
            case AccountSnapshot():
                events = account.decide(account.ObserveAccount(snapshot),
                                        self.accounts.get(snapshot.id))
            case CardSnapshot():
                events = card.decide(card.ObserveCard(snapshot), self.cards.get(snapshot.id))
            case AuthorisationSnapshot():
                events = hold.decide(hold.ObserveAuthorisation(
                    snapshot, self.cards.get(snapshot.card_id), self.policy),
                    self.holds.get(snapshot.id))
            case TransactionSnapshot():
                linked = self.holds.get(snapshot.authorisation_id or "")
                events = transaction.decide(transaction.ObserveTransaction(
                    snapshot, linked, self.cards.get(snapshot.card_id or ""), self.policy),
                    self.transactions.get(snapshot.id))
        self.apply_all(events)
        return list(events)

    def apply_all(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case CustomerStatusChanged():
                self.customers[event.customer_id] = customer.evolve(
                    self.customers.get(event.customer_id), event)
            case AccountStatusChanged():
                self.accounts[event.account_id] = account.evolve(
                    self.accounts.get(event.account_id), event)
            case CardObserved() | CardRequest():
                self.cards[event.card_id] = card.evolve(self.cards.get(event.card_id), event)
            case HoldObserved() | HoldExpired():
                self.holds[event.authorisation_id] = hold.evolve(
                    self.holds.get(event.authorisation_id), event)
            case TransactionObserved():
                self.transactions[event.transaction_id] = transaction.evolve(
                    self.transactions.get(event.transaction_id), event)
            case _:
                pass  # requests and money movements change no processor entity's state

    def summary(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Each entity's current state, comparable across programmes."""
        return {
            "customers": {k: (v.status,) for k, v in self.customers.items()},
            "accounts": {k: (v.status,) for k, v in self.accounts.items()},
            "cards": {k: (v.status,) for k, v in self.cards.items()},
            "holds": {k: (v.status, str(v.amount), str(v.created_at))
                      for k, v in self.holds.items()},
            "transactions": {k: (v.status, str(v.amount)) for k, v in self.transactions.items()},
        }
