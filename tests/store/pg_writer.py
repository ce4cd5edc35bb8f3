"""A writer process for the PostgreSQL concurrency test: ``python -m tests.store.pg_writer URL
N SECONDS`` appends batches to its own streams for SECONDS, printing ``EVENT_ID POSITION`` for
every acknowledged event."""

from __future__ import annotations

import sys
import time

import anyio

from ledger import NewEvent, open_store
from tests.support.sample_events import REGISTRY, note


async def main(url: str, writer: int, seconds: float) -> None:
    async with open_store(url, registry=REGISTRY) as store:
        deadline, n = time.monotonic() + seconds, 0

        async def task(lane: int) -> None:
            nonlocal n
            while time.monotonic() < deadline:
                n += 1
                events = [NewEvent(payload=note(f"{writer}.{lane}.{n}.{i}")) for i in range(3)]
                result = await store.append(f"note-w{writer}l{lane}", events)
                lines = [f"{e.event_id} {p}" for e, p in zip(events, result.positions,
                                                            strict=True)]
                print("\n".join(lines), flush=True)

        async with anyio.create_task_group() as group:
            for lane in range(4):
                group.start_soon(task, lane)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
