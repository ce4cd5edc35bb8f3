"""The webhook receiver: an ASGI endpoint at ``POST /webhooks`` (and ``GET /health``).

With a secret, it verifies Standard Webhooks signatures (5-minute tolerance) and answers 401,
recording nothing, for a missing, wrong or stale one. Without one, it verifies by fetching:
the payload is only a hint, and what an authenticated fetch of the entity returns is recorded.
Malformed JSON, an unknown ``webhookType`` or a bad amount get 400 with a JSON body and nothing
recorded. It answers 2xx only once what the delivery taught is durably in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import msgspec
import structlog
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.processor.client import ProcessorClient
from adapters.processor.observer import (
    Delivery,
    DeliveryConflictError,
    InvalidDelivery,
    Observer,
    facts_taught,
    parse_delivery,
)
from adapters.service.metrics import Metrics
from adapters.webhooks.api import Health, Problem, Recorded, document
from ledger.errors import (
    InvalidInputError,
    InvalidSnapshotError,
    StoreUnavailableError,
)
from ledger.observations import AnySnapshot, kind_of

log = structlog.get_logger(__name__)
_ENCODER = msgspec.json.Encoder()


def _json(code: int, body: Recorded | Problem | Health) -> Response:
    return Response(_ENCODER.encode(body), code, media_type="application/json")


class WebhookReceiver:
    def __init__(self, observer: Observer, *, secret: str | None = None,
                 fetcher: ProcessorClient | None = None,
                 problems: Callable[[], list[str]] = list,
                 metrics: Metrics | None = None) -> None:
        if not secret and fetcher is None:  # an empty secret verifies nothing
            raise InvalidInputError("a webhook receiver needs a secret to verify signatures, or a "
                              "processor client to verify by fetching")
        self.observer = observer
        self._webhook = Webhook(secret) if secret else None
        self.fetcher = fetcher
        self.problems = problems
        """What keeps the ledger from being fully well, for ``/health`` (empty: ok)."""
        self.received = 0
        self.metrics = metrics
        routes = [Route("/webhooks", self.receive, methods=["POST"]),
                  Route("/health", self.health, methods=["GET"]),
                  Route("/openapi.json", _openapi, methods=["GET"])]
        if metrics is not None:
            routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
        self.app = Starlette(routes=routes)

    async def health(self, request: Request) -> Response:
        problems = self.problems()
        try:
            position: int | None = await self.observer.store.head()
        except StoreUnavailableError as exc:
            problems, position = [*problems, f"database unreachable: {exc}"], None
        return _json(200, Health("degraded" if problems else "ok", problems, self.received,
                                 position))

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
        body = await request.body()
        if self._webhook is not None:
            try:
                self._webhook.verify(body, dict(request.headers), json_parse=False)
            except Exception as exc:  # the library raises ValueError too, on odd headers
                log.info("webhook refused: bad signature", error=str(exc))
                return 401, Problem("not_authorised", f"bad signature: {exc}")
        try:
            delivery = parse_delivery(body, self.observer.clock())
        except InvalidDelivery as exc:
            log.info("webhook refused: invalid payload", error=str(exc))
            return 400, Problem("invalid_request", str(exc), exc.field)
        snapshot = delivery.snapshot if self._webhook is not None else await self._fetch(delivery)
        try:
            result = await self.observer.record(snapshot, delivery=delivery,
                                                correlation_id=delivery.event_id)
        except DeliveryConflictError as exc:
            log.warning("webhook refused: eventId reused", error=str(exc))
            return 409, Problem("conflict", str(exc))
        except InvalidSnapshotError as exc:  # a fetched snapshot, in verify-by-fetch mode
            log.info("webhook refused: invalid snapshot", error=str(exc))
            return 400, Problem("invalid_request", str(exc), exc.field)
        except StoreUnavailableError as exc:  # nothing recorded: the processor sends it again
            log.warning("webhook not recorded: database unreachable", error=str(exc))
            return 503, Problem("unavailable", str(exc))
        self.received += 1
        return 200, Recorded(facts_taught(result, delivery) > 0,
                             result.last_position if result else None)

    async def _fetch(self, delivery: Delivery) -> AnySnapshot:
        assert self.fetcher is not None
        snapshot = delivery.snapshot
        return await self.fetcher.get(f"/v1/{kind_of(snapshot)}s/{snapshot.id}", type(snapshot))


class IngestReport(msgspec.Struct):
    lines: int
    recorded: int
    """Deliveries that taught something new."""
    duplicates: int
    """Deliveries already known: received before, or their facts fetched or delivered."""
    skipped: list[str]
    conflicts: list[str] = []
    """Deliveries refused because their eventId was recorded with other content."""


async def ingest_lines(observer: Observer, lines: Iterable[bytes], *,
                       skip_invalid: bool = False) -> IngestReport:
    """Archived webhook payloads, one JSON object per line, with the receiver's semantics.

    Every line is checked first: a file with invalid lines is refused whole (an
    ``InvalidDelivery`` naming each bad line) unless ``skip_invalid``; blank lines are ignored.
    """
    deliveries: list[Delivery] = []
    bad: list[str] = []
    total = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        total += 1
        try:
            deliveries.append(parse_delivery(line, observer.clock()))
        except InvalidDelivery as exc:
            bad.append(f"line {number}: {exc}")
    if bad and not skip_invalid:
        raise InvalidDelivery(f"{len(bad)} invalid line(s), nothing ingested:\n" + "\n".join(bad))
    recorded = duplicates = 0
    conflicts = []
    for delivery in deliveries:
        try:
            result = await observer.record(delivery.snapshot, delivery=delivery)
        except DeliveryConflictError as exc:
            conflicts.append(str(exc))
            continue
        if facts_taught(result, delivery):
            recorded += 1
        else:
            duplicates += 1
    return IngestReport(total, recorded, duplicates, bad, conflicts)


async def _openapi(request: Request) -> Response:
    return Response(_ENCODER.encode(document()), media_type="application/json")
