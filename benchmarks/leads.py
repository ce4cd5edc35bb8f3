"""A standby's try for a background task's lead, the way it is taken now (one call on a handle
opened once) beside the way it was taken before (the projection backend opened, tried and
closed on every try: on PostgreSQL a new connection and the tables' DDL each time). A
standby tries every second for as long as the leader lives."""

from __future__ import annotations

import sys
import tempfile
import time

import anyio

from benchmarks.harness import Figure, benchmark
from ledger import open_store
from projections.backends import backend_for
from projections.backends.lead import Lead


async def _tries(url: str, count: int) -> tuple[float, float]:
    """µs per try: (now, before), while another handle leads."""
    async with open_store(url) as store:
        leader, standby = Lead(store, "bench"), Lead(store, "bench")
        assert await leader.take()
        try:
            started = time.perf_counter()
            for _ in range(count):
                assert not await standby.take()
            now = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(count):
                backend = backend_for(store, "bench")
                await backend.open()
                assert not await backend.try_lead()
                await backend.close()
            before = time.perf_counter() - started
        finally:
            await standby.release()
            await leader.release()
    return now / count * 1e6, before / count * 1e6


@benchmark("leads")
def lead_figures(quick: bool) -> list[Figure]:
    from tests.support.postgres_cluster import Cluster, binaries, new_database

    count = 50 if quick else 500
    figures = []
    with tempfile.TemporaryDirectory() as directory:
        now, before = anyio.run(_tries, f"sqlite:///{directory}/lead.db", count)
        figures.append(Figure("leads.standby_try_sqlite", now, "µs/try",
                              "the backend opened per try", before, f"{count} tries"))
    found = binaries()
    if found is None:
        print("leads: no PostgreSQL server binaries here, no PostgreSQL figure", file=sys.stderr)
        return figures
    cluster = Cluster(found)
    try:
        url = new_database(cluster.start())
        now, before = anyio.run(_tries, url, count)
        figures.append(Figure("leads.standby_try_postgres", now, "µs/try",
                              "a connection and the DDL per try", before, f"{count} tries"))
    finally:
        cluster.stop()
    return figures
