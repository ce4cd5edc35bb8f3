"""The webhook receiver: an ASGI endpoint at ``POST /webhooks`` (and ``GET /health``,
``GET /openapi.json``, ``GET /metrics`` with metrics, ``GET /checkpoint`` with a signing key).

Each delivery goes through the one path (``adapters.webhooks.intake``): with a secret, its
signature is verified; without one, it is verified by fetching. A refusal is answered by its
error's kind (``adapters.errors.ANSWERS``): 401 a bad signature, 400 a malformed or invalid
payload, 409 an ``eventId`` reused with other content, 503 (with ``Retry-After``) the
database or the processor unreachable, each with a JSON problem body, and nothing recorded.
It answers 2xx only once what the delivery taught is durably in the log.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.errors import answer_for
from adapters.metrics import Metrics
from adapters.processor.client import ProcessorClient
from adapters.processor.observer import Observer
from adapters.webhooks.api import Health, Problem, Recorded, document
from adapters.webhooks.intake import WebhookIntake
from ledger.errors import InvalidInputError, LedgerError, StoreUnavailableError
from ledger.logs import get_logger

log = get_logger("webhooks")
_ENCODER = msgspec.json.Encoder()


def _json(code: int, body: Recorded | Problem | Health) -> Response:
    return Response(_ENCODER.encode(body), code, media_type="application/json")


class WebhookReceiver:
    def __init__(self, observer: Observer, *, secret: str | None = None,
                 fetcher: ProcessorClient | None = None,
                 problems: Callable[[], list[str]] = list,
                 metrics: Metrics | None = None,
                 checkpoint: Callable[[], Awaitable[str]] | None = None) -> None:
        self.intake = WebhookIntake(observer, secret=secret, fetcher=fetcher)
        if not self.intake.verifies:
            raise InvalidInputError("a webhook receiver needs a secret to verify signatures, "
                                    "or a processor client to verify by fetching")
        self.observer = observer
        self.problems = problems
        """What keeps the ledger from being fully well, for ``/health`` (empty: ok)."""
        self.received = 0
        self.metrics = metrics
        routes = [Route("/webhooks", self.receive, methods=["POST"]),
                  Route("/health", self.health, methods=["GET"]),
                  Route("/openapi.json", _openapi, methods=["GET"])]
        if metrics is not None:
            routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
        if checkpoint is not None:
            self.checkpoint = checkpoint
            routes.append(Route("/checkpoint", self.latest_checkpoint, methods=["GET"]))
        self.app = Starlette(routes=routes)

    async def health(self, request: Request) -> Response:
        problems = self.problems()
        try:
            position: int | None = await self.observer.store.head()
        except StoreUnavailableError as exc:
            problems, position = [*problems, f"database unreachable: {exc}"], None
        return _json(200, Health("degraded" if problems else "ok", problems, self.received,
                                 position))

    async def latest_checkpoint(self, request: Request) -> Response:
        """The log's signed checkpoint now, as a C2SP signed note."""
        try:
            note = await self.checkpoint()
        except StoreUnavailableError as exc:
            return _json(503, Problem("unavailable", str(exc)))
        return Response(note, media_type="text/plain; charset=utf-8")

    async def receive(self, request: Request) -> Response:
        started = time.perf_counter()
        status, answer = await self._receive(request)
        response = _json(status, answer)
        if status == 503:
            response.headers["retry-after"] = "5"
        if self.metrics is not None:
            if isinstance(answer, Recorded):
                self.metrics.webhook("recorded" if answer.recorded else "known", "",
                                     time.perf_counter() - started)
            else:
                self.metrics.webhook("refused", answer.error, None)
        return response

    async def _receive(self, request: Request) -> tuple[int, Recorded | Problem]:
        try:
            recorded = await self.intake.take(await request.body(), request.headers)
        except LedgerError as exc:
            answer = answer_for(exc)
            level = log.warning if answer.http_status >= 409 else log.info  # ours, or theirs
            level("webhook refused", kind=answer.problem, error=str(exc))
            return answer.http_status, Problem(answer.problem, str(exc),
                                               getattr(exc, "field", None))
        self.received += 1
        return 200, recorded


async def _openapi(request: Request) -> Response:
    return Response(_ENCODER.encode(document()), media_type="application/json")
