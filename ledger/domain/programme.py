"""A whole card programme held in memory: every entity's state, and where each event goes.

``decide_observation`` routes a processor snapshot to its entity's decider with the context
that entity's rules need (a hold needs its card; a transaction its hold and card), and
``evolve_all`` applies events to an entity's state. Neither does I/O: ``Programme`` uses them
on states held in memory (tests, the property-based toolkit), the adapter's ingest on states
it loads from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def context_ids(snapshot: AnySnapshot) -> tuple[str | None, str | None]:
    """The card and the authorisation whose states ``snapshot``'s rules need, if any."""
    match snapshot:
        case AuthorisationSnapshot():
            return snapshot.card_id, None
        case TransactionSnapshot():
            return snapshot.card_id, snapshot.authorisation_id
    return None, None


def decide_observation(snapshot: AnySnapshot, state: Any, the_card: card.CardState | None,
                       the_hold: hold.HoldState | None, policy: HoldPolicy,
                       ) -> list[DomainEvent]:
    """What ``snapshot`` teaches, given its entity's state and its context (``context_ids``)."""
    match snapshot:
        case CustomerSnapshot():
            return list(customer.decide(customer.ObserveCustomer(snapshot), state))
        case AccountSnapshot():
            return list(account.decide(account.ObserveAccount(snapshot), state))
        case CardSnapshot():
            return list(card.decide(card.ObserveCard(snapshot), state))
        case AuthorisationSnapshot():
            return list(hold.decide(hold.ObserveAuthorisation(snapshot, the_card, policy),
                                    state))
        case TransactionSnapshot():
            return list(transaction.decide(transaction.ObserveTransaction(
                snapshot, the_hold, the_card, policy), state))
    raise TypeError(type(snapshot).__name__)


# Per stream category, the entity's evolve and the events that change its state (requests,
# markers and money movements do not).
EVOLVE: dict[str, tuple[Callable[[Any, Any], Any], tuple[type, ...]]] = {
    "customer": (customer.evolve, (CustomerStatusChanged,)),
    "account": (account.evolve, (AccountStatusChanged,)),
    "card": (card.evolve, (CardObserved, CardRequest)),
    "authorisation": (hold.evolve, (HoldObserved, HoldExpired)),
    "transaction": (transaction.evolve, (TransactionObserved,)),
}


def evolve_all(kind: str, state: Any, events: Iterable[object]) -> Any:
    """``state`` of an entity of ``kind`` after those of ``events`` that change it."""
    evolve, accepted = EVOLVE[kind]
    for event in events:
        if isinstance(event, accepted):
            state = evolve(state, event)
    return state


class Programme:
    """Every entity's state, kept by applying events; a fold, so replay equals live."""

    def __init__(self, policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.customers: dict[str, customer.CustomerState] = {}
        self.accounts: dict[str, account.AccountState] = {}
        self.cards: dict[str, card.CardState] = {}
        self.holds: dict[str, hold.HoldState] = {}
        self.transactions: dict[str, transaction.TransactionState] = {}
        self._states: dict[str, dict[str, Any]] = {
            "customer": self.customers, "account": self.accounts, "card": self.cards,
            "authorisation": self.holds, "transaction": self.transactions}

    def observe(self, snapshot: AnySnapshot) -> list[DomainEvent]:
        """Decide what a processor snapshot tells us, apply it, and return the new events."""
        card_id, authorisation_id = context_ids(snapshot)
        events = decide_observation(
            snapshot, self._states[kind_of(snapshot)].get(snapshot.id),
            self.cards.get(card_id) if card_id else None,
            self.holds.get(authorisation_id) if authorisation_id else None, self.policy)
        self.apply_all(events)
        return events

    def apply_all(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: DomainEvent) -> None:
        for kind, (evolve, accepted) in EVOLVE.items():
            if isinstance(event, accepted):
                states, entity_id = self._states[kind], stream_for(event).partition("-")[2]
                states[entity_id] = evolve(states.get(entity_id), event)
                return

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
