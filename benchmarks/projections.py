"""The projections' figures: full rebuild rate and peak memory, and one account's balance as
of an arbitrary moment, each beside the raw read+decode of the same log in the same run."""

from __future__ import annotations

import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec

from benchmarks.harness import Figure, benchmark
from ledger import NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import (
    DOMAIN_REGISTRY,
    DomainEvent,
    FundsDeposited,
    HoldCaptured,
    HoldCaptureStarted,
    HoldPlaced,
    TransactionPosted,
    TransactionProcessed,
)
from ledger.observations import AuthorisationSnapshot, Merchant
from projections import ProjectionRunner, tables
from projections.backends import REBUILD_SUFFIX
from projections.backends.sqlite import projection_file

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MERCHANT = Merchant(id="m-1", name="Corner Cafe", mcc=5814, country="GB", city="London")
ROOT = Path(__file__).resolve().parents[1]


def hold_life(account: str, n: int, at: datetime) -> list[list[DomainEvent]]:
    """A captured hold: its three events, then its transaction's two (two appends)."""
    hold_id, amount = f"{account}-h{n}", Decimal(f"{n % 90 + 1}.{n % 100:02d}")
    common: dict[str, Any] = {"authorisation_id": hold_id, "account_id": account,
                              "card_id": f"{account}-c", "amount": amount, "currency": "EUR"}
    tx: dict[str, Any] = {"transaction_id": hold_id, "account_id": account,
                          "authorisation_id": hold_id, "direction": "debit", "amount": amount,
                          "currency": "EUR"}
    return [
        [HoldPlaced(merchant_amount=amount, merchant_currency="EUR", exchange_rate=Decimal(1),
                    merchant=MERCHANT, at=at, **common),
         HoldCaptureStarted(at=at + timedelta(hours=1), **common),
         HoldCaptured(at=at + timedelta(hours=2), **common)],
        [TransactionPosted(at=at + timedelta(hours=2), card_id=f"{account}-c",
                           token_amount=amount, token="eip155:1/erc20:0x6b17", **tx),
         TransactionProcessed(at=at + timedelta(days=1), **tx)],
    ]


async def build_log(path: Path, total: int, accounts: int) -> int:
    """Every account funded, then its holds' lives; the accounts take turns, as in a real
    programme where they are all active at once (16 writers, each with its own accounts)."""
    holds_per_account = max(1, (total // accounts - 1) // 5)
    async with open_store(path) as store:

        async def write(first: int) -> None:
            mine = range(first, accounts, 16)
            for a in mine:
                account = f"acc{a:05d}"
                deposit = FundsDeposited(account_id=account, amount=Decimal("100000"),
                                         currency="EUR", chain_transaction=f"eip155:1:0x{a:x}",
                                         at=T0)
                await store.append(stream_for(deposit), [NewEvent(payload=deposit)])
            for n in range(holds_per_account):
                for a in mine:
                    for batch in hold_life(f"acc{a:05d}", n, T0 + timedelta(minutes=7 * n + a)):
                        await store.append(stream_for(batch[0]),
                                           [NewEvent(payload=e) for e in batch])

        async with anyio.create_task_group() as group:
            for first in range(16):
                group.start_soon(write, first)
        return await store.head()


def child(mode: str, db: Path | str, workers: int = 1) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-m", "benchmarks.projection_child", mode, str(db),
                             str(workers)], cwd=ROOT, capture_output=True, text=True, check=True)
    figures: dict[str, float] = msgspec.json.decode(result.stdout)
    return figures


async def as_of_latencies(db: Path, queries: int) -> tuple[list[float], list[float]]:
    rng = random.Random(7)
    decoder = DOMAIN_REGISTRY
    ours, baseline = [], []
    async with open_store(db) as store, ProjectionRunner(store) as runner:
        await runner.catch_up()
        raw = sqlite3.connect(projection_file(db, runner.name))  # the index, beside the log
        raw.execute("ATTACH DATABASE ? AS log", (str(db),))
        accounts = runner.account_ids()
        for _ in range(queries):
            account = rng.choice(accounts)
            moment = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
            started = time.perf_counter()
            await runner.view_as_of(account, as_of=moment)
            ours.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            rows = raw.execute("SELECT e.record FROM account_events a JOIN log.events e "
                               "ON e.position = a.position WHERE a.account_id = ?",
                               (account,)).fetchall()
            decoder.decode_records(r[0] for r in rows)
            baseline.append((time.perf_counter() - started) * 1000)
    raw.close()
    return ours, baseline


async def live_cost(path: Path, history: int, webhooks: int) -> float:
    """Median milliseconds of one live webhook (record, project, commit) on an account that
    already has ``history`` captured holds, as ``serve`` does them: one at a time."""
    from adapters.processor.observer import Observer
    from ledger.observations import AuthorisationSnapshot

    async with open_store(path) as store:
        for n in range(history):
            for batch in hold_life("acc", n, T0 + timedelta(minutes=n)):
                await store.append(stream_for(batch[0]), [NewEvent(payload=e) for e in batch])
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
            observer, costs = Observer(store), []
            for n in range(webhooks):
                at = T0 + timedelta(minutes=history + n)
                started = time.perf_counter()
                await observer.record(AuthorisationSnapshot(
                    id=f"live-{n}", account_id="acc", card_id="acc-c", status="pending",
                    amount="12.50", currency="EUR", merchant_amount="12.50",
                    merchant_currency="EUR", created_at=at, updated_at=at))
                await runner.catch_up()
                costs.append((time.perf_counter() - started) * 1000)
    return statistics.median(costs)


def live_growth(quick: bool) -> Figure:
    short, long = (250, 1_500) if quick else (250, 6_000)
    with tempfile.TemporaryDirectory() as directory:
        small = anyio.run(live_cost, Path(directory) / "short.db", short, 40)
        large = anyio.run(live_cost, Path(directory) / "long.db", long, 40)
    return Figure("projections.live_growth", large, "ms",
                  f"the same after {short} captured holds", small,
                  f"one live webhook after {long:,} captured holds, median; goal: ratio <= 1.2")


async def append_waits(db: Path, seconds: float | None, during: subprocess.Popen[str] | None,
                       ) -> list[float]:
    """Milliseconds each of a writer's appends took, one every 20 ms, for ``seconds`` or
    while ``during`` (a rebuilding child process) runs."""
    waits: list[float] = []
    async with open_store(db) as store:
        started = time.perf_counter()
        n = 0
        while (during.poll() is None) if during is not None else (
                time.perf_counter() - started < (seconds or 0)):
            deposit = FundsDeposited(account_id="writer", amount=Decimal("1.00"),
                                     currency="EUR", chain_transaction=f"eip155:1:0x{n:x}",
                                     at=T0)
            begun = time.perf_counter()
            await store.append(stream_for(deposit), [NewEvent(payload=deposit)])
            waits.append((time.perf_counter() - begun) * 1000)
            n += 1
            await anyio.sleep(0.02)
    return waits


def writer_wait(db: Path) -> Figure:
    """A writer's append latency while a rebuild runs, beside the same with no rebuild."""
    quiet = anyio.run(append_waits, db, 5.0, None)
    rebuilding = subprocess.Popen([sys.executable, "-m", "benchmarks.projection_child",
                                   "rebuild", str(db)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  text=True)
    busy = anyio.run(append_waits, db, None, rebuilding)
    return Figure("projections.writer_wait_p99", _p99(busy), "ms",
                  "the same appends with no rebuild running, p99", _p99(quiet),
                  f"{len(busy)} appends during a full rebuild; goal <= 100 ms")


RebuildSize = Callable[[], Awaitable[int]]
"""The bytes a rebuild's own tables take now (0 before it began and after its swap)."""


async def webhook_latencies(url: Path | str, rebuilding: bool, size: RebuildSize,
                            ) -> tuple[list[float], int]:
    """Milliseconds each of a serving ledger's webhooks took to record (one every 20 ms), for
    5 s, or while the same process rebuilds its projection online; and the rebuild's tables'
    largest size in bytes (the extra disk it used)."""
    from adapters.service.card_ledger import CardLedger

    waits: list[float] = []
    largest = 0
    async with CardLedger.open(url) as ledger:
        await ledger.runner.catch_up()
        rebuilt = anyio.Event()

        async def rebuild() -> None:
            await ledger.runner.rebuild_online()
            rebuilt.set()

        async with anyio.create_task_group() as group:
            group.start_soon(ledger.runner.follow)
            if rebuilding:
                group.start_soon(rebuild)
            started, n = time.perf_counter(), 0
            while not rebuilt.is_set() if rebuilding else time.perf_counter() - started < 5:
                at = T0 + timedelta(days=300, seconds=n)
                webhook = AuthorisationSnapshot(
                    id=f"w-{rebuilding}-{n}", account_id="acc00000", card_id="card-w",
                    status="pending", amount="1.00", currency="EUR", merchant_amount="1.00",
                    merchant_currency="EUR", created_at=at, updated_at=at)
                begun = time.perf_counter()
                await ledger.record(webhook)
                waits.append((time.perf_counter() - begun) * 1000)
                largest = max(largest, await size())
                n += 1
                await anyio.sleep(0.02)
            group.cancel_scope.cancel()
    return waits, largest


def online_rebuild(url: Path | str, size: RebuildSize, served: RebuildSize,
                   suffix: str = "") -> list[Figure]:
    """The webhook p99 while ``url``'s projection rebuilds online, beside the same with no
    rebuild; and the extra disk it used (``size`` at its largest), beside the bytes of the
    serving tables (``served``, after the swap)."""
    quiet, _ = anyio.run(webhook_latencies, url, False, size)
    busy, extra = anyio.run(webhook_latencies, url, True, size)
    return [
        Figure(f"projections.rebuild_online_webhook_p99_ms{suffix}", _p99(busy), "ms",
               "the same webhooks with no rebuild, p99", _p99(quiet),
               f"{len(busy)} webhooks recorded by a serving ledger while it rebuilt its "
               "projection online; goal <= 100 ms"),
        Figure(f"projections.rebuild_online_extra_mb{suffix}", extra / 2**20, "MB",
               "the projection's own tables", anyio.run(served) / 2**20,
               "the rebuild's tables at their largest, dropped after the swap"),
    ]


def sqlite_online_rebuild(db: Path) -> list[Figure]:
    """``online_rebuild`` on SQLite: the rebuild's tables are a file of their own."""
    def size_of(name: str) -> RebuildSize:
        async def size() -> int:
            found = projection_file(db, name)
            return found.stat().st_size if found.exists() else 0
        return size

    name = ProjectionRunner.name
    return online_rebuild(db, size_of(f"{name}{REBUILD_SUFFIX}"), size_of(name))


def postgres_online_rebuild(url: str) -> list[Figure]:
    """``online_rebuild`` on PostgreSQL: the rebuild's tables are a schema of their own."""
    import asyncpg

    def size_of(where: str, *args: object) -> RebuildSize:
        async def size() -> int:
            db = await asyncpg.connect(url)
            try:
                return int(await db.fetchval(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND "
                    + where, *args))
            finally:
                await db.close()
        return size

    rebuilt = size_of("n.nspname = $1", f"{ProjectionRunner.name}{REBUILD_SUFFIX}")
    served = size_of("n.nspname = 'public' AND c.relname = ANY($1)",
                     [*tables.ALL_TABLES, "projection_checkpoints"])
    return online_rebuild(url, rebuilt, served, suffix="_postgres")


def _rebuild_seconds(db: Path | str, rounds: int) -> tuple[float, float, int]:
    """Median seconds of a rebuild in one process and in two parts, alternated; events."""
    one: list[float] = []
    two: list[float] = []
    events = 0
    for _ in range(rounds):
        for workers, times in ((1, one), (2, two)):
            done = child("rebuild", db, workers)
            times.append(done["seconds"])
            events = int(done["events"])
    return statistics.median(one), statistics.median(two), events


def _parallel_figure(name: str, one: float, two: float, events: int, rounds: int) -> Figure:
    # Amdahl's law from the two timings: two = one * (serial + (1 - serial) / 2). The serial
    # share so found also holds what two processes lose sharing two cores (with the server).
    serial = max(0.0, min(1.0, 2 * two / one - 1))
    eight = 1 / (serial + (1 - serial) / 8)
    return Figure(name, events / two, "events/s", "the same rebuild in one process",
                  events / one, f"{events:,} events, 2 workers: {one / two:.2f}x; serial share "
                  f"{serial:.0%}, so 8 workers on 8 cores would give {eight:.1f}x; median of "
                  f"{rounds}")


async def _copied_to_postgres(log: Path, server: str) -> str:
    """A new database on ``server`` holding the rows of the SQLite log ``log``: the same log."""
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute('CREATE DATABASE "bench_rebuild"')
    finally:
        await admin.close()
    url = server.rsplit("/", 1)[0] + "/bench_rebuild"
    async with open_store(url):
        pass  # the schema
    columns = ["position", "stream", "version", "event_id", "type", "recorded_at", "record",
               "hash", "account_id"]
    source, db = sqlite3.connect(log), await asyncpg.connect(url)
    try:
        rows = source.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY position")
        while batch := rows.fetchmany(100_000):
            await db.copy_records_to_table("events", records=batch, columns=columns)
        await db.execute("ANALYZE events")
    finally:
        source.close()
        await db.close()
    return url


def parallel_rebuilds(db: Path, rounds: int, online: bool = True) -> list[Figure]:
    """A rebuild in two worker processes beside the same in one, on SQLite and on PostgreSQL
    (a throwaway cluster, the same log copied in), alternated ``rounds`` times; and on
    PostgreSQL, with ``online``, the webhooks during an online rebuild
    (``postgres_online_rebuild``)."""
    from tests.support.postgres_cluster import Cluster, binaries

    figures = [_parallel_figure("projections.rebuild_parallel_sqlite",
                                *_rebuild_seconds(db, rounds), rounds)]
    found = binaries()
    if found is None:
        print("projections: no PostgreSQL binaries here, no rebuild_parallel", file=sys.stderr)
        return figures
    cluster = Cluster(found)
    server = cluster.start()
    try:
        url = anyio.run(_copied_to_postgres, db, server)
        figures.insert(0, _parallel_figure("projections.rebuild_parallel",
                                           *_rebuild_seconds(url, rounds), rounds))
        if online:
            figures += postgres_online_rebuild(url)
    finally:
        cluster.stop()
    return figures


def _p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


@benchmark("projections")
def projection_figures(quick: bool) -> list[Figure]:
    total, accounts = (20_000, 100) if quick else (1_000_000, 2_000)
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "ledger.db"
        events = anyio.run(build_log, db, total, accounts)
        read = child("read", db)
        rebuild = child("rebuild", db)
        ours, baseline = anyio.run(as_of_latencies, db, 50 if quick else 300)
        waits = writer_wait(db)
        online = sqlite_online_rebuild(db)
        parallel = parallel_rebuilds(db, 1 if quick else 3, online=not quick)
        db.unlink()
        five = Path(directory) / "five.db"  # five times the history, the same accounts
        anyio.run(build_log, five, total * 5, accounts)
        longer = child("rebuild", five)
    read_rate = read["events"] / read["seconds"]
    return [live_growth(quick), waits, *online, *parallel,
        Figure("projections.rebuild_peak_rss_5x", longer["peak_rss_mb"], "MB",
               f"the same on {events:,} events", rebuild["peak_rss_mb"],
               f"{longer['events']:,.0f} events: memory follows what is open, not history"),
        Figure("projections.rebuild", rebuild["events"] / rebuild["seconds"], "events/s",
               "read + decode of the same log", read_rate, f"{events:,} events"),
        Figure("projections.rebuild_peak_rss", rebuild["peak_rss_mb"], "MB",
               "read + decode of the same log, peak RSS", read["peak_rss_mb"],
               f"read + decode runs at {read_rate:,.0f} events/s"),
        Figure("projections.balance_as_of", statistics.median(ours), "ms",
               "raw sqlite3 read + decode of the account's events, median",
               statistics.median(baseline), f"median of {len(ours)} queries, "
               f"~{events // accounts} events per account"),
    ]
