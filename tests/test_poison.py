"""One signed webhook must never stop the ledger: out-of-range values are refused with a 400
naming the field, and an event already in the log that no rule can apply is quarantined."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.testing.servers import free_port
from ledger import NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import HoldPlaced
from ledger.testing import webhook_payload
from projections import ProjectionRunner
from tests.support.cli import CARDLEDGER, cli, get_json
from tests.support.known_history import ACCOUNT, auth, known_history_snapshots
from tests.support.sandbox import raw, sandbox
from tests.support.webhooks import receiving, signed

pytestmark = pytest.mark.anyio
NOW = datetime.now(UTC)


def _body(changes: dict[str, Any], event_id: str = str(uuid.UUID(int=1))) -> bytes:
    hold = auth("h1", "pending", "12.50", NOW - timedelta(hours=1), NOW - timedelta(hours=1))
    fields = msgspec.json.decode(webhook_payload(hold, uuid.UUID(int=1)))
    return msgspec.json.encode({**fields, "eventId": event_id, **changes})


REFUSED = [
    ({"createdAt": "9999-12-31T23:59:59Z"}, "createdAt"),
    ({"createdAt": "0001-01-01T00:00:00Z"}, "createdAt"),
    ({"updatedAt": "1970-01-01T00:00:00Z"}, "updatedAt"),
    ({"updatedAt": (NOW + timedelta(days=3)).isoformat()}, "updatedAt"),
    ({"accountId": ""}, "accountId"),
    ({"accountId": "no such account"}, "accountId"),
    ({"accountId": "x" * 10_000}, "accountId"),
    ({"id": "h 1"}, "id"),
    ({"amount": "1" * 30}, "amount"),
    ({"exchangeRate": "9" * 13}, "exchangeRate"),
    ({"currency": "AAA"}, "currency"),
    ({"merchantCurrency": "ZZZ"}, "merchantCurrency"),
    ({"merchant": {"name": "m" * 300}}, "merchant.name"),
]


@pytest.mark.parametrize(("changes", "field"), REFUSED)
async def test_out_of_range_values_are_a_400_naming_the_field(tmp_path: Path,
                                                            changes: dict[str, Any],
                                                            field: str) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        body = _body(changes)
        answer = await http.post("/webhooks", content=body, headers=signed(body))
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and field in answer.json()["message"]
        assert await receiver.observer.store.head() == 0
        valid = _body({})
        assert (await http.post("/webhooks", content=valid, headers=signed(valid))).json()[
            "recorded"]


async def test_an_event_id_and_a_body_that_are_too_large_are_refused(tmp_path: Path) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        for body in (_body({}, event_id="not an id"), _body({"padding": "x" * 70_000})):
            answer = await http.post("/webhooks", content=body, headers=signed(body))
            assert answer.status_code == 400, answer.text
        assert await receiver.observer.store.head() == 0


async def test_a_reused_event_id_with_other_content_is_a_409(tmp_path: Path) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        first, second = _body({}), _body({"amount": "13.00"})
        assert (await http.post("/webhooks", content=first, headers=signed(first))).status_code \
            == 200
        head = await receiver.observer.store.head()
        for _ in range(3):
            answer = await http.post("/webhooks", content=second, headers=signed(second))
            assert answer.status_code == 409 and answer.json()["error"] == "conflict"
        assert await receiver.observer.store.head() == head


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["id", "accountId", "cardId", "amount", "currency", "createdAt",
                              "updatedAt", "status", "merchantAmount", "exchangeRate"]),
       value=st.one_of(st.text(max_size=80), st.integers(), st.none(), st.booleans(),
                       st.floats(allow_nan=True), st.sampled_from(["9999-12-31T00:00:00Z",
                                                                   "1" * 40, "AAA", ""])))
def test_mutated_signed_deliveries_never_get_a_5xx_and_a_refused_one_records_nothing(
        tmp_path_factory: pytest.TempPathFactory, field: str, value: object) -> None:
    import anyio

    from adapters.testing.servers import serving

    async def check() -> None:  # over loopback: real HTTP, as the processor sends them
        port = free_port()
        async with receiving(tmp_path_factory.mktemp("m") / "l.db") as (receiver, _), \
                serving(receiver.app, port), httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}") as http:
            body = _body({field: value})
            answer = await http.post("/webhooks", content=body, headers=signed(body))
            assert answer.status_code in (200, 400), answer.text
            if answer.status_code == 400:
                assert await receiver.observer.store.head() == 0

    anyio.run(check)


async def test_non_ascii_credentials_are_a_401_not_a_500() -> None:
    box = sandbox()
    answer = await raw(box.app, "POST", "/v1/auth/token",
                       json={"apiKey": "clé", "apiSecret": "sécret"})
    assert answer.status_code == 401


# --- an event in the log that no rule can apply ----------------------------------------------


async def _poisoned(path: Path) -> None:
    """A ledger whose log holds the far-future hold an older version accepted."""
    async with open_store(path) as store:
        for n, snapshot in enumerate(known_history_snapshots()):
            from adapters.processor.deliveries import parse_delivery
            from adapters.processor.observer import Observer

            delivery = parse_delivery(webhook_payload(snapshot, uuid.UUID(int=n + 1)))
            await Observer(store).record(delivery.snapshot, delivery=delivery)
        poison = HoldPlaced(authorisation_id="h9", account_id="a1", card_id="c1",
                            amount=Decimal("5.00"), currency="EUR",
                            merchant_amount=Decimal("5.00"), merchant_currency="EUR",
                            exchange_rate=Decimal(1), at=datetime(9999, 12, 31, tzinfo=UTC))
        await store.append(stream_for(poison), [NewEvent(payload=poison)])


async def test_a_recorded_event_the_projections_cannot_apply_is_quarantined(
        tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    await _poisoned(db)
    async with open_store(db) as store, ProjectionRunner(store) as runner:
        assert await runner.catch_up() == await store.head()
        assert runner.quarantined == 1
        (row,) = (await runner.backend.snapshot()).rows["quarantined"]
        assert row[:4] == (await store.head(), "hold", "h9", "a1") and "9999" in row[4]
    for command in (["balances"], ["holds", "--all"], ["anomalies"], ["replay"]):
        result = cli(*command, "--db", str(db), "--json")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    audited = json.loads(cli("replay", "--db", str(db), "--json").stdout)
    assert audited["drift"] == []
    anomalies = json.loads(cli("anomalies", "--db", str(db), "--json").stdout)
    assert [a["entityId"] for a in anomalies if a["kind"] == "quarantined"] == ["h9"]
    (balance,) = json.loads(cli("balances", "--db", str(db), "--json").stdout)
    assert balance["held"] == "0"  # h9 counts for nothing


def test_serve_stays_up_on_a_poisoned_log_and_says_it_is_degraded(tmp_path: Path) -> None:
    import anyio

    from adapters.sandbox.webhooks import new_secret

    db = tmp_path / "l.db"
    anyio.run(_poisoned, db)
    port, secret = free_port(), new_secret()
    with subprocess.Popen([CARDLEDGER, "serve", "--db", str(db), "--port", str(port),
                           "--webhook-secret", secret]) as process:
        try:
            health = get_json(f"http://127.0.0.1:{port}/health")
            for _ in range(100):  # the runner catches up in the background
                if health["status"] == "degraded":
                    break
                anyio.run(anyio.sleep, 0.05)
                health = get_json(f"http://127.0.0.1:{port}/health")
            assert health["status"] == "degraded" and "quarantined" in str(health["problems"])
            body = webhook_payload(ACCOUNT, uuid.UUID(int=99))
            answer = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body,
                                headers=signed(body, secret=secret))
            assert answer.status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
