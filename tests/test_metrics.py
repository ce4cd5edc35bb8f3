"""What an operator sees: /metrics in Prometheus's format, and /health judging lag and
backlog. Through the front door, on a real SQLite file; serve's own endpoint over loopback."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from adapters import CardLedger
from adapters.sandbox.webhooks import new_secret
from tests.support.webhooks import card_body, signed

pytestmark = pytest.mark.anyio


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text``."""
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + shown + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, flags=re.MULTILINE)
    assert found, f"{name} {labels} not in the metrics"
    return float(found.group(1))


def scrape(ledger: CardLedger) -> str:
    from prometheus_client import generate_latest

    return generate_latest(ledger.metrics.registry).decode()


async def test_webhooks_are_counted_by_outcome_and_reason(tmp_path: Path) -> None:
    secret = new_secret()
    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        app = ledger.webhook_app(secret)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ledger") as http:
            body = card_body("active", 5)
            for _ in range(2):  # recorded, then known
                assert (await http.post("/webhooks", content=body,
                                        headers=signed(body, secret=secret))).status_code == 200
            await http.post("/webhooks", content=body)  # unsigned
            bad = card_body("active", 6, id="no such id")
            await http.post("/webhooks", content=bad, headers=signed(bad, secret=secret))
            scraped = await http.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert sample(text, "cardledger_webhooks_total", outcome="recorded", reason="") == 1
    assert sample(text, "cardledger_webhooks_total", outcome="known", reason="") == 1
    assert sample(text, "cardledger_webhooks_total", outcome="refused",
                  reason="not_authorised") == 1
    assert sample(text, "cardledger_webhooks_total", outcome="refused",
                  reason="invalid_request") == 1
    assert sample(text, "cardledger_append_seconds_count") == 2


async def test_lag_and_a_stuck_outbox_are_measured_and_make_health_degraded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.service.card_ledger

    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        await ledger.commands.register_customer(
            "ext-1", "eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb")
        await ledger._watch(None)  # the watcher's round, with nothing projected yet
        text = scrape(ledger)
        assert sample(text, "cardledger_projection_lag_events") == await ledger.store.head() > 0
        assert sample(text, "cardledger_outbox_pending") == 1
        assert sample(text, "cardledger_leader", task="projection") == 0
        assert ledger.problems() == []  # within the limits
        monkeypatch.setattr(adapters.service.card_ledger, "LAG_LIMIT", -1.0)
        monkeypatch.setattr(adapters.service.card_ledger, "OUTBOX_LIMIT", -1.0)
        problems = ledger.problems()
        assert any("projection lagging" in p for p in problems)
        assert any("outbox stuck" in p for p in problems)
        await ledger.wait_until_visible()
        await ledger._watch(None)
        text = scrape(ledger)
        assert sample(text, "cardledger_projection_lag_events") == 0
        assert sample(text, "cardledger_projection_lag_seconds") == 0
