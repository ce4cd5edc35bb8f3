"""The client process killed mid-sync, again and again: the ledger still converges."""

from __future__ import annotations

import random
import signal
import sys
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from adapters.processor.reconcile import reconcile
from adapters.processor.sync import pull
from adapters.testing.scenario import stack
from adapters.testing.servers import free_port, serving
from tests.support.sandbox import active_card, sandbox

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def _payments(control: object, card_id: str, rng: random.Random) -> None:
    from adapters.processor.client import SandboxControl

    assert isinstance(control, SandboxControl)
    for _ in range(15):
        hold = await control.authorise(card_id, Decimal(rng.randrange(100, 3000)) / 100)
        if rng.random() < 0.7:
            await control.capture(hold.id)
            await control.settle(hold.id)


@pytest.mark.slow
async def test_sync_converges_after_the_client_is_killed_mid_sync(tmp_path: Path) -> None:
    box, rng, port = sandbox(seed=9), random.Random(9), free_port()
    url, db = f"http://127.0.0.1:{port}", tmp_path / "ledger.db"
    async with serving(box.app, port), stack(db, box, base_url=url) as s:
        for _ in range(3):
            _, card_id = await active_card(s.client, funds="900")
            await _payments(s.control, card_id, rng)
        for _kill in range(3):
            async with await anyio.open_process(
                    [sys.executable, "-m", "tests.adapters.sync_child", str(db), url,
                     box.credentials.api_key, box.credentials.api_secret], cwd=ROOT) as child:
                assert child.stdout is not None
                assert (await child.stdout.receive()).startswith(b"ready")
                await anyio.sleep(rng.uniform(0.05, 0.4))
                child.send_signal(signal.SIGKILL)
                assert await child.wait() == -signal.SIGKILL
            await _payments(s.control, card_id, rng)  # the processor moves on meanwhile
        await pull(s.client, s.observer)
        assert await reconcile(s.store, s.client) == []
        assert (await pull(s.client, s.observer)).recorded == 0
        assert (await s.store.verify()).ok
