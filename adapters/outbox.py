"""The outbox: the back office's requests, recorded in the log first, then sent.

A local command records a ``...Requested`` event. The dispatcher sends each request that has
no outcome yet, with an ``Idempotency-Key`` derived from the request's id, and records the
outcome (``RequestAccepted`` with the remote id, or ``RequestRefused`` with the reason) under an
id derived from the request too. If the process dies between sending and recording, the
request has no outcome on restart and is sent again with the same key: the processor answers
with what it did the first time, and nothing happens twice.
"""

from __future__ import annotations

import uuid

import structlog

from adapters.client import ProcessorClient
from adapters.errors import DeadlineExceeded, ProcessorError
from ledger.domain.programme import stream_for
from ledger.events import (
    AccountOpeningRequested,
    CardActivationRequested,
    CardDeactivationRequested,
    CardIssuanceRequested,
    CardTerminationRequested,
    CustomerRegistrationRequested,
    DomainEvent,
    RequestAccepted,
    RequestRefused,
)
from ledger.store import Event, EventStore, Metadata, NewEvent, StoredEvent
from ledger.store.base import utc_now

log = structlog.get_logger("adapters.outbox")

REQUESTS = (CustomerRegistrationRequested, AccountOpeningRequested, CardIssuanceRequested,
            CardDeactivationRequested, CardActivationRequested, CardTerminationRequested)
REQUEST_TYPES = [r.__name__ for r in REQUESTS]
OUTCOME_TYPES = ["RequestAccepted", "RequestRefused"]
_KEYS = uuid.UUID("8a7b6c5d-4e3f-5a2b-9c1d-0e9f8a7b6c5d")

Request = (CustomerRegistrationRequested | AccountOpeningRequested | CardIssuanceRequested
           | CardDeactivationRequested | CardActivationRequested | CardTerminationRequested)


def idempotency_key(request_id: uuid.UUID) -> uuid.UUID:
    """The key a request is sent with, every time: derived from the ledger event."""
    return uuid.uuid5(_KEYS, f"request:{request_id}")


def outcome_id(request_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_KEYS, f"outcome:{request_id}")


class Outbox:
    def __init__(self, store: EventStore, client: ProcessorClient) -> None:
        self.store, self.client = store, client
        self._read_to = 0  # the log position the pending requests below are known up to
        self._pending: dict[uuid.UUID, StoredEvent[Event]] = {}

    async def pending(self) -> list[StoredEvent[Event]]:
        """Requests in the log without an outcome, oldest first. Each call reads only what
        the log gained since the last one (requests and outcomes), so its cost follows the
        new work, not the log's length; memory holds only the requests still pending."""
        head = await self.store.head()  # committed, gap-free, before the read starts
        async for event in self.store.read_all(after=self._read_to,
                                               types=[*REQUEST_TYPES, *OUTCOME_TYPES]):
            self._read_to = event.position
            payload = event.payload
            if isinstance(payload, REQUESTS):
                self._pending[payload.request_id] = event
            elif isinstance(payload, RequestAccepted | RequestRefused):
                self._pending.pop(payload.request_id, None)
        self._read_to = max(self._read_to, head)
        return sorted(self._pending.values(), key=lambda e: e.position)

    async def dispatch(self) -> int:
        """Send every pending request once; return how many got an outcome."""
        settled = 0
        for stored in await self.pending():
            settled += await self.send(stored)
        return settled

    async def send(self, stored: StoredEvent[Event]) -> bool:
        request = stored.payload
        assert isinstance(request, REQUESTS)
        kind = type(request).__name__
        try:
            remote_id = await self._call(request)
        except DeadlineExceeded as exc:
            log.warning("request not sent yet", request_id=str(request.request_id),
                        request_type=kind, error=str(exc))
            return False
        except ProcessorError as exc:
            outcome: DomainEvent = RequestRefused(
                request_id=request.request_id, request_type=kind, status=exc.status,
                reason=exc.body.decode(errors="replace")[:500], at=utc_now())
        else:
            outcome = RequestAccepted(request_id=request.request_id, request_type=kind,
                                      remote_id=remote_id, at=utc_now())
        await self.store.append(stream_for(outcome), [NewEvent(
            payload=outcome, event_id=outcome_id(request.request_id),
            metadata=Metadata(causation_id=str(stored.event_id)))])
        return True

    async def _call(self, request: Request) -> str | None:
        key = idempotency_key(request.request_id)
        match request:
            case CustomerRegistrationRequested():
                return (await self.client.create_customer(request.external_id, request.wallet,
                                                          key)).id
            case AccountOpeningRequested():
                return (await self.client.create_account(request.customer_id, request.currency,
                                                         key)).id
            case CardIssuanceRequested():
                return (await self.client.create_card(request.account_id,
                                                      request.billing_address, key)).id
            case CardDeactivationRequested():
                await self.client.card_action(request.card_id, "deactivate", key)
            case CardActivationRequested():
                await self.client.card_action(request.card_id, "activate", key)
            case CardTerminationRequested():
                await self.client.card_action(request.card_id, "terminate", key)
        return None
