"""Planning a group commit: pure, backend-neutral, no I/O.

The writer hands ``plan_group`` the writes waiting in its queue (each one caller's appends to
one or several streams, all or nothing, and maybe a consumer's position), what the log holds
(its head, the versions of the streams concerned, the stored events that share ids with the
group, the consumers' recorded positions), and the time. It decides each caller's outcome on
its own, so one caller's version conflict or duplicate never fails the others, and it builds
the rows of those that go ahead: positions and versions gap-free, each row's hash chained to
the one before. A write is checked whole before any of its rows is built, so none of it is
written unless all of it is.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec

from ledger.errors import (
    EventIdConflictError,
    PartialDuplicateError,
    StoreError,
    TrackingConflictError,
    WrongExpectedVersionError,
)
from ledger.store.records import AppendResult, ExpectedVersion, StreamState, Tracking
from ledger.store.registry import RECORD_ENCODER

GENESIS_HASH = bytes(32)
"""The 'previous hash' of position 1."""


class PreparedEvent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event, validated and encoded by its caller before it reaches the writer. Ids,
    names and bytes only: nothing for the cyclic collector to walk (with it tracked, its
    passes over a large append were a third of ``prepare``)."""

    event_id: uuid.UUID
    id_bytes: bytes
    wire_name: str
    schema_version: int
    payload: bytes
    metadata: bytes
    account_id: str | None
    """``account_of`` the payload: the row's account column."""


class PreparedAppend(msgspec.Struct, frozen=True, gc=False):
    stream: str
    expected: ExpectedVersion
    events: tuple[PreparedEvent, ...]
    ids: frozenset[bytes]
    """The events' ids as bytes (their hash is computed in C, and cached)."""


class PreparedWrite(msgspec.Struct, frozen=True, gc=False):
    """One caller's write: its appends (one per stream), all or nothing, and the consumer
    position it records in the same transaction."""

    appends: tuple[PreparedAppend, ...]
    tracking: Tracking | None = None

    @property
    def events(self) -> Iterator[PreparedEvent]:
        for append in self.appends:
            yield from append.events


Outcome = tuple[AppendResult, ...] | StoreError
"""A write's outcome: one result per append, or the error that wrote none of them."""


class KnownEvent(msgspec.Struct, frozen=True, array_like=True):
    """An event already in the log (or planned earlier in the same group), for dedupe."""

    position: int
    stream: str
    version: int
    payload: bytes
    metadata: bytes

    def same_content(self, stream: str, event: PreparedEvent) -> bool:
        return (
            self.stream == stream
            and self.payload == event.payload
            and self.metadata == event.metadata
        )


class ChainHead(msgspec.Struct, frozen=True):
    """The last row of the log: where the next group continues from."""

    position: int = 0
    hash: bytes = GENESIS_HASH
    recorded_at_us: int = 0


class Row(NamedTuple):
    """One stored row of the log, its columns in table order. A tuple (the drivers write and
    read tuples as they are), with names for everyone who reads one."""

    position: int
    stream: str
    version: int
    event_id: bytes
    type: str
    """The event's wire name."""
    recorded_at_us: int
    record: bytes
    """The canonical record the hash chain covers."""
    hash: bytes
    account_id: str | None = None
    """The payload's account (``account_of``), for reading by account: derived from the
    record, so outside the chain (a partitioned rebuild checks the two agree)."""


class GroupPlan(msgspec.Struct):
    rows: list[Row]
    outcomes: list[Outcome]
    head: ChainHead
    tracking: dict[str, int]
    """Consumers' new positions, to record with the rows."""

    @property
    def has_version_conflict(self) -> bool:
        """A version conflict may be a retry of an append that is stored already: worth a
        look-up of the group's ids before the conflict is reported."""
        return any(isinstance(o, WrongExpectedVersionError) for o in self.outcomes)


def expected_matches(expected: ExpectedVersion, actual: int | None) -> bool:
    if expected is StreamState.ANY:
        return True
    if expected is StreamState.NO_STREAM:
        return actual is None
    if expected is StreamState.EXISTS:
        return actual is not None
    return actual == expected


def chain_hash(previous: bytes, record: bytes) -> bytes:
    return hashlib.sha256(previous + record).digest()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact, no float)."""
    return (moment - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + us * _MICROSECOND


def plan_group(
    writes: Sequence[PreparedWrite],
    head: ChainHead,
    stream_versions: dict[str, int | None],
    known: dict[bytes, KnownEvent],
    now: datetime,
    tracked: dict[str, int] | None = None,
) -> GroupPlan:
    """Decide every write of the group, in queue order. ``tracked`` holds the recorded
    positions of the consumers whose writes carry one. The inputs are not modified."""
    # recorded_at never decreases along the log, even if the wall clock steps back, so that
    # "what was known at K" is a prefix of the log.
    recorded_us = max(micros(now), head.recorded_at_us)
    recorded_at = from_micros(recorded_us)
    position, previous = head.position, head.hash
    stream_versions, known, tracked = dict(stream_versions), dict(known), dict(tracked or {})
    # Ids planned earlier in the group are tracked only when two writes share one.
    track = len(writes) > 1 and _ids_repeat(writes)
    rows: list[Row] = []
    outcomes: list[Outcome] = []
    tracking: dict[str, int] = {}
    encode, Raw, sha256, add_row = RECORD_ENCODER.encode, msgspec.Raw, hashlib.sha256, rows.append
    for write in writes:
        refused = _refusal(write, known, stream_versions, tracked)
        if refused is not None:
            outcomes.append(refused)
            continue
        # Every check passed: now nothing can fail, so no part is ever written alone.
        results = []
        for append in write.appends:
            stream = append.stream
            actual = stream_versions.get(stream)
            version = -1 if actual is None else actual
            first_position, first_version = position + 1, version + 1
            for event in append.events:  # the hot loop of every append: plain locals only
                position += 1
                version += 1
                # The canonical record: a msgpack array in ``StoredEvent`` field order (the id
                # is the same msgpack bin 16 as the UUID itself).
                record = encode((position, stream, version, event.id_bytes,
                                 event.schema_version, Raw(event.payload), Raw(event.metadata),
                                 recorded_at))
                previous = sha256(previous + record).digest()
                add_row(Row(position, stream, version, event.id_bytes, event.wire_name,
                            recorded_us, record, previous, event.account_id))
                if track:
                    known[event.id_bytes] = KnownEvent(position, stream, version,
                                                       event.payload, event.metadata)
            stream_versions[stream] = version
            results.append(AppendResult(stream, tuple(range(first_position, position + 1)),
                                        tuple(range(first_version, version + 1))))
        if write.tracking is not None:
            tracked[write.tracking.consumer] = tracking[write.tracking.consumer] = (
                write.tracking.position)
        outcomes.append(tuple(results))
    return GroupPlan(rows, outcomes, ChainHead(position, previous, recorded_us), tracking)


def _refusal(write: PreparedWrite, known: dict[bytes, KnownEvent],
             stream_versions: dict[str, int | None], tracked: dict[str, int]) -> Outcome | None:
    """The outcome of a write that is not written: a retry of one stored already, or an
    error; None when it goes ahead."""
    if known:
        seen = [[known.get(e.id_bytes) for e in a.events] for a in write.appends]
        if any(k is not None for part in seen for k in part):
            return _replays(write, seen)
    if write.tracking is not None:
        recorded = tracked.get(write.tracking.consumer)
        if recorded is not None and write.tracking.position <= recorded:
            return TrackingConflictError(write.tracking.consumer, write.tracking.position,
                                         recorded)
    for append in write.appends:
        actual = stream_versions.get(append.stream)
        if not expected_matches(append.expected, actual):
            return WrongExpectedVersionError(append.stream, append.expected, actual)
    return None


def _replays(write: PreparedWrite, seen: list[list[KnownEvent | None]]) -> Outcome:
    """A write some of whose ids are stored: a retry of it if all are, identically."""
    results = []
    for append, found in zip(write.appends, seen, strict=True):
        if all(k is None for k in found):  # another part is stored, this one is not
            other = next(a for a, f in zip(write.appends, seen, strict=True)
                         if any(k is not None for k in f))
            return PartialDuplicateError(other.stream, tuple(e.event_id for e in other.events))
        replayed = _replay(append, found)
        if isinstance(replayed, StoreError):
            return replayed
        results.append(replayed)
    return tuple(results)


def _ids_repeat(writes: Sequence[PreparedWrite]) -> bool:
    ids = [a.ids for w in writes for a in w.appends]
    return len(frozenset().union(*ids)) < sum(len(i) for i in ids)


def _replay(append: PreparedAppend, seen: list[KnownEvent | None]) -> AppendResult | StoreError:
    """The outcome of a batch some of whose ids are stored already."""
    stored = tuple(e.event_id for e, k in zip(append.events, seen, strict=True) if k is not None)
    if len(stored) < len(append.events):
        return PartialDuplicateError(append.stream, stored)
    for event, k in zip(append.events, seen, strict=True):
        assert k is not None
        if not k.same_content(append.stream, event):
            return EventIdConflictError(event.event_id, k.position)
    found = [k for k in seen if k is not None]
    return AppendResult(append.stream, tuple(k.position for k in found),
                        tuple(k.version for k in found), duplicate=True)



class _RawRecord(msgspec.Struct, array_like=True):
    position: int
    stream: str
    version: int
    event_id: msgspec.Raw
    schema_version: int
    payload: msgspec.Raw
    metadata: msgspec.Raw
    recorded_at: msgspec.Raw


_RAW_DECODER = msgspec.msgpack.Decoder(_RawRecord)


def known_from_record(record: bytes) -> KnownEvent:
    """What dedupe needs of a stored row: where it is and its exact payload and metadata bytes."""
    raw = _RAW_DECODER.decode(record)
    return KnownEvent(raw.position, raw.stream, raw.version, bytes(raw.payload),
                      bytes(raw.metadata))
