"""Make a failing schedule short: drop steps while the same invariant still breaks.

Delta debugging over the step list (halves, then quarters, down to single steps), with the
seed kept: what the command line uses on a seed's failure. Tests drive schedules from
hypothesis instead (``adapters.simulation.strategies``), which shrinks them itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.simulation.run import Outcome, simulate
from adapters.simulation.schedule import Replay

Runner = Callable[[Replay], Awaitable[Outcome]]


async def shrink(replay: Replay, failed: Outcome, *, budget: int = 300,
                 run: Runner = simulate) -> tuple[Replay, Outcome]:
    """The shortest schedule found (within ``budget`` runs) that breaks the invariant
    ``failed`` broke, and its outcome."""
    assert not failed.ok and failed.failure is not None
    invariant = failed.failure.split(":")[0]
    best, outcome = _cut(replay, failed), failed
    chunk = max(1, len(best.steps) // 2)
    while chunk >= 1 and budget > 0:
        start, shrunk = 0, False
        while start < len(best.steps) and budget > 0:
            candidate = Replay(best.seed, best.steps[:start] + best.steps[start + chunk:],
                               best.planted)
            budget -= 1
            tried = await run(candidate)
            if not tried.ok and (tried.failure or "").split(":")[0] == invariant:
                best, outcome, shrunk = _cut(candidate, tried), tried, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return best, outcome


def _cut(replay: Replay, outcome: Outcome) -> Replay:
    """Nothing after the step where it failed matters."""
    assert outcome.failed_at is not None
    return Replay(replay.seed, replay.steps[:outcome.failed_at + 1], replay.planted)
