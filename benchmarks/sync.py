"""The webhook receiver's figures: signed deliveries over loopback HTTP into a SQLite ledger,
beside the same load on an endpoint that only answers 200, measured in the same run."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.streams.buffered
import httpx
from standardwebhooks import Webhook

from adapters.sandbox.webhooks import new_secret, payload
from benchmarks.harness import Figure, benchmark
from ledger.observations import AuthorisationSnapshot, Merchant

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONCURRENCY = 32


def deliveries(count: int) -> list[bytes]:
    """Hold reports as the processor sends them: each hold pending, then captured."""
    bodies = []
    for n in range(count // 2):
        for status, minutes in (("pending", 0), ("captured", 5)):
            snapshot = AuthorisationSnapshot(
                id=f"{uuid.UUID(int=n)}", account_id=f"acc-{n % 200}", card_id=f"card-{n % 200}",
                status=status, amount="12.50", currency="EUR", merchant_amount="12.50",  # type: ignore[arg-type]
                merchant_currency="EUR", merchant=Merchant(name="Cafe", mcc=5814),
                created_at=T0 + timedelta(seconds=n), updated_at=T0 + timedelta(seconds=n,
                                                                                 minutes=minutes))
            bodies.append(payload(snapshot, str(uuid.uuid4())))
    return bodies


def signed_requests(port: int, bodies: list[bytes], secret: str) -> list[bytes]:
    """Each delivery as the bytes of a keep-alive HTTP/1.1 request, signed beforehand."""
    signer, requests = Webhook(secret), []
    for body in bodies:
        event_id, now = str(uuid.uuid4()), datetime.now(UTC)
        head = (f"POST /webhooks HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                f"webhook-id: {event_id}\r\nwebhook-timestamp: {int(now.timestamp())}\r\n"
                f"webhook-signature: {signer.sign(event_id, now, body.decode())}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


async def _load(port: int, requests: list[bytes]) -> tuple[float, list[float]]:
    """Raw keep-alive connections: httpx's pool tops out near 1,000 requests/s on this
    machine, which would measure the client instead of the server."""
    latencies: list[float] = []
    queue = iter(requests)

    async def worker() -> None:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            buffered = anyio.streams.buffered.BufferedByteReceiveStream(stream)
            for request in queue:
                started = time.perf_counter()
                await stream.send(request)
                head = await buffered.receive_until(b"\r\n\r\n", 65536)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await buffered.receive_exactly(length)
                latencies.append(time.perf_counter() - started)
                assert head.startswith(b"HTTP/1.1 200"), head

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(CONCURRENCY):
            group.start_soon(worker)
    return len(requests) / (time.perf_counter() - started), latencies


def _measure(mode: str, bodies: list[bytes], db: Path, secret: str) -> tuple[float, list[float]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with subprocess.Popen([sys.executable, "-m", "benchmarks.webhook_server", mode, str(port),
                           str(db), secret], cwd=ROOT) as server:
        try:
            for _ in range(200):
                try:
                    httpx.post(f"http://127.0.0.1:{port}/webhooks", content=b"{}")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            return anyio.run(_load, port, signed_requests(port, bodies, secret))
        finally:
            server.terminate()
            server.wait(timeout=10)


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] * 1000


@benchmark("sync")
def sync_figures(quick: bool) -> list[Figure]:
    bodies = deliveries(600 if quick else 8_000)
    secret = new_secret()
    with tempfile.TemporaryDirectory() as directory:
        rate, latencies = _measure("ledger", bodies, Path(directory) / "l.db", secret)
        raw_rate, raw_latencies = _measure("ok", bodies, Path(directory) / "unused.db", secret)
    note = f"{len(bodies):,} signed deliveries, {CONCURRENCY} concurrent connections"
    return [
        Figure("sync.webhook_ingest", rate, "deliveries/s",
               "endpoint that only answers 200, same load", raw_rate, note),
        Figure("sync.webhook_p99", p99(latencies), "ms",
               "endpoint that only answers 200, p99", p99(raw_latencies), note),
    ]
