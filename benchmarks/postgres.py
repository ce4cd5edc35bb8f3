"""PostgreSQL's figures beside SQLite's, same machine, same run: events/s appended by 1, 4
and 16 writer processes (batches of 10 events, each process to its own streams), and reading
a log of 200,000 events. The server is a throwaway cluster started for the run (server
included in the machine's 2 cores)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import asyncpg

from benchmarks.harness import Figure, benchmark
from benchmarks.store import REGISTRY, hold
from ledger import open_store

ROOT = Path(__file__).resolve().parents[1]


def _writers(url: str, count: int, seconds: float) -> float:
    """Events/s of ``count`` writer processes over the same window (start-up excluded)."""
    start = time.time() + 2.0 + 0.25 * count  # every process open and waiting by then
    processes = [subprocess.Popen([sys.executable, "-m", "benchmarks.append_writer", url,
                                   str(n), str(start), str(seconds)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for n in range(count)]
    total = 0
    for process in processes:
        output, _ = process.communicate(timeout=seconds + 120)
        assert process.returncode == 0, output
        total += int(output.strip())
    return total / seconds


async def _fill(url: str, total: int) -> None:
    """``total`` hold-shaped events in appends of 1,000."""
    events = [hold(n) for n in range(total)]
    async with open_store(url, registry=REGISTRY) as store:
        for i in range(0, total, 1000):
            await store.append(f"card-{i // 1000}", events[i:i + 1000])


async def _read_all(url: str) -> float:
    async with open_store(url, registry=REGISTRY) as store:
        count, started = 0, time.perf_counter()
        async for batch in store.read_batches():  # the default batch, as a reader gets it
            count += len(batch)
        return count / (time.perf_counter() - started)


async def _database(server: str, name: str) -> str:
    db = await asyncpg.connect(server)
    try:
        await db.execute(f'CREATE DATABASE "{name}"')
    finally:
        await db.close()
    return server.rsplit("/", 1)[0] + f"/{name}"


@benchmark("postgres")
def postgres_figures(quick: bool) -> list[Figure]:
    from tests.support.postgres_cluster import Cluster, binaries

    found = binaries()
    if found is None:
        print("postgres: no server binaries here, no figures", file=sys.stderr)
        return []
    seconds = 1.5 if quick else 5.0
    cluster = Cluster(found)
    server = cluster.start()
    figures = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            for writers in (1, 4, 16):
                pg = anyio.run(_database, server, f"bench_{writers}")
                sqlite = f"sqlite:///{directory}/bench-{writers}.db"
                figures.append(Figure(
                    f"postgres.append_{writers}", _writers(pg, writers, seconds), "events/s",
                    f"SQLite, the same {writers} writer process(es)",
                    _writers(sqlite, writers, seconds),
                    "batches of 10 events, 8 tasks per process, durable commits"))
            total = 20_000 if quick else 200_000
            pg = anyio.run(_database, server, "bench_read")
            sqlite = f"sqlite:///{directory}/bench-read.db"
            for url in (pg, sqlite):
                anyio.run(_fill, url, total)
            figures.append(Figure(
                "postgres.read_all", anyio.run(_read_all, pg), "events/s",
                "SQLite read_all of the same events", anyio.run(_read_all, sqlite),
                f"read and decode {total:,} events appended 1,000 at a time"))
    finally:
        cluster.stop()
    return figures
