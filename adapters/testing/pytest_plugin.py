"""cardledger's pytest plugin (registered under ``pytest11``: installing cardledger is enough).

Fixtures, for tests run by anyio's pytest plugin (``pytestmark = pytest.mark.anyio``):

- ``ledger_clock``: a ``ManualClock`` at the start of the current second; move it with
  ``advance`` and the ledger's holds expire, its outbox backs off, on that time;
- ``card_ledger``: a ``CardLedger`` on a temporary SQLite file, on ``ledger_clock``;
- ``processor_sandbox``: the processor sandbox wired to ``card_ledger``
  (``adapters.testing.sandboxed.SandboxedProcessor``): requests go to its API, its webhooks
  are delivered to the ledger's receiver in process; ``await processor_sandbox.settle()``;
- ``simulation``: ``await simulation(seed)`` (or a ``Replay``) runs the whole-system
  simulation and fails the test, with the timeline and the replay token, on a broken
  invariant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.service.card_ledger import CardLedger
from adapters.simulation import Outcome, Replay, seeded, simulate
from adapters.simulation.strategies import explain
from adapters.testing.sandboxed import SandboxedProcessor, sandboxed
from ledger.clock import ManualClock, utc_now

Simulate = Callable[..., Awaitable[Outcome]]


@pytest.fixture
def ledger_clock() -> ManualClock:
    return ManualClock(utc_now().replace(microsecond=0))


@pytest.fixture
async def card_ledger(tmp_path: Path, ledger_clock: ManualClock) -> AsyncIterator[CardLedger]:
    async with CardLedger.open(tmp_path / "card-ledger.db", clock=ledger_clock) as ledger:
        yield ledger


@pytest.fixture
async def processor_sandbox(card_ledger: CardLedger, ledger_clock: ManualClock,
                            ) -> AsyncIterator[SandboxedProcessor]:
    async with sandboxed(card_ledger, ledger_clock) as wired:
        yield wired


@pytest.fixture
def simulation(tmp_path: Path) -> Simulate:
    runs = iter(range(1 << 30))

    async def run(seed: int | Replay, steps: int = 300, planted: str | None = None) -> Outcome:
        """Run ``seed``'s schedule of ``steps`` (or a ``Replay``); fail the test on a broken
        invariant."""
        replay = seed if isinstance(seed, Replay) else seeded(seed, steps, planted)
        directory = tmp_path / f"simulation-{next(runs)}"
        directory.mkdir()
        outcome = await simulate(replay, directory)
        if not outcome.ok:
            pytest.fail(explain(replay, outcome), pytrace=False)
        return outcome

    return run
