"""The whole-system simulation: its default run holds every invariant, one seed writes one
log byte for byte, every planted bug is caught within the default run, and a failure shrinks
to a short schedule whose token replays it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, find, given, settings

from adapters.simulation import PLANTED, Outcome, Replay, from_token, seeded, simulate, token
from adapters.simulation.schedule import BadTokenError, Deliver, Dispatch, NewCustomer
from adapters.simulation.strategies import explain, replays
from tests.simulation.regressions import REGRESSIONS

pytestmark = pytest.mark.anyio
SEEDS = int(os.environ.get("CARDLEDGER_SIM_SEEDS", "20"))
"""The default run; CI runs a longer one (``cardledger simulate --seeds 200``)."""
STEPS = 300


def _same(outcome: Outcome) -> dict[str, object]:
    fields = msgspec.to_builtins(outcome)
    fields.pop("seconds")
    return dict(fields)


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_every_invariant_holds(seed: int) -> None:
    replay = seeded(seed, STEPS)
    outcome = await simulate(replay)
    assert outcome.ok, explain(replay, outcome)
    assert sum(outcome.invariants.values()) >= 6  # the final check, at least, ran each one


def _log(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT * FROM events ORDER BY position").fetchall()


async def test_one_seed_writes_one_log_byte_for_byte(tmp_path: Path) -> None:
    replay = seeded(11, STEPS)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await simulate(replay, tmp_path / "a")
    second = await simulate(replay, tmp_path / "b")
    assert first.ok and first.head_hash is not None
    assert _same(first) == _same(second)
    rows = _log(tmp_path / "a" / "ledger.db")
    assert len(rows) > 100
    assert rows == _log(tmp_path / "b" / "ledger.db")


def test_the_json_summary_is_the_same_in_two_processes_with_other_hash_seeds() -> None:
    """No hidden randomness, not even str hashing: only the duration differs."""
    def summary(hash_seed: str) -> dict[str, object]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "cardledger"), "simulate", "--seed", "4", "--json"],
            capture_output=True, check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        fields = msgspec.json.decode(done.stdout)
        assert fields.pop("seconds") > 0
        return dict(fields)

    first, second = summary("1"), summary("2")
    assert first == second
    assert first["ok"] and first["faults"] and first["head_hash"]


def _caught_at(planted: str) -> int | None:
    async def search() -> int | None:
        for seed in range(SEEDS):
            if not (await simulate(seeded(seed, STEPS, planted))).ok:
                return seed
        return None
    return anyio.run(search)


@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_every_planted_bug_is_caught_within_the_default_run(planted: str) -> None:
    seed = _caught_at(planted)
    assert seed is not None, f"{planted} survived {SEEDS} seeds of {STEPS} steps"
    print(f"{planted}: caught at seed {seed}")


def test_a_failure_shrinks_to_a_few_steps_and_its_token_replays_it() -> None:
    """Hypothesis searches schedules against a ledger whose dedupe is off, and shrinks."""
    def broken(replay: Replay) -> bool:
        return not anyio.run(simulate, replay).ok

    found = find(replays(max_steps=30, planted="dedupe-off"), broken,
                 settings=settings(max_examples=100, deadline=None, database=None, derandomize=True,
                                   suppress_health_check=list(HealthCheck)))
    assert len(found.steps) <= 12, found.steps
    assert any(isinstance(step, Deliver) and step.fate == "duplicate" for step in found.steps)
    again = anyio.run(simulate, from_token(token(found)))
    assert not again.ok and again.failure is not None
    assert again.failure.startswith("deliveries exactly once")


@given(replay=replays(max_steps=60))
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_schedules_hypothesis_draws_hold_every_invariant(replay: Replay) -> None:
    outcome = await simulate(replay)
    assert outcome.ok, explain(replay, outcome)


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
async def test_regression_examples(name: str) -> None:
    """Failures found before, kept: each still fails against its planted bug, and holds
    against the real ledger."""
    replay = from_token(REGRESSIONS[name])
    assert replay.planted is not None
    broken = await simulate(replay)
    assert not broken.ok
    fixed = await simulate(Replay(replay.seed, replay.steps))
    assert fixed.ok, explain(replay, fixed)


def test_a_token_that_is_not_one_is_refused() -> None:
    for text in ("", "cl1.", "cl1.!!!", "cl1." + "A" * 40, "cl0.eNqrVgcAAOsA1Q"):
        with pytest.raises(BadTokenError):
            from_token(text)
    replay = Replay(3, [NewCustomer(), Dispatch()])
    assert from_token(token(replay)) == replay
