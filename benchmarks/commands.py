"""What a back-office command and the outbox cost on a long log: each beside the same on a
short log, in the same run (the goal: the cost follows the work, not the log's length)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import anyio

from adapters.processor.observer import Observer
from adapters.processor.outbox import Outbox
from adapters.service.commands import Commands
from benchmarks.harness import Figure, benchmark
from benchmarks.projections import build_log
from ledger import open_store
from ledger.clock import utc_now
from ledger.observations import AccountSnapshot, Address, CardSnapshot
from projections import ProjectionRunner

ADDRESS = Address(first_line="1 Test Avenue", city="London", country="GB", post_code="SW1 1AA")


async def costs(path: Path, events: int) -> tuple[float, float]:
    """Median ms of one card request, and of one pending-requests check, on a log of
    ``events`` events whose projection has caught up."""
    await build_log(path, events, max(1, events // 500))
    async with open_store(path) as store:
        observer = Observer(store)
        now = utc_now()
        for n in range(20):
            await observer.record(AccountSnapshot(id=f"b{n}", customer_id="u1", status="active",
                                                  currencies=["EUR"], created_at=now,
                                                  updated_at=now))
            await observer.record(CardSnapshot(id=f"b{n}-c", account_id=f"b{n}", type="virtual",
                                               status="terminated", created_at=now,
                                               updated_at=now))
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
        commands, outbox = Commands(store), Outbox(store, None)
        await outbox.pending()  # the first call reads the whole log once
        requests, checks = [], []
        for n in range(20):
            started = time.perf_counter()
            await commands.request_card(f"b{n}", ADDRESS)
            requests.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await outbox.pending()
            checks.append((time.perf_counter() - started) * 1000)
    return statistics.median(requests), statistics.median(checks)


@benchmark("commands")
def command_figures(quick: bool) -> list[Figure]:
    short, long = (2_000, 20_000) if quick else (10_000, 500_000)
    with tempfile.TemporaryDirectory() as directory:
        small = anyio.run(costs, Path(directory) / "short.db", short)
        large = anyio.run(costs, Path(directory) / "long.db", long)
    return [Figure(f"commands.{name}", large[i], "ms", f"the same on a {short:,}-event log",
                   small[i], f"median of 20 on a {long:,}-event log")
            for i, name in enumerate(("request_card", "outbox_pending"))]
