"""The one webhook path (``adapters.webhooks.intake``) without HTTP, on a real SQLite file:
bytes and headers to a recorded position, a typed refusal that writes nothing, and each
delivery's snapshot checked once (the HTTP app and the archive are tested over it in
``test_sync``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.processor import deliveries, observer
from adapters.processor.deliveries import InvalidDelivery
from adapters.processor.observer import Observer
from adapters.webhooks.intake import BadSignatureError, WebhookIntake
from ledger import open_store
from ledger.errors import UnauthorisedError
from ledger.observations import check_rules, check_snapshot
from tests.support.webhooks import SECRET, card_body, signed

pytestmark = pytest.mark.anyio


async def test_bytes_to_a_recorded_position_once(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        intake = WebhookIntake(Observer(store), secret=SECRET)
        body = card_body("active", 1)
        first = await intake.take(body, signed(body))
        assert first.recorded and first.position == await store.head()
        again = await intake.take(body, signed(body))
        assert not again.recorded and await store.head() == first.position


async def test_refusals_are_typed_and_write_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        intake = WebhookIntake(Observer(store), secret=SECRET)
        body = card_body("active", 1)
        with pytest.raises(BadSignatureError) as refused:
            await intake.take(body, {"content-type": "application/json"})
        assert isinstance(refused.value, UnauthorisedError)
        bad = card_body("bogus", 1)
        with pytest.raises(InvalidDelivery, match="status"):
            await intake.take(bad, signed(bad))
        assert await store.head() == 0


async def test_a_delivery_is_checked_once(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(name: str, check: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def counted(snapshot: Any, now: Any) -> None:
            calls.append(name)
            check(snapshot, now)
        return counted

    # Decoding checks what the types say; the rules no type can say are checked after it.
    monkeypatch.setattr(deliveries, "check_rules", spy("rules", check_rules))
    monkeypatch.setattr(observer, "check_snapshot", spy("snapshot", check_snapshot))
    async with open_store(tmp_path / "ledger.db") as store:
        intake = WebhookIntake(Observer(store), secret=SECRET)
        body = card_body("active", 1)
        await intake.take(body, signed(body))
        assert calls == ["rules"]
