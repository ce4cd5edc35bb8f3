"""The whole-system simulation's speed: seeds of 300 steps a minute, and steps a second,
beside the seeded end-to-end scenario the suite ran before it (``adapters.testing.scenario``
with every sandbox fault on, 25 payments: what ``tests/adapters/test_end_to_end.py`` runs),
timed in the same run. The scenario waits for real (webhook retries, the client's backoff);
the simulation waits for nothing."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio
import httpx

from adapters.sandbox import Faults, Sandbox, SandboxConfig
from adapters.simulation import seeded, simulate
from adapters.testing.scenario import ScenarioConfig, run, stack
from benchmarks.harness import Figure, benchmark

HOOKS = ["customer.updated", "account.updated", "card.updated", "authorisation.updated",
         "transaction.updated"]


async def _simulations(seeds: int, steps: int) -> float:
    started = time.perf_counter()
    for seed in range(seeds):
        outcome = await simulate(seeded(seed, steps))
        assert outcome.ok, outcome.failure
    return time.perf_counter() - started


async def _scenarios(seeds: int) -> float:
    started = time.perf_counter()
    for seed in range(1, seeds + 1):
        box = Sandbox(SandboxConfig(seed=seed, faults=Faults.chaos()))
        with tempfile.TemporaryDirectory() as directory:
            async with stack(Path(directory) / "l.db", box,
                             api_transport=httpx.ASGITransport(app=box.app)) as s, \
                    box.delivering(transport=httpx.ASGITransport(app=s.receiver.app)):
                await s.client.subscribe_webhooks("http://ledger.test/webhooks", HOOKS)
                await run(s, ScenarioConfig(seed=seed, customers=2, payments=25))
    return time.perf_counter() - started


@benchmark("simulation")
def simulation_figures(quick: bool) -> list[Figure]:
    seeds, steps = (3, 300) if quick else (60, 300)
    baseline_seeds = 2 if quick else 10
    simulated = anyio.run(_simulations, seeds, steps)
    scenario = anyio.run(_scenarios, baseline_seeds)
    return [
        Figure("simulation.seeds_per_minute", seeds / simulated * 60, "seeds/min",
               "scenario seeds/min", baseline_seeds / scenario * 60,
               f"goal: 20 seeds of {steps} steps a minute; the baseline is the end-to-end "
               "scenario with every fault on (25 payments a seed)"),
        Figure("simulation.steps_per_second", seeds * steps / simulated, "steps/s",
               "scenario payments/s", baseline_seeds * 25 / scenario,
               "every step checked; invariants at each time jump and at quiescence"),
    ]
