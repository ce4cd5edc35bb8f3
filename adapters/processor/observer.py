"""Recording what the processor reports: the one path for webhooks, archives and pull sync.

A report (an entity snapshot) is decided against the entity's state and the context its rules
need (a hold's card; a transaction's hold and card), all loaded from the log, and the events
are appended to the entity's stream at the version that was loaded: a concurrent report for
the same entity makes the append fail, and the report is decided again on fresh state.

A webhook delivery is recorded with an ``ObservationReceived`` marker in the same batch, under
an id derived from its ``eventId``: a redelivery decides nothing new (its report was seen), so
its batch is the marker alone, which the store recognises as a duplicate and does not write.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import msgspec
import structlog

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.domain.programme import (
    context_ids,
    decide_observation,
    evolve_all,
    snapshot_stream,
)
from ledger.errors import (
    ConflictError,
    EventIdConflictError,
    InvalidInputError,
    LedgerError,
    PartialDuplicateError,
    WrongExpectedVersionError,
)
from ledger.events import DomainEvent, ObservationReceived
from ledger.observations import BY_WEBHOOK_TYPE, ID, AnySnapshot, check_snapshot, kind_of
from ledger.repository import UNSEEN, Decided, Loaded, decide_and_append, load
from ledger.store import (
    AppendResult,
    Event,
    EventStore,
    Metadata,
    NewEvent,
)
from ledger.store.base import utc_now

log = structlog.get_logger(__name__)

_MARKERS = uuid.UUID("2f1b7c9a-6d4e-5a3b-8c2d-1e0f9a8b7c6d")
_STRIPES = 64
_RECENT_LIMIT = 10_000
MAX_BODY = 64 * 1024
"""The largest webhook body taken (a snapshot is a few kB at most)."""
_SNAPSHOT_ENCODER = msgspec.msgpack.Encoder()


class InvalidDelivery(InvalidInputError):
    """A webhook payload that cannot be recorded: malformed JSON, an unknown ``webhookType``,
    a missing or ill-typed field, a value out of range (``field`` names it, when known)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Envelope(msgspec.Struct, rename="camel"):
    webhook_type: str
    event_id: str


class DeliveryConflictError(ConflictError):
    """A delivery whose ``eventId`` was recorded before with other content (another entity, or
    other fields): one of the two is not what the processor sent. Nothing was written."""


class Delivery(msgspec.Struct, frozen=True):
    event_id: str
    webhook_type: str
    snapshot: AnySnapshot

    def marker(self) -> NewEvent[ObservationReceived]:
        """The record that this delivery was received: a function of the delivery alone, so
        the receiver, an archive and a retry all record the same one, and it dedupes."""
        content = hashlib.sha256(_SNAPSHOT_ENCODER.encode(self.snapshot)).hexdigest()
        return NewEvent(payload=ObservationReceived(
            event_id=self.event_id, webhook_type=self.webhook_type, entity_id=self.snapshot.id,
            content=content, at=self.snapshot.updated_at), event_id=marker_id(self.event_id),
            metadata=Metadata(occurred_at=self.snapshot.updated_at,
                              source=f"offblocks:event:{self.event_id}"))


def parse_delivery(body: bytes, now: datetime | None = None) -> Delivery:
    """A webhook body as a delivery, or ``InvalidDelivery`` naming what is wrong: checked
    against the snapshot rules (``check_snapshot``) as of ``now`` (default: the clock)."""
    if len(body) > MAX_BODY:
        raise InvalidDelivery(f"the body is {len(body):,} bytes; at most {MAX_BODY:,}")
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.ValidationError as exc:
        raise InvalidDelivery(f"not a webhook payload: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidDelivery(f"malformed JSON: {exc}") from None
    kind = BY_WEBHOOK_TYPE.get(envelope.webhook_type)
    if kind is None:
        raise InvalidDelivery(f"unknown webhookType {envelope.webhook_type!r}; expected one of "
                              f"{', '.join(BY_WEBHOOK_TYPE)}")
    if not ID.fullmatch(envelope.event_id):
        raise InvalidDelivery(f"eventId: {envelope.event_id[:40]!r} is not an id", "eventId")
    try:
        snapshot = msgspec.json.decode(body, type=kind)
        check_snapshot(snapshot, now or utc_now())
    except (msgspec.ValidationError, LedgerError) as exc:
        raise InvalidDelivery(f"{envelope.webhook_type}: {exc}",
                              getattr(exc, "field", None)) from None
    return Delivery(envelope.event_id, envelope.webhook_type, snapshot)


def marker_id(event_id: str) -> uuid.UUID:
    return uuid.uuid5(_MARKERS, event_id)


def facts_taught(result: AppendResult | None, delivery: Delivery | None) -> int:
    """How many new facts a recorded report wrote (a delivery's own marker is not one)."""
    if result is None or result.duplicate:
        return 0
    return len(result.positions) - (delivery is not None)


class Observer:
    """Records processor snapshots in a store; see the module's docstring."""

    def __init__(self, store: EventStore, policy: HoldPolicy = DEFAULT_POLICY, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store, self.policy = store, policy
        self.clock = clock
        """The ledger's now, which reports' dates are checked against (``check_snapshot``)."""
        # Reports of one entity are decided one at a time in this process (striped locks:
        # bounded memory); other processes are kept honest by the expected version.
        self._stripes = [anyio.Lock() for _ in range(_STRIPES)]
        # Entities' states as this process last appended them. Only a shortcut: a state that
        # another process has moved on makes the append fail its version check, and the
        # report is decided again on state read from the log.
        self._recent: dict[str, Loaded] = {}

    async def record(self, snapshot: AnySnapshot, *, delivery: Delivery | None = None,
                     correlation_id: str | None = None) -> AppendResult | None:
        """Record what ``snapshot`` teaches; None when it teaches nothing and there is no
        delivery to mark as received. A snapshot outside the rules of ``check_snapshot``
        raises ``InvalidSnapshotError`` and records nothing."""
        check_snapshot(snapshot, self.clock())
        stream = snapshot_stream(snapshot)
        source = f"offblocks:event:{delivery.event_id}" if delivery else "offblocks:fetch"
        metadata = Metadata(occurred_at=snapshot.updated_at, correlation_id=correlation_id,
                            source=source)
        async with self._stripes[hash(stream) % _STRIPES]:
            return await self._record(snapshot, stream, delivery, metadata, correlation_id)

    async def _record(self, snapshot: AnySnapshot, stream: str, delivery: Delivery | None,
                      metadata: Metadata, correlation_id: str | None) -> AppendResult | None:
        async def decide(state: Any) -> list[NewEvent[Event]]:
            events = await self._decide(snapshot, state)
            batch: list[NewEvent[Event]] = [NewEvent(payload=e, metadata=metadata)
                                            for e in events]
            return [delivery.marker(), *batch] if delivery is not None else batch

        # The first guess is what this process last appended, or else an entity taken to be
        # new; the loop's version check verifies it, and reads the log after a conflict.
        try:
            decided = await decide_and_append(self.store, stream, decide,
                                              guess=self._recent.get(stream, UNSEEN))
        except PartialDuplicateError as exc:
            if delivery is None or marker_id(delivery.event_id) not in exc.stored:
                raise
            # Received before, and recorded with what it taught then: the marker alone
            # says whether it is this delivery again or another one.
            return await self._received_again(stream, delivery)
        except EventIdConflictError:
            raise self._conflict(delivery) from None
        except WrongExpectedVersionError:
            self._recent.pop(stream, None)
            raise
        if decided.result is None:
            return None
        self._remember(stream, kind_of(snapshot), decided)
        log.debug("observation recorded", stream=stream, events=len(decided.batch),
                  duplicate=decided.result.duplicate, correlation_id=correlation_id)
        return decided.result

    async def _received_again(self, stream: str, delivery: Delivery) -> AppendResult:
        try:
            return await self.store.append(stream, [delivery.marker()])
        except EventIdConflictError:
            raise self._conflict(delivery) from None

    @staticmethod
    def _conflict(delivery: Delivery | None) -> DeliveryConflictError:
        assert delivery is not None, "only a delivery's marker has a derived id"
        return DeliveryConflictError(
            f"eventId {delivery.event_id!r} was recorded before with other content (another "
            f"entity or other fields); this {delivery.webhook_type} delivery for "
            f"{delivery.snapshot.id!r} is refused")

    def _remember(self, stream: str, kind: str, decided: Decided) -> None:
        assert decided.result is not None
        if decided.result.duplicate:
            return  # nothing new was written: what we hold is still the state
        state = evolve_all(kind, decided.loaded.state, (n.payload for n in decided.batch))
        self._keep(stream, Loaded(state, decided.result.versions[-1]))

    def _keep(self, stream: str, loaded: Loaded) -> None:
        if len(self._recent) >= _RECENT_LIMIT:
            self._recent.pop(next(iter(self._recent)))  # the oldest entry
        self._recent[stream] = loaded

    async def _decide(self, snapshot: AnySnapshot, state: Any) -> list[DomainEvent]:
        card_id, authorisation_id = context_ids(snapshot)
        the_card = await self._context(f"card-{card_id}") if card_id else None
        the_hold = await self._context(f"authorisation-{authorisation_id}") if (
            authorisation_id) else None
        return decide_observation(snapshot, state, the_card, the_hold, self.policy)

    async def _context(self, stream: str) -> Any:
        """Another entity's state, for the flags a decision records. The stored anomalies are
        recomputed by the projections from everything known, so a state this process read
        or wrote before is enough."""
        recent = self._recent.get(stream)
        if recent is None:
            recent = await load(self.store, stream)
            self._keep(stream, recent)
        return recent.state
