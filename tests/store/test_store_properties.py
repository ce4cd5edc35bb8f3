"""Properties of the store that must hold for every history hypothesis can find."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import event as note_statistic
from hypothesis import strategies as st

from ledger import EventStore, NewEvent, StreamState, open_store
from ledger.errors import WrongExpectedVersionError
from ledger.store import Event, ExpectedVersion
from ledger.store.records import NO_METADATA
from tests.support.sample_events import REGISTRY, note

STREAMS = ("note-a", "note-b", "note-c")


class Op(msgspec.Struct, frozen=True):
    stream: int
    size: int
    expected: str  # any | no_stream | exists | exact | stale
    repeat: bool  # re-append this task's previous batch (a retry after a lost ack)
    yields: int


ops = st.builds(
    Op,
    stream=st.integers(0, len(STREAMS) - 1),
    size=st.integers(1, 3),
    expected=st.sampled_from(["any", "no_stream", "exists", "exact", "stale"]),
    repeat=st.booleans(),
    yields=st.integers(0, 3),
)


class Ack(msgspec.Struct):
    submitted: int
    acked: int
    stream: str
    ids: list[Any]
    positions: tuple[int, ...]
    versions: tuple[int, ...]
    duplicate: bool


async def _expected(store: EventStore, op: Op, stream: str) -> ExpectedVersion:
    if op.expected in ("exact", "stale"):
        current = await store.stream_version(stream)
        if current is None:
            return StreamState.NO_STREAM
        return current if op.expected == "exact" else max(current - 1, 0)
    return {"any": StreamState.ANY, "no_stream": StreamState.NO_STREAM,
            "exists": StreamState.EXISTS}[op.expected]


async def _run_script(store: EventStore, task: int, script: list[Op], clock: itertools.count[int],
                      acks: list[Ack]) -> None:
    previous: list[NewEvent[Event]] | None = None
    previous_stream = ""
    for n, op in enumerate(script):
        for _ in range(op.yields):
            await anyio.lowlevel.checkpoint()
        if op.repeat and previous is not None:
            batch, stream = previous, previous_stream
            expected = await _expected(store, op, STREAMS[op.stream])
        else:
            stream = STREAMS[op.stream]
            batch = [NewEvent(payload=note(f"{task}.{n}.{i}")) for i in range(op.size)]
            expected = await _expected(store, op, stream)
        for _attempt in range(20):  # a conflict is retried with the version it reported
            submitted = next(clock)
            try:
                result = await store.append(stream, batch, expected=expected)
            except WrongExpectedVersionError as exc:
                note_statistic("a version conflict was retried")
                expected = StreamState.NO_STREAM if exc.actual is None else exc.actual
                continue
            acks.append(Ack(submitted, next(clock), stream, [e.event_id for e in batch],
                            result.positions, result.versions, result.duplicate))
            previous, previous_stream = batch, stream
            break


async def _check_history(scripts: list[list[Op]], path: Path) -> None:
    clock = itertools.count()
    acks: list[Ack] = []
    async with open_store(path, registry=REGISTRY) as store:
        async with anyio.create_task_group() as group:
            for task, script in enumerate(scripts):
                group.start_soon(_run_script, store, task, script, clock, acks)
        log = [e async for e in store.read_all()]
        assert (await store.verify()).ok

    # Positions gap-free from 1; versions gap-free from 0 in every stream; each id once.
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    versions: dict[str, list[int]] = defaultdict(list)
    for event in log:
        versions[event.stream].append(event.version)
    assert all(v == list(range(len(v))) for v in versions.values())
    assert len({e.event_id for e in log}) == len(log)

    # Every acknowledged append is in the log where its result said; retries added nothing.
    by_position = {e.position: e for e in log}
    for ack in acks:
        stored = [by_position[p] for p in ack.positions]
        assert [e.event_id for e in stored] == ack.ids
        assert [e.version for e in stored] == list(ack.versions)
        assert {e.stream for e in stored} == {ack.stream}
    assert sum(len(a.ids) for a in acks if not a.duplicate) == len(log)
    if any(a.duplicate for a in acks):
        note_statistic("a retried batch returned its original positions")

    # Log order is commit order: an append acknowledged before another was submitted
    # sits entirely before it.
    fresh = sorted((a for a in acks if not a.duplicate), key=lambda a: a.acked)
    for earlier, later in itertools.combinations(fresh, 2):
        if earlier.acked < later.submitted:
            assert max(earlier.positions) < min(later.positions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts=st.lists(st.lists(ops, min_size=1, max_size=6), min_size=1, max_size=8))
def test_any_interleaving_of_concurrent_appends_keeps_the_log_consistent(
    scripts: list[list[Op]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(_check_history, scripts, Path(directory) / "ledger.db")


# --- tampering -------------------------------------------------------------------------------

COLUMNS = ("stream", "version", "event_id", "type", "recorded_at", "record", "hash")


class Tamper(msgspec.Struct, frozen=True):
    kind: str  # alter | sql | delete | swap
    row: int  # 0-based index into the log
    other: int
    column: str
    byte: int


tampers = st.builds(Tamper, kind=st.sampled_from(["alter", "sql", "delete", "swap"]),
                    row=st.integers(0, 10_000), other=st.integers(0, 10_000),
                    column=st.sampled_from(COLUMNS), byte=st.integers(0, 10_000))


async def _write_log(path: Path, batches: list[int]) -> None:
    async with open_store(path, registry=REGISTRY) as store:
        for n, size in enumerate(batches):
            await store.append(f"note-{n % 3}", [NewEvent(payload=note(f"{n}.{i}"))
                                                 for i in range(size)])


async def _verify(path: Path) -> Any:
    async with open_store(path, registry=REGISTRY) as store:
        return await store.verify()


def _altered(column: str, value: Any, byte: int) -> Any:
    if column in ("record", "hash", "event_id"):
        data = bytearray(value)
        data[byte % len(data)] ^= 0x01 << (byte % 8)
        return bytes(data)
    if column in ("version", "recorded_at"):
        return value + 1 + byte
    return value + ("x" if column == "stream" else "@9")


def _tamper(path: Path, tamper: Tamper, count: int) -> int | None:
    """Apply ``tamper`` directly in SQL; return the position verify() must report."""
    row, other = tamper.row % count + 1, tamper.other % count + 1
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    if tamper.kind == "alter":
        column = tamper.column
        (value,) = db.execute(f"SELECT {column} FROM events WHERE position = ?", (row,)).fetchone()
        if column == "version":  # stay clear of the unique index
            value += 10_000
        db.execute(f"UPDATE events SET {column} = ? WHERE position = ?",
                   (_altered(column, value, tamper.byte), row))
        bad: int | None = row
    elif tamper.kind == "sql":  # in SQL, || makes TEXT of anything, even a BLOB
        db.execute(f"UPDATE events SET {tamper.column} = {tamper.column} || x'00' "
                   "WHERE position = ?", (row,))
        bad = row
    elif tamper.kind == "delete":
        db.execute("DELETE FROM events WHERE position = ?", (row,))
        bad = row if row < count else None  # the last row: only an anchor can tell
    else:
        if row == other:
            other = row % count + 1
        low, high = sorted((row, other))
        assert low != high
        rows = {p: db.execute(f"SELECT {', '.join(COLUMNS)}, account_id FROM events "
                              "WHERE position = ?", (p,)).fetchone() for p in (low, high)}
        db.execute("DELETE FROM events WHERE position IN (?, ?)", (low, high))
        for position, source in ((low, high), (high, low)):
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (position, *rows[source]))
        bad = low
    db.close()
    return bad


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.integers(1, 4), min_size=1, max_size=8), tamper=tampers)
# Found by hypothesis: a flipped bit lengthened a string header, so the string was not UTF-8,
# and verify() raised UnicodeDecodeError instead of reporting the row.
@example(batches=[1], tamper=Tamper(kind="alter", row=0, other=0, column="record", byte=1586))
def test_verify_reports_exactly_the_first_tampered_position(
    batches: list[int], tamper: Tamper
) -> None:
    assume(tamper.kind != "swap" or sum(batches) >= 2)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.db"
        anyio.run(_write_log, path, batches)
        intact = anyio.run(_verify, path)
        assert intact.ok and intact.checked == sum(batches)
        expected_bad = _tamper(path, tamper, sum(batches))
        report = anyio.run(_verify, path)
        if expected_bad is None:  # nothing a chain can see: the tail was cut, or no change
            assert report.ok
            if tamper.kind == "delete":
                assert report.checked == sum(batches) - 1
                assert report.last_hash != intact.last_hash
        else:
            assert not report.ok
            assert report.first_bad_position == expected_bad, report
            assert report.checked == expected_bad - 1


def _record_with_id(event_id: bytes) -> bytes:
    from ledger.store.registry import RECORD_ENCODER

    payload = msgspec.Raw(RECORD_ENCODER.encode(note("x")))
    metadata = msgspec.Raw(REGISTRY.encode_metadata(NO_METADATA))
    return RECORD_ENCODER.encode((1, "note-a", 0, event_id, 1, payload, metadata,
                                  "2026-01-01T00:00:00Z"))


@given(length=st.integers(0, 40).filter(lambda n: n != 16))
def test_a_record_whose_id_is_not_16_bytes_does_not_decode(length: int) -> None:
    """Reads keep an event's id as bytes (see ``StoredEvent.id_bytes``); a record with an id
    of another length, even one whose row and hash agree with it, is still refused, as the
    UUID field refused it."""
    from ledger.store.chain import check_row
    from ledger.store.planner import GENESIS_HASH, Row, chain_hash

    assert REGISTRY.decode_stored(_record_with_id(bytes(16))).event_id.int == 0
    event_id = bytes(range(length))
    record = _record_with_id(event_id)
    with pytest.raises(msgspec.ValidationError):
        REGISTRY.decode_stored(record)
    row = Row(1, "note-a", 0, event_id, "Noted", 0, record, chain_hash(GENESIS_HASH, record))
    assert (check_row(REGISTRY, row, 1, GENESIS_HASH) or "").startswith("record does not decode")
