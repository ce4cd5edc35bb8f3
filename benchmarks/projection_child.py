"""Child process for the projection benchmarks: its peak memory is the figure's own.

``python -m benchmarks.projection_child MODE DB [WORKERS]`` with MODE ``rebuild`` (rebuild
every read model from position 0, in WORKERS parts if given) or ``read`` (read and decode the
whole log, the baseline). Prints one JSON object: events, seconds, peak_rss_mb (this
process's: a rebuild's workers are processes of their own).
"""

from __future__ import annotations

import resource
import sys
import time

import anyio
import msgspec

from ledger import open_store
from projections import ProjectionRunner


async def main(mode: str, db: str, workers: int) -> None:
    async with open_store(db) as store:
        started = time.perf_counter()
        if mode == "rebuild":
            async with ProjectionRunner(store, batch_size=20_000) as runner:
                events = await runner.rebuild(workers=workers)
        else:
            events = 0
            async for batch in store.read_batches(batch_size=20_000):
                events += len(batch)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(msgspec.json.encode({"events": events, "seconds": seconds,
                               "peak_rss_mb": peak}).decode())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
