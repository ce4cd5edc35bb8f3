"""Webhook subscriptions and at-least-once delivery, signed the Standard Webhooks way.

Every entity change is posted to each subscribed URL as the entity's fields plus
``webhookType`` and ``eventId``. A delivery is retried with jittered exponential backoff until
it gets a 2xx (or ``max_attempts`` run out); with faults on, some are duplicated, dropped
before sending (and retried), or sent out of order within a window.
"""

from __future__ import annotations

import base64
import heapq
import random
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

import anyio
import httpx
import msgspec
from standardwebhooks import Webhook

from adapters.sandbox.faults import FaultDice
from ledger.backoff import backoff
from ledger.logs import get_logger
from ledger.observations import AnySnapshot, webhook_type

log = get_logger("sandbox.webhooks")

WebhookType = Literal["customer.updated", "account.updated", "card.updated",
                      "authorisation.updated", "transaction.updated"]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Subscription(msgspec.Struct, rename="camel"):
    id: str
    callback_url: str
    types: list[WebhookType]


class Delivery(msgspec.Struct, order=True):
    due: float  # first: the queue is a heap ordered by due time
    event_id: str
    url: str
    body: bytes
    attempt: int = 0


def payload(snapshot: AnySnapshot, event_id: str) -> bytes:
    """The body the processor posts: the entity's fields, ``webhookType`` and ``eventId``."""
    fields = msgspec.to_builtins(snapshot)
    fields |= {"webhookType": webhook_type(snapshot), "eventId": event_id}
    return msgspec.json.encode(fields)


class WebhookSender:
    def __init__(self, secret: str, dice: FaultDice, rng: random.Random, *,
                 max_attempts: int = 60, base_delay: float = 0.02, max_delay: float = 2.0,
                 max_in_flight: int = 16) -> None:
        self.secret, self.dice, self.rng = secret, dice, rng
        self._signer = Webhook(secret)
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.max_in_flight = max_in_flight
        """Deliveries under way at once: like a real sender, it does not flood a slow endpoint
        (an unbounded sender turned timeouts into a retry storm)."""
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: list[Delivery] = []
        self._in_flight = 0
        self._wake = anyio.Event()
        self._settled = anyio.Event()
        self.delivered = 0
        self.abandoned = 0

    def subscribe(self, subscription: Subscription) -> Subscription:
        self.subscriptions[subscription.id] = subscription
        return subscription

    def publish(self, snapshot: AnySnapshot) -> None:
        kind = webhook_type(snapshot)
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        body = payload(snapshot, event_id)
        for sub in self.subscriptions.values():
            if kind in sub.types:
                self._enqueue(Delivery(time.monotonic(), event_id, sub.callback_url, body))

    def _enqueue(self, delivery: Delivery) -> None:
        heapq.heappush(self._queue, delivery)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    async def drain(self) -> None:
        """Return once every queued delivery has been delivered or abandoned."""
        while self.pending:
            settled = self._settled = anyio.Event()
            with anyio.move_on_after(0.05):  # retries fall due with nobody to wake us
                await settled.wait()

    async def run(self, client: httpx.AsyncClient) -> None:
        """Deliver forever (run in a task group)."""
        async with anyio.create_task_group() as group:
            while True:
                delivery = self._next_due() if self._in_flight < self.max_in_flight else None
                if delivery is None:
                    wake = self._wake = anyio.Event()
                    with anyio.move_on_after(self._time_to_next()):
                        await wake.wait()
                    continue
                self._in_flight += 1
                group.start_soon(self._attempt, client, delivery)

    def _next_due(self) -> Delivery | None:
        """The next due delivery; with reordering on, any of the first N due ones."""
        now, window = time.monotonic(), list[Delivery]()
        while self._queue and self._queue[0].due <= now and (
                len(window) < max(1, self.dice.faults.reorder_window)):
            window.append(heapq.heappop(self._queue))
        if not window:
            return None
        chosen = window.pop(self.rng.randrange(len(window)))
        for other in window:
            heapq.heappush(self._queue, other)
        return chosen

    def _time_to_next(self) -> float:
        due = self._queue[0].due if self._queue else time.monotonic() + 1
        return max(0.0, due - time.monotonic()) + 0.001

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            if self.dice.roll(self.dice.faults.duplicate) and delivery.attempt == 0:
                self._enqueue(msgspec.structs.replace(delivery, due=time.monotonic() + 0.01))
            if self.dice.roll(self.dice.faults.drop):
                self._retry(delivery, "dropped")
                return
            if await self._send(client, delivery):
                self.delivered += 1
            else:
                self._retry(delivery, "refused")
        finally:
            self._in_flight -= 1
            self._wake.set()  # room for the next delivery
            if not self.pending:
                self._settled.set()

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        now = datetime.now(UTC)
        headers = {"content-type": "application/json", "webhook-id": delivery.event_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": self._signer.sign(delivery.event_id, now,
                                                          delivery.body.decode())}
        try:
            response = await client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            log.debug("webhook delivery failed", event_id=delivery.event_id, error=str(exc))
            return False
        return 200 <= response.status_code < 300

    def _retry(self, delivery: Delivery, why: str) -> None:
        attempt = delivery.attempt + 1
        if attempt >= self.max_attempts:
            self.abandoned += 1
            log.warning("webhook delivery abandoned", event_id=delivery.event_id, why=why)
            return
        delay = backoff(attempt + 1, self.base_delay, self.max_delay, self.rng)  # seeded jitter
        self._enqueue(msgspec.structs.replace(delivery, attempt=attempt,
                                              due=time.monotonic() + delay))
