"""End to end: a whole programme against the sandbox with its faults on; after quiescence the
ledger's balances equal the sandbox's, reconciliation finds nothing, nothing happened twice."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from adapters.sandbox import Faults
from adapters.testing.scenario import ScenarioConfig, compare, run, stack
from ledger.events import CardIssuanceRequested, CustomerRegistrationRequested
from tests.support.sandbox import sandbox

pytestmark = pytest.mark.anyio
HOOKS = ["customer.updated", "account.updated", "card.updated", "authorisation.updated",
         "transaction.updated"]
SEEDS = int(os.environ.get("CARDLEDGER_E2E_SEEDS", "20"))


async def converge(tmp_path: Path, seed: int, faults: Faults, payments: int = 25) -> None:
    box = sandbox(seed=seed, faults=faults)
    async with stack(tmp_path / f"ledger-{seed}.db", box,
                     api_transport=httpx.ASGITransport(app=box.app)) as s, \
            box.delivering(transport=httpx.ASGITransport(app=s.receiver.app)):
        await s.client.subscribe_webhooks("http://ledger.test/webhooks", HOOKS)
        await run(s, ScenarioConfig(seed=seed, customers=2, payments=payments))
        comparisons, differences = await compare(s)
        counts: dict[type, int] = {CardIssuanceRequested: 0, CustomerRegistrationRequested: 0}
        async for event in s.store.read_all(types=["CardIssuanceRequested",
                                                   "CustomerRegistrationRequested"]):
            counts[type(event.payload)] += 1
    for comparison in comparisons:
        assert comparison.equal, comparison
    assert differences == []
    # No remote side effect twice: one customer and one card per request, whatever retried.
    assert len(box.world.customers) == counts[CustomerRegistrationRequested]
    assert len(box.world.cards) == counts[CardIssuanceRequested]
    assert box.webhooks.abandoned == 0


async def test_without_faults(tmp_path: Path) -> None:
    await converge(tmp_path, 0, Faults(), payments=40)


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
async def test_with_every_fault_on(tmp_path: Path, seed: int) -> None:
    await converge(tmp_path, seed, Faults.chaos())
