"""A writer process for the multi-process benchmarks: ``python -m benchmarks.append_writer URL
WRITER START SECONDS`` waits for the wall-clock time START (so that every writer's window is
the same, whatever their start-up took), appends batches of 10 events to its own streams from
8 tasks for SECONDS, and prints how many events were acknowledged."""

from __future__ import annotations

import sys
import time

import anyio

from benchmarks.store import REGISTRY, hold
from ledger import open_store

LANES, BATCH = 8, 10


async def main(url: str, writer: int, start: float, seconds: float) -> None:
    acknowledged = 0
    async with open_store(url, registry=REGISTRY) as store:
        await anyio.sleep(max(0.0, start - time.time()))
        deadline = time.monotonic() + seconds

        async def lane(n: int) -> None:
            nonlocal acknowledged
            batch = 0
            while time.monotonic() < deadline:
                batch += 1
                await store.append(f"card-w{writer}l{n}",
                                   [hold(batch * BATCH + i) for i in range(BATCH)])
                acknowledged += BATCH

        async with anyio.create_task_group() as group:
            for n in range(LANES):
                group.start_soon(lane, n)
    print(acknowledged)


if __name__ == "__main__":
    url, writer = sys.argv[1], int(sys.argv[2])
    anyio.run(main, url, writer, float(sys.argv[3]), float(sys.argv[4]))
