"""What validating at the front door costs, beside the path it guards, in the same run: the
checks a signed webhook passes before anything is decided (decoding against the snapshot's
typed schema and its limits, then the date and currency rules: ``parse_delivery``) beside
the whole webhook recorded through the receiver (in process, into a real SQLite file); and a
deposit's checks (the account, ISO 4217 minor units, the canonical form) beside the whole
``record_deposit``. The goal: checks cost under 5% of the path.

Timing the path once with its checks and once without them was tried first: the difference
(a few µs in a millisecond) drowned in run-to-run noise, both ways. Timing the checks
themselves, on the very inputs of the path, gives the share without that noise."""

from __future__ import annotations

import statistics
import tempfile
import time
import timeit
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import anyio
import httpx
from standardwebhooks import Webhook

from adapters import AccountSnapshot, AuthorisationSnapshot, CardLedger
from adapters.processor.deliveries import parse_delivery
from adapters.sandbox.webhooks import new_secret
from benchmarks.harness import Figure, benchmark
from ledger.money import currency_amount
from ledger.testing import webhook_payload


async def _round(path: Path, secret: str, count: int,
                 ) -> tuple[list[float], list[float], list[bytes]]:
    """µs per webhook and per deposit, for ``count`` new holds and deposits; the bodies."""
    at = datetime.now(UTC) - timedelta(hours=1)
    hook = Webhook(secret)
    webhooks, deposits, bodies = [], [], []
    async with CardLedger.open(path) as ledger:
        await ledger.record(AccountSnapshot(id="a1", customer_id="c1", status="active",
                                            currencies=["EUR"], created_at=at, updated_at=at))
        transport = httpx.ASGITransport(app=ledger.webhook_app(secret))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for n in range(1, count + 1):
                body = webhook_payload(AuthorisationSnapshot(
                    id=f"h{n}", account_id="a1", card_id="c1", status="pending",
                    amount="12.50", currency="EUR", merchant_amount="12.50",
                    merchant_currency="EUR", created_at=at, updated_at=at), uuid.UUID(int=n))
                bodies.append(body)
                now = datetime.now(UTC)
                headers = {"webhook-id": f"m{n}", "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": hook.sign(f"m{n}", now, body.decode()),
                           "content-type": "application/json"}
                started = time.perf_counter()
                response = await client.post("/webhooks", content=body, headers=headers)
                webhooks.append((time.perf_counter() - started) * 1e6)
                assert response.is_success, response.text
                started = time.perf_counter()
                await ledger.record_deposit("a1", Decimal("10.5"), "EUR", f"eip155:1:0x{n:x}")
                deposits.append((time.perf_counter() - started) * 1e6)
    return webhooks, deposits, bodies


def _checks_us(bodies: list[bytes], repeat: int = 20) -> tuple[float, float]:
    """Median µs of a delivery's checks and of a deposit's amount check, on the path's
    inputs."""
    now = datetime.now(UTC)
    delivery = [timeit.timeit(partial(parse_delivery, body, now), number=repeat) / repeat
                for body in bodies]
    amount = timeit.timeit(lambda: currency_amount(Decimal("10.5"), "EUR"), number=10_000)
    return statistics.median(delivery) * 1e6, amount / 10_000 * 1e6


@benchmark("front_door")
def front_door_figures(quick: bool) -> list[Figure]:
    count = 100 if quick else 2_000
    with tempfile.TemporaryDirectory() as directory:
        webhooks, deposits, bodies = anyio.run(_round, Path(directory) / "l.db", new_secret(),
                                               count)
    delivery_checks, amount_checks = _checks_us(bodies)
    return [
        Figure("front_door.webhook_checks_us", delivery_checks, "µs", "webhook p50",
               statistics.median(webhooks), "goal: under 5% of the webhook; a signed hold "
               "placed, recorded through the receiver into SQLite, in process"),
        Figure("front_door.deposit_checks_us", amount_checks, "µs", "deposit p50",
               statistics.median(deposits), "goal: under 5% of record_deposit; ISO 4217 "
               "minor units and the canonical form (the account check is a set lookup)"),
    ]
