"""``cardledger serve``: the ledger's long-running process.

The front door's webhook receiver and background work (``CardLedger.run_background``: the
projection runner, the expiry sweeper, the outbox dispatcher) in one task group; uvicorn stops
on SIGTERM or SIGINT and everything else stops with it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import anyio
import uvicorn

from adapters.processor.client import ProcessorClient
from adapters.processor.connection import Connection
from adapters.service.card_ledger import CardLedger
from adapters.service.checkpoints import publish_checkpoints
from ledger.logs import get_logger
from ledger.transparency.note import SigningKey

log = get_logger("serve")
OUTBOX_EVERY = 1.0
SWEEP_EVERY = 60.0
FOLLOW_RETRY = 1.0  # seconds, after the runner lost its database connection


class Checkpoints(NamedTuple):
    """What ``serve`` publishes: ``GET /checkpoint`` signed with ``key``, and a file."""

    key: SigningKey
    path: Path | None
    every_seconds: float
    every_events: int


async def serve(db: str, host: str, port: int, webhook_secret: str | None,
                connection: Connection, checkpoints: Checkpoints | None = None) -> None:
    client: ProcessorClient | None = await connection.open() if connection.configured else None
    async with CardLedger.open(db, processor=client) as ledger:
        app = ledger.webhook_app(webhook_secret,
                                 checkpoint_key=checkpoints.key if checkpoints else None)
        server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        log.info("serving", host=host, port=port, processor=connection.configured)
        async with anyio.create_task_group() as group:

            async def until_stopped() -> None:
                await server.serve()  # returns once asked to exit, requests drained
                group.cancel_scope.cancel()

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for received in signals:
                        log.info("stopping", signal=signal.Signals(received).name)
                        server.should_exit = True
                        return

            group.start_soon(until_stopped)
            group.start_soon(on_signal)
            if checkpoints is not None and checkpoints.path is not None:
                group.start_soon(partial(publish_checkpoints, ledger, checkpoints.key,
                                         checkpoints.path,
                                         every_seconds=checkpoints.every_seconds,
                                         every_events=checkpoints.every_events))
            group.start_soon(partial(ledger.run_background, sweep_every=SWEEP_EVERY,
                                     dispatch_every=OUTBOX_EVERY, retry_after=FOLLOW_RETRY))
    if client is not None:
        await client.__aexit__(None, None, None)
    log.info("stopped")


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: it re-raises the signal after shutting down,
    which would kill the process before the store and the runner are closed."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
