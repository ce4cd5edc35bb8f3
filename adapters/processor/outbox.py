"""The outbox: the back office's requests, recorded in the log first, then sent.

A local command records a ``...Requested`` event. The dispatcher sends each request that has
no outcome yet, with an ``Idempotency-Key`` derived from the request's id, and records the
outcome (``RequestAccepted`` with the remote id, or ``RequestRefused`` with the reason) under an
id derived from the request too. If the process dies between sending and recording, the
request has no outcome on restart and is sent again with the same key: the processor answers
with what it did the first time, and nothing happens twice.

**Transient or definite.** A failure that may pass (``adapters.processor.errors.is_transient``:
429, 5xx, timeouts, a 401, a 409 whose key is still in flight) leaves the request pending: it
is sent again, with the same key, after a capped exponential backoff with jitter, and never
sooner than the processor's ``Retry-After``. Only a definite refusal (400, 404, 422, a 409 that
is not in flight...) records ``RequestRefused``, with the processor's problem body. An operator
lists what is pending or refused and retries a refused request (``cardledger outbox``): the
retry is a new request, with a new key, that names the refused one.

**One dispatcher.** With ``lead=True`` (``serve``) a dispatcher sends only while it holds the
outbox's lead, the same kind of lock the projection runner holds: several ``serve``
processes, one sender at a time, and a standby takes over when the leader dies.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from adapters.processor.client import ProcessorClient
from adapters.processor.errors import NotConfigured, ProcessorError, is_transient
from ledger.backoff import backoff
from ledger.clock import Clock, utc_now
from ledger.domain.programme import stream_for
from ledger.errors import LedgerError, NotFoundError
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
from ledger.logs import get_logger
from ledger.store import Event, EventStore, Metadata, NewEvent, StoredEvent
from ledger.tracing import span
from projections.backends.lead import Lead

log = get_logger("outbox")

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


def retry_id(request_id: uuid.UUID) -> uuid.UUID:
    """The request that retries a refused one: the same for every retry of it, so retrying
    twice sends once."""
    return uuid.uuid5(_KEYS, f"retry:{request_id}")


RETRY_BASE = 1.0
RETRY_CAP = 300.0
"""Seconds before the first resend of a transiently failed request, and the most between
two: the wait doubles with each failure, with jitter (half to all of it)."""


class Backoff(msgspec.Struct):
    """A pending request's failures so far (in the dispatcher's memory)."""

    attempts: int
    due: datetime
    """The moment (on the ledger's clock) before which it is not sent again."""
    last_error: str


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One request as an operator sees it."""

    request_id: uuid.UUID
    request_type: str
    position: int
    state: Literal["pending", "accepted", "refused", "retried"]
    status: int | None = None
    """The processor's status, for a refused request."""
    reason: str | None = None
    """The processor's problem body, for a refused request."""
    retry_of: uuid.UUID | None = None
    """The refused request this one retries."""


class Outbox:
    def __init__(self, store: EventStore, client: ProcessorClient | None, *,
                 lead: bool = False, clock: Clock = utc_now,
                 rng: random.Random | None = None) -> None:
        self.store, self.client = store, client
        self._read_to = 0  # the log position the pending requests below are known up to
        self._pending: dict[uuid.UUID, StoredEvent[Event]] = {}
        self.backoff: dict[uuid.UUID, Backoff] = {}
        """Pending requests that failed transiently, and when each is due again."""
        self._clock, self._rng = clock, rng or random.Random()
        self._lead = Lead(store, "outbox") if lead else None

    @property
    def leading(self) -> bool:
        return self._lead is None or self._lead.held

    async def close(self) -> None:
        """Give up the lead, if held."""
        if self._lead is not None:
            await self._lead.release()

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
                self.backoff.pop(payload.request_id, None)
        self._read_to = max(self._read_to, head)
        return sorted(self._pending.values(), key=lambda e: e.position)

    async def dispatch(self) -> int:
        """Send every pending request that is due; return how many got an outcome. A
        dispatcher that leads only sends while it holds the lead (a standby sends nothing)."""
        if self._lead is not None and not await self._lead.take():
            return 0
        settled = 0
        try:
            for stored in await self.pending():
                assert isinstance(stored.payload, REQUESTS)
                waiting = self.backoff.get(stored.payload.request_id)
                if waiting is None or waiting.due <= self._clock():
                    settled += await self.send(stored)
        except LedgerError:
            # The database may be gone, and a PostgreSQL lead with its session: give the
            # lead up, and take it again (or let another process) once the database is back.
            await self.close()
            raise
        return settled

    async def send(self, stored: StoredEvent[Event]) -> bool:
        """Send one request; record its outcome and return True, or, after a transient
        failure, schedule it again and return False."""
        request = stored.payload
        assert isinstance(request, REQUESTS)
        kind = type(request).__name__
        try:
            with span("cardledger.outbox_send", request_type=kind,
                      request_id=str(request.request_id)):
                remote_id = await self._call(request)
        except LedgerError as exc:
            if is_transient(exc):
                self._later(request.request_id, exc)
                return False
            if not isinstance(exc, ProcessorError):
                raise
            outcome: DomainEvent = RequestRefused(
                request_id=request.request_id, request_type=kind, status=exc.status,
                reason=exc.body.decode(errors="replace")[:500], at=self._clock())
        else:
            outcome = RequestAccepted(request_id=request.request_id, request_type=kind,
                                      remote_id=remote_id, at=self._clock())
        await self.store.append(stream_for(outcome), [NewEvent(
            payload=outcome, event_id=outcome_id(request.request_id),
            metadata=Metadata(causation_id=str(stored.event_id)))])
        self.backoff.pop(request.request_id, None)
        return True

    def _later(self, request_id: uuid.UUID, exc: LedgerError) -> None:
        """Schedule a resend: capped exponential backoff with jitter, and never sooner than
        the processor's Retry-After."""
        attempts = self.backoff[request_id].attempts + 1 if request_id in self.backoff else 1
        wait = backoff(attempts, RETRY_BASE, RETRY_CAP, self._rng)
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            wait = max(wait, min(asked, RETRY_CAP))
        self.backoff[request_id] = Backoff(attempts, self._clock() + timedelta(seconds=wait),
                                           str(exc)[:300])
        log.warning("request not sent yet; will retry", request_id=str(request_id),
                    attempts=attempts, retry_in=round(wait, 3), error=str(exc)[:300])

    async def entries(self) -> list[OutboxEntry]:
        """Every request in the log and where it stands, oldest first (reads the requests
        and outcomes of the whole log: an operator's query, not the dispatcher's)."""
        requests: dict[uuid.UUID, tuple[int, Request, str | None]] = {}
        outcomes: dict[uuid.UUID, RequestAccepted | RequestRefused] = {}
        async for event in self.store.read_all(types=[*REQUEST_TYPES, *OUTCOME_TYPES]):
            payload = event.payload
            if isinstance(payload, REQUESTS):
                requests[payload.request_id] = (event.position, payload,
                                                event.metadata.correlation_id)
            elif isinstance(payload, RequestAccepted | RequestRefused):
                outcomes[payload.request_id] = payload
        return [_entry(request_id, position, request, outcomes.get(request_id),
                       retry_id(request_id) in requests, retried_from)
                for request_id, (position, request, retried_from) in requests.items()]

    async def retry(self, request_id: uuid.UUID) -> uuid.UUID:
        """Record a new request that repeats a refused one, with a new key; return its id.
        Raises NotFoundError unless ``request_id`` names a refused request."""
        found = [e async for e in self.store.read_all(types=[*REQUEST_TYPES, *OUTCOME_TYPES])
                 if getattr(e.payload, "request_id", None) == request_id]
        refused = [e for e in found if isinstance(e.payload, RequestRefused)]
        requests = [e for e in found if isinstance(e.payload, REQUESTS)]
        if not refused or not requests:
            raise NotFoundError(f"no refused request {request_id}")
        original = requests[0].payload
        assert isinstance(original, REQUESTS)
        new_id = retry_id(request_id)
        # The same content every time (the original's business time): a second retry of
        # the same refusal is a duplicate the store drops, not a second request.
        again = msgspec.structs.replace(original, request_id=new_id)
        await self.store.append(stream_for(again), [NewEvent(
            payload=again, event_id=uuid.uuid5(_KEYS, f"retry-event:{request_id}"),
            metadata=Metadata(correlation_id=str(request_id),
                              causation_id=str(refused[0].event_id)))])
        return new_id

    async def _call(self, request: Request) -> str | None:
        key = idempotency_key(request.request_id)
        if self.client is None:
            raise NotConfigured(0, b"no processor configured", "POST", "-")
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


def _entry(request_id: uuid.UUID, position: int, request: Request,
           outcome: RequestAccepted | RequestRefused | None, retried: bool,
           retried_from: str | None) -> OutboxEntry:
    common: dict[str, Any] = {
        "request_id": request_id, "request_type": type(request).__name__,
        "position": position,
        "retry_of": uuid.UUID(retried_from) if retried_from and retry_id(
            uuid.UUID(retried_from)) == request_id else None}
    if outcome is None:
        return OutboxEntry(state="pending", **common)
    if isinstance(outcome, RequestAccepted):
        return OutboxEntry(state="accepted", **common)
    return OutboxEntry(state="retried" if retried else "refused", status=outcome.status,
                       reason=outcome.reason, **common)
