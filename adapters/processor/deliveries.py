"""A webhook delivery as the processor sends it: its envelope (``webhookType``, ``eventId``)
and the entity snapshot it carries, parsed and checked once, and the marker that records its
receipt.

The marker's id is derived from the ``eventId`` and its content from the snapshot alone, so
the receiver, an archive and a retry all record the same one and it dedupes: a redelivery
decides nothing new, its batch is the marker alone, and the store finds it a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import msgspec

from ledger.clock import utc_now
from ledger.errors import ConflictError, InvalidInputError, LedgerError
from ledger.events import ObservationReceived
from ledger.observations import BY_WEBHOOK_TYPE, ID, AnySnapshot, check_rules, field_of
from ledger.store import AppendResult, Metadata, NewEvent

_MARKERS = uuid.UUID("2f1b7c9a-6d4e-5a3b-8c2d-1e0f9a8b7c6d")
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
    """A delivery as ``parse_delivery`` makes it: its snapshot already checked."""

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
    """A webhook body as a delivery, or ``InvalidDelivery`` naming what is wrong: decoded by
    the snapshot's types and checked by the rules they cannot state (``check_rules``) as of
    ``now`` (default: the clock)."""
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
        snapshot = msgspec.json.decode(body, type=kind)  # checks what the types say
        check_rules(snapshot, now or utc_now())  # and what they cannot
    except msgspec.ValidationError as exc:
        raise InvalidDelivery(f"{envelope.webhook_type}: {exc}", field_of(exc)) from None
    except LedgerError as exc:
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
