"""The process the crash test kills: appends batches from many tasks, printing each ack.

``python -m tests.store.crash_child DB ROUND`` prints ``ready`` once the store is open, then one
line ``ack BATCH STREAM SIZE FIRST_POSITION`` after each append returns, until it is killed.
"""

from __future__ import annotations

import random
import sys
import uuid

import anyio

from ledger import NewEvent, open_store
from ledger.store import EventStore
from tests.support.sample_events import REGISTRY, note


async def _append_forever(store: EventStore, task: int, rng: random.Random) -> None:
    while True:
        batch_id, size = uuid.uuid4().hex, rng.randint(1, 20)
        stream = f"note-t{task}"
        events = [NewEvent(payload=note("crash", batch=batch_id, index=i, size=size))
                  for i in range(size)]
        result = await store.append(stream, events)
        print(f"ack {batch_id} {stream} {size} {result.positions[0]}", flush=True)


async def main(path: str, round_number: int) -> None:
    async with open_store(path, registry=REGISTRY) as store:
        print("ready", flush=True)
        async with anyio.create_task_group() as group:
            for task in range(24):
                group.start_soon(_append_forever, store, task,
                                 random.Random(round_number * 1000 + task))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
