"""The ledger in an ASGI service, the way services are written: the app (and its routes) is
built at import, the ledger is opened in the server's lifespan.

    webhooks = WebhookApp(secret=SECRET)
    app = FastAPI(lifespan=ledger_lifespan("sqlite:///service.db", webhooks=webhooks))
    app.mount("/processor", webhooks)
    app.add_exception_handler(LedgerError, problem_response)

``WebhookApp`` can be mounted before there is a ledger: it answers 503 until the lifespan
binds one, and again after it closes, so no delivery is ever answered 2xx unrecorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from os import PathLike
from typing import TypedDict

import anyio
import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.errors import answer_for
from adapters.processor.client import ProcessorClient
from adapters.service.card_ledger import CardLedger
from adapters.webhooks.api import Problem
from ledger.clock import Clock, utc_now
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.errors import InvalidInputError, LedgerError

_ENCODER = msgspec.json.Encoder()


class WebhookApp:
    """``CardLedger.webhook_app`` for a ledger opened later (``bind``, or ``ledger_lifespan``):
    ``POST /webhooks``, ``GET /health``, ``GET /openapi.json`` and ``GET /metrics``."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            await _problem(503, Problem("unavailable", "the ledger is not open (yet): retry "
                                        "later"), {"retry-after": "5"})(scope, receive, send)

    @asynccontextmanager
    async def bind(self, ledger: CardLedger) -> AsyncIterator[None]:
        """Answer with ``ledger`` inside the block (one ledger at a time)."""
        if self._app is not None:
            raise InvalidInputError("this WebhookApp is bound to a ledger already")
        self._app = ledger.webhook_app(self.secret)
        try:
            yield
        finally:
            self._app = None


class LedgerState(TypedDict):
    """What ``ledger_lifespan`` gives the app's state: ``request.state.ledger``."""

    ledger: CardLedger


def ledger_lifespan(url: str | PathLike[str], *, webhooks: WebhookApp | None = None,
                    processor: ProcessorClient | None = None, clock: Clock = utc_now,
                    policy: HoldPolicy = DEFAULT_POLICY, background: bool = True,
                    ) -> Callable[[object], AbstractAsyncContextManager[LedgerState]]:
    """A lifespan (Starlette's or FastAPI's ``lifespan=``) that opens the ledger at ``url``,
    binds ``webhooks`` to it, runs its background work (unless ``background=False``: another
    process runs it), and closes it all when the server stops."""

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[LedgerState]:
        async with CardLedger.open(url, policy=policy, processor=processor,
                                   clock=clock) as ledger, anyio.create_task_group() as group:
            if background:
                group.start_soon(ledger.run_background)
            if webhooks is None:
                yield {"ledger": ledger}
            else:
                async with webhooks.bind(ledger):
                    yield {"ledger": ledger}
            group.cancel_scope.cancel()

    return lifespan


def current_ledger(connection: HTTPConnection) -> CardLedger:
    """The ledger ``ledger_lifespan`` opened, for a request (a FastAPI dependency as it is)."""
    ledger = getattr(connection.state, "ledger", None)
    if not isinstance(ledger, CardLedger):
        raise RuntimeError("no ledger in the app's state: open it with ledger_lifespan")
    return ledger


async def problem_response(request: Request, error: Exception) -> Response:
    """A ``LedgerError`` answered by its kind (``adapters.errors.ANSWERS``) with a JSON
    problem body: ``app.add_exception_handler(LedgerError, problem_response)``."""
    if not isinstance(error, LedgerError):
        raise error
    answer = answer_for(error)
    return _problem(answer.http_status, Problem(answer.problem, str(error),
                                                getattr(error, "field", None)))


def _problem(status: int, problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(problem), status, headers=headers,
                    media_type="application/json")
