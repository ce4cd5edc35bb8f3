"""Customers: registration and deactivation requests, and what the processor reports."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ledger.domain.lifecycle import CUSTOMER, Sighting, Standing, Verdict, judge
from ledger.errors import InvalidTransitionError
from ledger.events import (
    AccountOpeningRequested,
    Anomaly,
    CustomerDeactivationRequested,
    CustomerRegistrationRequested,
    CustomerStatusChanged,
)
from ledger.identifiers import ACCOUNT_ID, check
from ledger.money import check_currency
from ledger.observations import CustomerSnapshot


class CustomerState(msgspec.Struct, frozen=True):
    customer_id: str
    standing: Standing = Standing()

    @property
    def status(self) -> str:
        return self.standing.status


class ObserveCustomer(msgspec.Struct, frozen=True):
    snapshot: CustomerSnapshot


class RegisterCustomer(msgspec.Struct, frozen=True):
    external_id: str
    wallet: str
    at: datetime
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


class DeactivateCustomer(msgspec.Struct, frozen=True):
    at: datetime


class OpenAccount(msgspec.Struct, frozen=True):
    currency: str
    at: datetime
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


CustomerCommand = ObserveCustomer | RegisterCustomer | DeactivateCustomer | OpenAccount
CustomerEvent = (CustomerStatusChanged | CustomerRegistrationRequested
                 | CustomerDeactivationRequested | AccountOpeningRequested)


def decide(command: CustomerCommand, state: CustomerState | None) -> list[CustomerEvent]:
    if isinstance(command, ObserveCustomer):
        return _observe(command.snapshot, state)
    if isinstance(command, RegisterCustomer):
        if not command.external_id.strip():
            raise InvalidTransitionError("customer", "?", "unknown", "register",
                                         "an external id is required")
        return [CustomerRegistrationRequested(
            request_id=command.request_id, external_id=command.external_id,
            wallet=check(ACCOUNT_ID, command.wallet, "CAIP-10 wallet"), at=command.at)]
    status = state.status if state else "unknown"
    customer_id = state.customer_id if state else "?"
    if isinstance(command, DeactivateCustomer):
        if status != "active":
            raise InvalidTransitionError("customer", customer_id, status, "deactivate")
        return [CustomerDeactivationRequested(customer_id=customer_id, at=command.at)]
    if status != "active":
        raise InvalidTransitionError("customer", customer_id, status, "open an account",
                                     "only an active customer can open accounts")
    return [AccountOpeningRequested(request_id=command.request_id, customer_id=customer_id,
                                    currency=check_currency(command.currency), at=command.at)]


def _observe(snapshot: CustomerSnapshot, state: CustomerState | None) -> list[CustomerEvent]:
    sighting = Sighting(snapshot.updated_at, CUSTOMER.rank[snapshot.status], snapshot.status)
    verdict = judge(CUSTOMER, state.standing if state else Standing(), sighting)
    if verdict in (Verdict.DUPLICATE, Verdict.UNCHANGED):
        return []
    anomalies = (Anomaly.FINAL_STATE_CHANGED,) if verdict is Verdict.CONTRADICTS_FINAL else ()
    return [CustomerStatusChanged(customer_id=snapshot.id, status=snapshot.status,
                                  external_id=snapshot.external_id, at=snapshot.updated_at,
                                  stale=verdict is Verdict.STALE, anomalies=anomalies)]


def evolve(state: CustomerState | None, event: CustomerEvent) -> CustomerState:
    if not isinstance(event, CustomerStatusChanged):
        assert state is not None or isinstance(event, CustomerRegistrationRequested)
        return state or CustomerState("?")  # requests do not change what the processor holds
    state = state if state is not None and state.customer_id != "?" else (
        CustomerState(event.customer_id))
    sighting = Sighting(event.at, CUSTOMER.rank[event.status], event.status)
    return msgspec.structs.replace(state, standing=state.standing.add(CUSTOMER, sighting))
