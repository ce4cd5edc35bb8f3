"""A projection runner in its own process, for the take-over test:
``python -m tests.projections.runner_child URL`` follows the log and prints ``leading`` once
it holds the lead."""

from __future__ import annotations

import sys

import anyio

from ledger import open_store
from projections import ProjectionRunner


async def main(url: str) -> None:
    async with open_store(url, poll_interval=0.02) as store, ProjectionRunner(
            store, lead_poll=0.05) as runner, anyio.create_task_group() as group:
        group.start_soon(runner.follow)
        while not runner.leading:  # noqa: ASYNC110 (a property, not an event)
            await anyio.sleep(0.01)
        print("leading", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
