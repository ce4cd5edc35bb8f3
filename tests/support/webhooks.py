"""Signed webhook deliveries, and a receiver over an in-process ASGI transport."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
from standardwebhooks import Webhook

from adapters.processor.observer import Observer
from adapters.sandbox.webhooks import new_secret
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store
from ledger.observations import CardSnapshot
from ledger.testing import webhook_payload

T0 = datetime(2026, 3, 1, tzinfo=UTC)


SECRET = new_secret()


def card_body(status: str, minute: int, event_id: str = "e-1", **extra: object) -> bytes:
    snapshot = CardSnapshot(id="c1", account_id="a1", type="virtual", status=status,  # type: ignore[arg-type]
                            created_at=T0, updated_at=T0.replace(minute=minute))
    body = msgspec.json.decode(webhook_payload(snapshot, uuid.UUID(int=1)))
    body |= {"eventId": event_id, **extra}
    return msgspec.json.encode(body)


def signed(body: bytes, event_id: str = "msg-1", secret: str = SECRET,
           when: datetime | None = None) -> dict[str, str]:
    moment = when or datetime.now(UTC)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, moment, body.decode()),
            "content-type": "application/json"}


@asynccontextmanager
async def receiving(path: Path) -> AsyncIterator[tuple[WebhookReceiver, httpx.AsyncClient]]:
    async with open_store(path) as store:
        receiver = WebhookReceiver(Observer(store), secret=SECRET)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app),
                                     base_url="http://ledger.test") as http:
            yield receiver, http
