"""What goes into the store and what comes out of it.

``Event`` is the base of every payload type: a frozen msgspec ``Struct`` whose tag (the class
name unless given) is its *wire name*. A wire name is ``Name`` for schema version 1 and
``Name@N`` for version N, so every stored payload says exactly which schema wrote it and the
whole envelope decodes in one pass (see ``registry.py``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Generic, NamedTuple, TypeVar

import msgspec

from ledger.ids import uuid7


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Base class of event payloads: ``class CardIssued(Event, frozen=True): ...``.

    Past-tense names. Repeat ``frozen=True`` in subclasses: msgspec inherits it, but type
    checkers only see what is written. Events are immutable trees of values, never cycles,
    so they are not tracked by the cyclic garbage collector (``gc=False``): reading a large
    log allocates millions of them, and tracking cost a quarter of the read time.
    """


E = TypeVar("E", bound=Event, covariant=True)  # frozen containers of payloads


def wire_name(event_type: type[Event]) -> str:
    tag = event_type.__struct_config__.tag
    assert isinstance(tag, str), f"{event_type.__name__} has no string tag"
    return tag


def split_wire_name(tag: str) -> tuple[str, int]:
    """``"CardIssued@2"`` -> ``("CardIssued", 2)``; ``"CardIssued"`` -> ``("CardIssued", 1)``."""
    name, sep, version = tag.partition("@")
    if not sep:
        return name, 1
    if not version.isdigit() or int(version) < 2:
        raise ValueError(f"bad wire name {tag!r}: expected Name or Name@N with N >= 2")
    return name, int(version)


class Metadata(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """Facts about an event that are not part of the domain payload."""

    occurred_at: datetime | None = None
    """Business time: when it happened (processor time for observations)."""
    correlation_id: str | None = None
    """Ties together everything caused by one request or one sync run."""
    causation_id: str | None = None
    """The id of the event or command that caused this one."""
    source: str | None = None
    """Where the fact came from, e.g. ``offblocks:event:<eventId>``."""


NO_METADATA = Metadata()


def account_of(payload: object) -> str | None:
    """The account an event concerns: its ``account_id`` field, when it has a text one (a
    customer-level event concerns none). The log keeps it in a column of its own, indexed,
    so that a reader of some accounts (a partitioned rebuild's worker) reads only theirs."""
    account = getattr(payload, "account_id", None)
    return account if isinstance(account, str) else None


def account_of_record(record: bytes) -> str | None:
    """``account_of`` read from a stored record, with no event type known: the payload's
    ``account_id`` key (the field's name: payloads are encoded with their fields' names)."""
    fields = msgspec.msgpack.decode(record)
    account = fields[5].get("account_id") if isinstance(fields[5], dict) else None
    return account if isinstance(account, str) else None


class NewEvent(msgspec.Struct, Generic[E], frozen=True, kw_only=True, gc=False):
    """An event to append. ``event_id`` makes appends idempotent: reuse it on retries.
    Untracked by the cyclic collector, like ``Event``: it holds a payload, an id and
    metadata, never a cycle, and a caller may hold a large batch of them."""

    payload: E
    event_id: uuid.UUID = msgspec.field(default_factory=uuid7)
    metadata: Metadata = NO_METADATA


class StoredEvent(msgspec.Struct, Generic[E], frozen=True, array_like=True, gc=False):
    """An event as the log holds it. Its msgpack encoding is the row's canonical record."""

    position: int
    """Global, gap-free, in commit order, from 1."""
    stream: str
    version: int
    """Gap-free within the stream, from 0."""
    id_bytes: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    """The event id's 16 bytes (``event_id`` is the UUID). A read decodes bytes, not a UUID:
    UUID objects are tracked by the cyclic collector, and a rebuild decoding a million of
    them spent a sixth of its time in full collections that freed nothing."""
    schema_version: int
    """The schema the payload was written with (the payload itself may have been upcast)."""
    payload: E
    metadata: Metadata
    recorded_at: datetime
    """When the store committed it (UTC, never decreasing along the log)."""

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.id_bytes)

    @property
    def type(self) -> str:
        """The event's type name, the same for every schema version."""
        return split_wire_name(wire_name(type(self.payload)))[0]

    @property
    def category(self) -> str:
        return self.stream.partition("-")[0]


class StreamState(enum.Enum):
    """Expected-version conditions that are not an exact version."""

    ANY = "any"
    NO_STREAM = "no stream"
    EXISTS = "stream exists"

    def __str__(self) -> str:
        return self.value


ExpectedVersion = StreamState | int
"""``StreamState.ANY``, ``NO_STREAM`` or ``EXISTS``, or the exact version of the stream's last
event."""


class StreamAppend(NamedTuple):
    """One stream's part of an atomic append across streams (``EventStore.append_many``)."""

    stream: str
    events: Sequence[NewEvent[Event]]
    expected: ExpectedVersion = StreamState.ANY


class Tracking(msgspec.Struct, frozen=True):
    """A consumer's position in the log, committed in the same transaction as what it wrote
    after handling the events up to it (pyeventsourcing's tracking record)."""

    consumer: str
    position: int


class AppendResult(msgspec.Struct, frozen=True):
    """What an append did: one position and one version per event of the batch, in order."""

    stream: str
    positions: tuple[int, ...]
    versions: tuple[int, ...]
    duplicate: bool = False
    """True when the whole batch was already stored: nothing was written this time."""

    @property
    def last_position(self) -> int:
        return self.positions[-1]


class VerifyReport(msgspec.Struct, frozen=True):
    """The outcome of walking the hash chain."""

    ok: bool
    checked: int
    """How many rows were checked (all of them when ``ok``)."""
    first_bad_position: int | None = None
    reason: str | None = None
    last_hash: str | None = None
    """Hex hash of the last row that matched."""
    root: str | None = None
    """When ``ok``: the hex root of the Merkle tree over the ``checked`` events, which a
    signed checkpoint anchors outside the database (``ledger.transparency``)."""
