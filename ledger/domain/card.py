"""Cards: what the processor reports about them, and the requests the back office makes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from ledger.domain.lifecycle import CARD, Sighting, Standing, Verdict, judge
from ledger.errors import InvalidTransitionError
from ledger.events import (
    CARD_STATUS_EVENTS,
    CARD_STATUS_OF,
    Anomaly,
    CardActivated,
    CardActivationRequested,
    CardDeactivated,
    CardDeactivationRequested,
    CardIssuanceStarted,
    CardIssued,
    CardObserved,
    CardRequest,
    CardTerminated,
    CardTerminationRequested,
)
from ledger.observations import CardSnapshot


class CardState(msgspec.Struct, frozen=True):
    card_id: str
    account_id: str
    standing: Standing = Standing()
    first_active_at: datetime | None = None
    requested: frozenset[str] = frozenset()
    """Requests sent to the processor and not yet seen through (by event type name)."""

    @property
    def status(self) -> str:
        return self.standing.status

    @property
    def terminated_at(self) -> datetime | None:
        final = self.standing.final
        return final.at if final is not None and final.status == "terminated" else None


class ObserveCard(msgspec.Struct, frozen=True):
    snapshot: CardSnapshot


class DeactivateCard(msgspec.Struct, frozen=True):
    at: datetime
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


class ActivateCard(msgspec.Struct, frozen=True):
    at: datetime
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


class TerminateCard(msgspec.Struct, frozen=True):
    at: datetime
    request_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


CardCommand = ObserveCard | DeactivateCard | ActivateCard | TerminateCard
CardEvent = CardObserved | CardRequest

# A local request is allowed from these states, and is seen through by this event.
_REQUESTS: dict[type, tuple[str, frozenset[str], type[CardRequest], type[CardObserved]]] = {
    DeactivateCard: ("deactivate", frozenset({"active"}), CardDeactivationRequested,
                     CardDeactivated),
    ActivateCard: ("activate", frozenset({"inactive"}), CardActivationRequested, CardActivated),
    TerminateCard: ("terminate", frozenset({"active", "inactive", "suspended"}),
                    CardTerminationRequested, CardTerminated),
}
_SEEN_THROUGH = {observed.__name__: request.__name__
                 for _, _, request, observed in _REQUESTS.values()}


def decide(command: CardCommand, state: CardState | None) -> list[CardEvent]:
    if isinstance(command, ObserveCard):
        return list(_observe(command.snapshot, state))
    verb, allowed, request, _ = _REQUESTS[type(command)]
    if state is None:
        raise InvalidTransitionError("card", "?", "unknown", verb, "no such card")
    if state.status not in allowed:
        raise InvalidTransitionError("card", state.card_id, state.status, verb)
    if request.__name__ in state.requested:
        raise InvalidTransitionError("card", state.card_id, state.status, verb,
                                     "already requested, waiting for the processor")
    return [request(card_id=state.card_id, account_id=state.account_id,
                    request_id=command.request_id, at=command.at)]


def _observe(snapshot: CardSnapshot, state: CardState | None) -> list[CardObserved]:
    standing = state.standing if state else Standing()
    sighting = Sighting(snapshot.updated_at, CARD.rank[snapshot.status], snapshot.status)
    verdict = judge(CARD, standing, sighting)
    if verdict in (Verdict.DUPLICATE, Verdict.UNCHANGED):
        return []
    events: list[CardObserved] = []
    common: dict[str, Any] = {"card_id": snapshot.id, "account_id": snapshot.account_id}
    if verdict is Verdict.NEW and snapshot.status != "issuing":
        # Every card starts issuing, at its createdAt; ordered by the report that told us.
        events.append(CardIssuanceStarted(at=snapshot.created_at, card_type=snapshot.type,
                                          observed_at=snapshot.updated_at, **common))
    first_active = state.first_active_at if state else None
    event_type: type[CardObserved] = CARD_STATUS_EVENTS[snapshot.status]
    if snapshot.status == "issuing":
        common["card_type"] = snapshot.type
    first_activation = first_active is None or snapshot.updated_at <= first_active
    if snapshot.status == "active" and first_activation:
        event_type = CardIssued
        common |= {"masked_pan": snapshot.masked_pan, "expiration_date": snapshot.expiration_date,
                   "network": snapshot.network}
    anomalies = (Anomaly.FINAL_STATE_CHANGED,) if verdict is Verdict.CONTRADICTS_FINAL else ()
    events.append(event_type(at=snapshot.updated_at, stale=verdict is Verdict.STALE,
                             anomalies=anomalies, **common))
    return events


def evolve(state: CardState | None, event: CardEvent) -> CardState:
    if state is None:
        state = CardState(event.card_id, event.account_id)
    if isinstance(event, CardRequest):
        return msgspec.structs.replace(state, requested=state.requested | {type(event).__name__})
    status = CARD_STATUS_OF[type(event)]
    standing = state.standing.add(CARD, Sighting(event.reported_at, CARD.rank[status], status))
    first_active = state.first_active_at
    if status == "active" and (first_active is None or event.at < first_active):
        first_active = event.at
    requested = state.requested - {_SEEN_THROUGH.get(type(event).__name__, "")}
    if CARD.is_final(standing.current.status if standing.current else "issuing"):
        requested = frozenset()  # nothing more will happen to a final card
    return CardState(state.card_id, state.account_id, standing, first_active, requested)
