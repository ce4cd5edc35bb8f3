"""The network between the ledger and the processor, as the schedule makes it behave.

``Network`` is the ledger's client transport: it passes requests to the sandbox's ASGI app
in process, except when a ``Fault`` step armed an answer for the next one, or a crash armed
for the moment a request has been done. ``Mailbox`` holds the processor's webhooks until a
``Deliver`` step sends one, in any order, dropped or sent twice.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from typing import NamedTuple

import httpx
from standardwebhooks import Webhook

from adapters.sandbox.webhooks import payload
from adapters.simulation.schedule import ClientFault
from ledger.observations import AnySnapshot


class Crashed(BaseException):
    """The ledger's process died here. A ``BaseException``, like a signal: no handler in
    the ledger may catch it and carry on."""


_PROBLEMS = {"429": (429, b'{"error":"rate_limited","message":"slow down"}'),
             "409": (409, b'{"error":"in_flight","message":"a request with this key is '
                          b'in flight"}'),
             "503": (503, b'{"error":"unavailable","message":"try again"}'),
             "500-after": (500, b'{"error":"internal","message":"failed after the work"}')}


class Network(httpx.AsyncBaseTransport):
    def __init__(self, sandbox_app: httpx.ASGITransport) -> None:
        self._inner = sandbox_app
        self.faults: deque[ClientFault] = deque()
        """Armed by ``Fault`` steps, each spent on the next request."""
        self.crash_after_send = False
        self.injected: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            self.injected[fault] += 1
        if fault == "timeout-before":
            raise httpx.ReadTimeout("injected: no answer", request=request)
        if fault in ("429", "409", "503"):
            status, body = _PROBLEMS[fault]
            headers = {"content-type": "application/json"}
            if status == 429:
                headers["retry-after"] = "2"
            return httpx.Response(status, headers=headers, content=body, request=request)
        response = await self._inner.handle_async_request(request)
        if self.crash_after_send and request.method != "GET":
            self.crash_after_send = False
            await response.aclose()
            raise Crashed("the process died once the processor had done the work")
        if fault == "timeout-after":
            await response.aclose()
            raise httpx.ReadTimeout("injected: the work was done, the answer lost",
                                    request=request)
        if fault == "500-after":
            await response.aclose()
            status, body = _PROBLEMS[fault]
            return httpx.Response(status, headers={"content-type": "application/json"},
                                  content=body, request=request)
        return response


class Delivery(NamedTuple):
    event_id: str
    body: bytes


class Mailbox:
    """The processor's webhook sender, with no clock of its own: every entity change is
    queued, and ``Deliver`` steps choose what is sent, when, and what the network does."""

    def __init__(self, secret: str, rng: random.Random) -> None:
        self.secret, self._rng, self._signer = secret, rng, Webhook(secret)
        self.pending: list[Delivery] = []
        self.acknowledged: Counter[str] = Counter()
        """Event ids the ledger answered 2xx, and how often."""

    def publish(self, snapshot: AnySnapshot) -> None:
        event_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.pending.append(Delivery(event_id, payload(snapshot, event_id)))

    def headers(self, delivery: Delivery) -> dict[str, str]:
        # Signed on the real clock: the receiver checks a signature's age against it, and
        # nothing of it reaches the log.
        now = datetime.now(UTC)
        return {"content-type": "application/json", "webhook-id": delivery.event_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self._signer.sign(delivery.event_id, now,
                                                       delivery.body.decode())}
