"""``cardledger serve``: the ledger's long-running process.

The webhook receiver, the projection runner (following the log), the outbox dispatcher and the
expiry sweeper, in one task group; uvicorn stops on SIGTERM or SIGINT and everything else
stops with it.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

import anyio
import structlog
import uvicorn

from adapters.client import ProcessorClient
from adapters.ingest import Observer
from adapters.outbox import Outbox
from adapters.processor import Connection
from adapters.receiver import WebhookReceiver
from ledger.store import open_store
from projections import ProjectionRunner, sweep

log = structlog.get_logger("adapters.serve")
OUTBOX_EVERY = 1.0
SWEEP_EVERY = 60.0
FOLLOW_RETRY = 1.0  # seconds, after the runner lost its database connection


async def serve(db: str, host: str, port: int, webhook_secret: str | None,
                connection: Connection) -> None:
    client: ProcessorClient | None = await connection.open() if connection.configured else None
    async with open_store(db) as store, ProjectionRunner(store) as runner:
        failing: dict[str, str] = {}  # background task -> why its last round failed
        receiver = WebhookReceiver(Observer(store), secret=webhook_secret, fetcher=client,
                                   problems=lambda: _problems(runner, failing))
        server = _Server(uvicorn.Config(receiver.app, host=host, port=port,
                                        log_level="warning"))
        # One dispatcher sends at a time, however many serve processes share the ledger.
        dispatcher = Outbox(store, client, lead=True) if client is not None else None
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
            group.start_soon(partial(runner.follow, retry_after=FOLLOW_RETRY))
            group.start_soon(_every, "expiry sweeper", SWEEP_EVERY, lambda: sweep(runner),
                             failing)
            if dispatcher is not None:
                group.start_soon(_every, "outbox dispatcher", OUTBOX_EVERY,
                                 dispatcher.dispatch, failing)
        if dispatcher is not None:
            await dispatcher.close()
    if client is not None:
        await client.__aexit__(None, None, None)
    log.info("stopped")


def _problems(runner: ProjectionRunner, failing: dict[str, str]) -> list[str]:
    problems = [f"{task} failing: {why}" for task, why in failing.items()]
    if runner.quarantined:
        problems.append(f"{runner.quarantined} event(s) quarantined: the projections cannot "
                        "apply them (cardledger anomalies lists them)")
    if runner.failure is not None:
        problems.append(f"projection runner failing: {runner.failure}")
    return problems


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: it re-raises the signal after shutting down,
    which would kill the process before the store and the runner are closed."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _every(name: str, seconds: float, work: Callable[[], Awaitable[object]],
                 failing: dict[str, str]) -> None:
    """Run ``work`` every ``seconds``; a failed round is logged with its traceback and
    reported by /health until a round succeeds (the database may come back)."""
    while True:
        try:
            await work()
        except Exception as exc:  # keep serving; the next round tries again
            failing[name] = str(exc) or type(exc).__name__
            log.warning("background work failed; trying again", task=name, error=str(exc),
                        exc_info=True)
        else:
            failing.pop(name, None)
        await anyio.sleep(seconds)
