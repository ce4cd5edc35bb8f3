"""An online rebuild in its own process, for the SIGKILL test:
``python -m tests.projections.rebuild_child LOG`` (a file or a PostgreSQL URL) rebuilds the
projection online in small commits, prints ``committed`` after the first, and then stalls
(the test kills it)."""

from __future__ import annotations

import sys
import time

import anyio

from ledger import open_store
from projections import ProjectionRunner


def stall(_: int) -> None:
    print("committed", flush=True)
    time.sleep(3600)  # blocks the process where it stands: between two commits


async def main(log: str) -> None:
    async with open_store(log) as store, ProjectionRunner(store, commit_every=40) as runner:
        runner.on_commit = stall
        await runner.rebuild_online()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
