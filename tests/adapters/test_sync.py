"""The adapter's ways in and out: receiver, ingest, pull sync, outbox, reconciliation, logs."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest

from adapters.processor.deliveries import InvalidDelivery
from adapters.processor.observer import Observer
from adapters.processor.sync import pull
from adapters.sandbox.webhooks import new_secret
from adapters.testing.scenario import ADDRESS, Stack, stack
from adapters.webhooks.archive import ingest_lines
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store
from ledger.events import CardIssuanceRequested
from ledger.observations import CardSnapshot
from tests.support.sandbox import sandbox
from tests.support.webhooks import card_body, receiving, signed

pytestmark = pytest.mark.anyio








async def test_bad_signatures_are_401_and_record_nothing(tmp_path: Path) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        body = card_body("active", 5)
        cases = [{"content-type": "application/json"},  # unsigned
                 signed(body, secret=new_secret()),  # wrong secret
                 signed(body, when=datetime.fromtimestamp(time.time() - 600, UTC)),  # stale
                 {**signed(body), "webhook-signature": "v1,garbage"}]
        for headers in cases:
            response = await http.post("/webhooks", content=body, headers=headers)
            assert response.status_code == 401 and response.json()["error"] == "not_authorised"
        assert await receiver.observer.store.head() == 0


async def test_bad_payloads_are_400_and_the_receiver_keeps_serving(tmp_path: Path) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        for body in (b"{not json", card_body("active", 5, webhookType="card.exploded"),
                     msgspec.json.encode({"webhookType": "authorisation.updated",
                                          "eventId": "x", "id": "h", "amount": 12.5})):
            response = await http.post("/webhooks", content=body, headers=signed(body))
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_request" and response.json()["message"]
        assert await receiver.observer.store.head() == 0
        good = card_body("active", 5)
        assert (await http.post("/webhooks", content=good, headers=signed(good))).status_code == 200
        assert await receiver.observer.store.head() > 0


async def test_a_redelivered_event_is_recorded_once(tmp_path: Path) -> None:
    async with receiving(tmp_path / "l.db") as (receiver, http):
        body = card_body("active", 5, event_id="e-7")
        first = (await http.post("/webhooks", content=body, headers=signed(body))).json()
        head = await receiver.observer.store.head()
        again = (await http.post("/webhooks", content=body, headers=signed(body))).json()
        assert first["recorded"] and not again["recorded"]
        assert await receiver.observer.store.head() == head
        stale = card_body("issuing", 1, event_id="e-8")  # older: recorded, state unmoved
        assert (await http.post("/webhooks", content=stale, headers=signed(stale))).json()[
            "recorded"]
        events = await receiver.observer.store.read_stream("card-c1")
        assert [e.type for e in events][-2:] == ["ObservationReceived", "CardIssuanceStarted"]


async def test_verify_by_fetch_records_what_the_processor_says(tmp_path: Path) -> None:
    box = sandbox()
    async with stack(tmp_path / "l.db", box,
                     api_transport=httpx.ASGITransport(app=box.app)) as s:
        account_id, card_id = await _card(s)
        receiver = WebhookReceiver(s.observer, fetcher=s.client)
        lie = msgspec.json.encode({**msgspec.to_builtins(await s.client.card(card_id)),
                                   "status": "blocked", "webhookType": "card.updated",
                                   "eventId": "unsigned-1"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app),
                                     base_url="http://ledger.test") as http:
            assert (await http.post("/webhooks", content=lie)).status_code == 200
        events = await s.store.read_stream(f"card-{card_id}")
        assert "CardBlocked" not in [e.type for e in events]
        assert events[-1].type == "CardIssued"
        assert getattr(events[-1].payload, "account_id", None) == account_id


async def _card(s: Stack) -> tuple[str, str]:
    from tests.support.sandbox import active_card

    return await active_card(s.client)


async def test_ingest_refuses_a_file_with_bad_lines_whole_unless_told_to_skip(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "l.db") as store:
        observer = Observer(store)
        lines = [card_body("issuing", 1, event_id="a"), b"", b"{oops",
                 card_body("active", 2, event_id="b"), card_body("bogus", 3)]
        with pytest.raises(InvalidDelivery) as refused:
            await ingest_lines(observer, lines)
        assert "line 3:" in str(refused.value) and "line 5:" in str(refused.value)
        assert await store.head() == 0
        report = await ingest_lines(observer, lines, skip_invalid=True)
        assert (report.lines, report.recorded, len(report.skipped)) == (4, 2, 2)
        again = await ingest_lines(observer, lines, skip_invalid=True)
        assert (again.recorded, again.duplicates) == (0, 2)


async def test_pull_sync_twice_records_nothing_new(tmp_path: Path) -> None:
    box = sandbox()
    async with stack(tmp_path / "l.db", box,
                     api_transport=httpx.ASGITransport(app=box.app)) as s:
        _, card_id = await _card(s)
        hold = await s.control.authorise(card_id, Decimal("12"))
        await s.control.capture(hold.id, Decimal("9"))
        first = await pull(s.client, s.observer)
        head = await s.store.head()
        second = await pull(s.client, s.observer)
        assert first.recorded > 0 and second.recorded == 0 and second.fetched == first.fetched
        assert await s.store.head() == head


async def test_a_crash_between_sending_and_recording_creates_no_second_card(
    tmp_path: Path,
) -> None:
    box = sandbox()
    async with stack(tmp_path / "l.db", box,
                     api_transport=httpx.ASGITransport(app=box.app)) as s:
        account_id, card_id = await _card(s)
        await s.client.card_action(card_id, "terminate")
        await pull(s.client, s.observer)
        request = await s.commands.request_card(account_id, ADDRESS)
        assert isinstance(request, CardIssuanceRequested)
        append = s.store.append

        async def crash(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the process died here")

        s.store.append = crash  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError):
            await s.outbox.dispatch()  # the card was created, the outcome not recorded
        s.store.append = append  # type: ignore[method-assign]
        assert len(box.world.cards) == 2
        assert len(await s.outbox.pending()) == 1
        assert await s.outbox.dispatch() == 1  # sent again, with the same key
        assert len(box.world.cards) == 2  # ...and the processor did nothing twice
        assert await s.outbox.pending() == []


async def test_logs_never_carry_tokens_secrets_or_signatures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = sandbox()
    with caplog.at_level(logging.DEBUG, logger="cardledger"):
        async with stack(tmp_path / "l.db", box,
                         api_transport=httpx.ASGITransport(app=box.app)) as s:
            await _card(s)
            token = s.client._token
    logs = [(r.name, r.getMessage(), r.fields) for r in caplog.records]  # type: ignore[attr-defined]
    text = repr(logs)
    assert len(logs) > 3 and token
    assert "cardledger.processor" in {name for name, *_ in logs}
    for secret in (token, box.credentials.api_secret, "Bearer", "sig1=", "webhook-signature"):
        assert secret not in text


async def test_a_fresh_observer_on_an_existing_entity_decides_on_the_logs_state(
    tmp_path: Path,
) -> None:
    """An observer with nothing in memory (a restart, another instance) first takes an entity
    to be new; the store's version check refuses that guess, and it decides again on the
    state in the log: the older report is recorded as stale, the card stays inactive."""
    async with open_store(tmp_path / "l.db") as store:
        first = Observer(store)
        await first.record(msgspec.json.decode(card_body("active", 5), type=CardSnapshot))
        await first.record(msgspec.json.decode(card_body("inactive", 9), type=CardSnapshot))
        restarted = Observer(store)
        result = await restarted.record(msgspec.json.decode(card_body("active", 7),
                                                            type=CardSnapshot))
        assert result is not None and not result.duplicate
        events = await store.read_stream("card-c1")
        last = events[-1].payload
        assert events[-1].type == "CardActivated" and getattr(last, "stale", False)
        assert [e.type for e in events].count("CardIssuanceStarted") == 1
        assert await restarted.record(msgspec.json.decode(card_body("active", 7),
                                                          type=CardSnapshot)) is None
