"""Amounts of mixed precision by the path a user takes: a live ``serve`` receives signed
webhooks, an ``ingest`` brings an archive that overlaps them, then ``balances`` answers.

Two whole holds ("100", "200") and one with two places ("12.50") that is then released leave
the held sum at 300.00 with only whole terms present: writing it as 300 once raised
``decimal.Rounded`` and wedged every read command (the issue that added this test)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from adapters.sandbox.webhooks import new_secret
from adapters.testing.servers import free_port
from ledger.observations import AccountSnapshot, AnySnapshot, AuthorisationSnapshot, CardSnapshot
from ledger.testing import ADDRESS, webhook_payload
from tests.support.cli import CARDLEDGER, cli, get_json
from tests.support.known_history import T0
from tests.support.webhooks import signed

MERCHANT = {"id": "m-1", "name": "Corner Cafe", "mcc": 5814, "country": "GB", "city": "London"}


def _hold(hold_id: str, status: str, amount: str, minute: int) -> AuthorisationSnapshot:
    return AuthorisationSnapshot(
        id=hold_id, account_id="a1", card_id="c1", status=status,  # type: ignore[arg-type]
        amount=amount, currency="EUR", merchant_amount=amount, merchant_currency="EUR",
        exchange_rate="1", merchant=MERCHANT,  # type: ignore[arg-type]
        created_at=T0 + timedelta(minutes=2), updated_at=T0 + timedelta(minutes=minute))


def _programme() -> list[AnySnapshot]:
    return [
        AccountSnapshot(id="a1", customer_id="u1", status="active", currencies=["EUR"],
                        created_at=T0, updated_at=T0),
        CardSnapshot(id="c1", account_id="a1", type="virtual", status="active",
                     billing_address=ADDRESS, masked_pan="530518******9871",
                     created_at=T0, updated_at=T0 + timedelta(minutes=1)),
        _hold("h1", "pending", "100", 3), _hold("h2", "pending", "200", 4),
        _hold("h3", "pending", "12.50", 5), _hold("h3", "releasing", "12.50", 6),
        _hold("h3", "released", "12.50", 7),
    ]


def test_a_live_serve_then_an_overlapping_ingest_then_balances(tmp_path: Path) -> None:
    db, port, secret = tmp_path / "live.db", free_port(), new_secret()
    bodies = [webhook_payload(s, uuid.UUID(int=n + 1)) for n, s in enumerate(_programme())]
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen([CARDLEDGER, "serve", "--db", str(db), "--port", str(port),
                           "--webhook-secret", secret]) as process:
        try:
            assert get_json(f"{base}/health")["status"] == "ok"
            for n, body in enumerate(bodies[:5]):  # live: up to h3 placed
                answer = httpx.post(f"{base}/webhooks", content=body,
                                    headers=signed(body, f"msg-{n}", secret=secret))
                assert answer.status_code == 200, answer.text
            archive = tmp_path / "archive.jsonl"  # everything, the live part included
            archive.write_bytes(b"".join(body + b"\n" for body in bodies))
            ingested = cli("ingest", "--db", str(db), str(archive))
            assert ingested.returncode == 0, ingested.stderr
            assert ingested.stdout.startswith("7 deliveries: 2 recorded, 5 already known")
            deposit = cli("deposit", "--db", str(db), "--account", "a1", "--amount", "100",
                          "--chain-transaction", "eip155:324:0xaa")
            assert deposit.returncode == 0, deposit.stderr
            time.sleep(1.2)  # the lag figure is refreshed every second
            for _ in range(100):  # the serving process's own projection applies it all
                time.sleep(0.1)
                if _metric(f"{base}/metrics", "cardledger_projection_lag_events") == "0.0":
                    break
            assert get_json(f"{base}/health") | {"received": 0, "position": 0} == {
                "status": "ok", "problems": [], "received": 0, "position": 0}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    # Now the command leads and commits the projection itself.
    after = (T0 + timedelta(hours=1)).isoformat()
    result = cli("balances", "--db", str(db), "--as-of", after, "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row == {"accountId": "a1", "currency": "EUR", "deposits": "0", "debits": "0",
                   "credits": "0", "posted": "0", "held": "300", "available": "-300"}
    now = json.loads(cli("balances", "--db", str(db), "--json").stdout)
    # The deposit was given as "100": recorded in EUR's minor units, as 100.00.
    assert [(r["deposits"], r["held"], r["available"]) for r in now] == [
        ("100.00", "0", "100.00")]


def _metric(url: str, name: str) -> str:
    for line in httpx.get(url).text.splitlines():
        if line.startswith(name + " "):
            return line.split()[1]
    raise AssertionError(f"{name} not in {url}")
