"""The event store's figures: batched appends, concurrent durable appends, reading the log.

Each is measured beside raw ``sqlite3`` doing the same work on the same rows, with the same
pragmas (``writer_pragmas``: WAL, synchronous=FULL): the baseline copies the rows the store
wrote.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec

from benchmarks.harness import Figure, benchmark, timed
from ledger import Event, EventRegistry, NewEvent, StoredEvent, open_store
from ledger.store import tree
from ledger.store.planner import Row
from ledger.store.sqlite import MIGRATIONS, statements, writer_pragmas
from ledger.transparency.merkle import Frontier


class HoldPlaced(Event, frozen=True):
    """Shaped like a card authorisation hold: ids, amounts, currencies, a merchant."""

    authorisation_id: str
    card_id: str
    account_id: str
    amount: Decimal
    currency: str
    merchant_amount: Decimal
    merchant_currency: str
    exchange_rate: Decimal
    merchant_name: str
    mcc: int


REGISTRY = EventRegistry([HoldPlaced])
_ROUNDS = 3
_ROW_COLUMNS = ("position, stream, version, event_id, type, recorded_at, record, hash, "
                "account_id")


def hold(n: int) -> NewEvent[HoldPlaced]:
    return NewEvent(payload=HoldPlaced(
        authorisation_id=f"7f3c9a2e-0000-4000-8000-{n:012d}", card_id="c8d1e0f2-5a6b-4c7d",
        account_id="a1b2c3d4-e5f6-4a7b", amount=Decimal("12.34"), currency="EUR",
        merchant_amount=Decimal("13.50"), merchant_currency="USD",
        exchange_rate=Decimal("0.914074"), merchant_name="Corner Cafe", mcc=5814))


def _raw_database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in writer_pragmas():
        db.execute(pragma)
    for step in MIGRATIONS:  # the same tables and indexes as the store's
        if callable(step):
            step(db)
        else:
            for statement in statements(step):
                db.execute(statement)
    return db


def _rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    rows = db.execute(f"SELECT {_ROW_COLUMNS} FROM events ORDER BY position").fetchall()
    db.close()
    return rows


async def _append_batched(path: Path, total: int) -> float:
    events = [hold(n) for n in range(total)]
    async with open_store(path, registry=REGISTRY) as store:
        with timed() as watch:
            for i in range(0, total, 1000):
                await store.append(f"card-{i // 1000}", events[i : i + 1000])
    return total / watch.seconds


def _tree_cost_us(rows: list[tuple[object, ...]]) -> float:
    """Microseconds an event of the Merkle tree's upkeep at append: its leaf hash and its
    share of node hashes (``ledger.store.tree.extend``, as the writer runs it)."""
    typed = [Row(*row) for row in rows]  # type: ignore[arg-type]
    frontier = Frontier()
    with timed() as watch:
        for i in range(0, len(typed), 1000):
            tree.extend(frontier, typed[i : i + 1000])
    return watch.seconds / len(typed) * 1e6


def _baseline_batched(rows: list[tuple[object, ...]], path: Path) -> float:
    db = _raw_database(path)
    with timed() as watch:
        for i in range(0, len(rows), 1000):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           rows[i : i + 1000])
            db.execute("COMMIT")
    db.close()
    return len(rows) / watch.seconds


async def _append_concurrent(path: Path, tasks: int, per_task: int) -> float:
    events = [[hold(t * per_task + n) for n in range(per_task)] for t in range(tasks)]
    async with open_store(path, registry=REGISTRY) as store:

        async def writer(task: int) -> None:
            for event in events[task]:
                await store.append(f"card-{task}", [event])

        with timed() as watch:
            async with anyio.create_task_group() as group:
                for task in range(tasks):
                    group.start_soon(writer, task)
    return tasks * per_task / watch.seconds


def _baseline_one_per_transaction(rows: list[tuple[object, ...]], path: Path) -> float:
    db = _raw_database(path)
    with timed() as watch:
        for row in rows:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            db.execute("COMMIT")
    db.close()
    return len(rows) / watch.seconds


async def _append_single(path: Path, count: int) -> list[float]:
    """Seconds each of ``count`` awaited one-event appends took, one after the other."""
    events = [hold(n) for n in range(count)]
    times = []
    async with open_store(path, registry=REGISTRY) as store:
        for n, event in enumerate(events):
            started = time.perf_counter()
            await store.append(f"card-{n % 50}", [event])
            times.append(time.perf_counter() - started)
    return times


def _baseline_single(rows: list[tuple[object, ...]], path: Path) -> list[float]:
    """The same rows, each inserted and committed alone by raw sqlite3, same pragmas."""
    db = _raw_database(path)
    times = []
    for row in rows:
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        db.execute("COMMIT")
        times.append(time.perf_counter() - started)
    db.close()
    return times


def _percentile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e6


async def _read_all(path: Path) -> tuple[float, int]:
    async with open_store(path, registry=REGISTRY) as store:
        count = 0
        with timed() as watch:
            async for batch in store.read_batches():
                count += len(batch)
    return count / watch.seconds, count


def _baseline_read(path: Path) -> float:
    decoder = msgspec.msgpack.Decoder(StoredEvent[HoldPlaced])
    db = sqlite3.connect(path)
    count = 0
    with timed() as watch:
        cursor = db.execute("SELECT record FROM events ORDER BY position")
        while rows := cursor.fetchmany(5000):
            events = [decoder.decode(row[0]) for row in rows]
            count += len(events)
    db.close()
    return count / watch.seconds


@benchmark("store")
def store_figures(quick: bool) -> list[Figure]:
    batched_total = 20_000 if quick else 200_000
    tasks, per_task = (256, 20) if quick else (256, 200)
    single_count = 200 if quick else 2_000
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        # Rounds alternate, so that a slow spell of a shared machine does not fall on one side.
        batched_runs, batched_bases = [], []
        for run in range(_ROUNDS):
            batched_runs.append(anyio.run(_append_batched, work / f"batched{run}.db",
                                          batched_total))
            rows = _rows(work / f"batched{run}.db")
            batched_bases.append(_baseline_batched(rows, work / f"batched-raw{run}.db"))
        batched, batched_base = statistics.median(batched_runs), statistics.median(batched_bases)
        tree_us = statistics.median(_tree_cost_us(rows) for _ in range(_ROUNDS))

        concurrent = anyio.run(_append_concurrent, work / "concurrent.db", tasks, per_task)
        single_rows = _rows(work / "concurrent.db")[: 2_000 if quick else 10_000]
        concurrent_base = _baseline_one_per_transaction(single_rows, work / "single-raw.db")

        singles, single_bases = [], []
        for run in range(_ROUNDS):  # alternating, as the batched rounds
            singles += anyio.run(_append_single, work / f"single{run}.db", single_count)
            single_bases += _baseline_single(_rows(work / f"single{run}.db"),
                                             work / f"single-raw{run}.db")

        reads, count = anyio.run(_read_all, work / "batched0.db")
        reads_base = _baseline_read(work / "batched0.db")
    return [
        Figure("store.append_batched", batched, "events/s",
               "sqlite3 executemany, same rows, 1,000 per transaction", batched_base,
               f"median of {_ROUNDS} alternating rounds"),
        Figure("store.append_tree_us", tree_us, "us/event",
               "the whole batched append, per event", 1e6 / batched,
               "the Merkle tree's leaf and node hashes, included in store.append_batched"),
        Figure("store.append_concurrent", concurrent, "events/s",
               "sqlite3, same rows, one transaction per row", concurrent_base,
               f"{tasks} tasks x {per_task} single-event appends, synchronous=FULL"),
        Figure("store.append_single_p50_us", _percentile(singles, 0.5), "us",
               "sqlite3, the same insert and commit, same pragmas", _percentile(single_bases, 0.5),
               f"{_ROUNDS} x {single_count:,} awaited one-event appends, one after the other"),
        Figure("store.append_single_p99_us", _percentile(singles, 0.99), "us",
               "sqlite3, the same insert and commit, same pragmas",
               _percentile(single_bases, 0.99), "the same appends"),
        Figure("store.read_all", reads, "events/s",
               "sqlite3 SELECT + msgspec decode, same rows", reads_base, f"{count:,} events"),
    ]
