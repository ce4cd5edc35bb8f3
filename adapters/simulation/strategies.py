"""Hypothesis strategies for simulation schedules: a test that runs ``simulate`` on them gets
hypothesis's search and its shrinking, down to the few steps that break an invariant.

    @given(replay=replays())
    @settings(max_examples=20, deadline=None)
    async def test_my_ledger_survives(replay):
        outcome = await simulate(replay)
        assert outcome.ok, explain(replay, outcome)
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from adapters.simulation import schedule as s
from adapters.simulation.run import Outcome

_index = st.integers(0, 7)
_cents = st.integers(100, 40_000)

_KINDS: dict[str, tuple[int, st.SearchStrategy[s.AnyStep]]] = {
    # name: (how often, relative to the others, as a real programme sees it; the step)
    "deliver": (8, st.builds(s.Deliver, st.integers(0, 3),
                             st.sampled_from(("ok", "duplicate", "drop")))),
    "authorise": (4, st.builds(s.Authorise, _index, _cents)),
    "capture": (3, st.builds(s.Capture, _index, st.sampled_from(("full", "part", "over")))),
    "dispatch": (2, st.builds(s.Dispatch)),
    "settle": (2, st.builds(s.Settle, _index)),
    "advance": (2, st.builds(s.Advance, st.integers(60, 32 * s.DAY))),
    "fault": (2, st.builds(s.Fault, st.sampled_from(("429", "409", "503", "timeout-before",
                                                     "500-after", "timeout-after")))),
    "crash": (1, st.builds(s.Crash, st.sampled_from(("now", "before-append", "after-append",
                                                     "after-send")))),
    "release": (1, st.builds(s.Release, _index)),
    "late": (1, st.builds(s.LatePresentment, _index)),
    "amend": (1, st.builds(s.Amend, _index, _cents)),
    "reverse": (1, st.builds(s.Reverse, _index)),
    "refund": (1, st.builds(s.Refund, _index, st.integers(10, 100))),
    "force": (1, st.builds(s.ForcePost, _index, _cents)),
    "terminate": (1, st.builds(s.Terminate, _index)),
    "deposit": (1, st.builds(s.Deposit, _index, _cents)),
    "withdraw": (1, st.builds(s.Withdraw, _index, _cents)),
    "card": (1, st.builds(s.RequestCard, _index)),
    "issue": (1, st.builds(s.Issue, _index)),
    "pull": (1, st.builds(s.Pull)),
    "sweep": (1, st.builds(s.Sweep)),
    "onboard": (1, st.builds(s.Onboard, st.integers(1, 3))),
    "customer": (1, st.builds(s.NewCustomer)),
    "verify": (1, st.builds(s.Verify, _index)),
    "account": (1, st.builds(s.OpenAccount, _index)),
    "heal": (1, st.builds(s.Heal)),
}
STEPS: st.SearchStrategy[s.AnyStep] = st.sampled_from(
    [name for name, (often, _) in _KINDS.items() for _ in range(often)]).flatmap(
    lambda name: _KINDS[name][1])
"""Any one step, as often as ``_KINDS`` says; shrinking favours the first kinds."""


@st.composite
def replays(draw: Any, max_steps: int = 120, planted: str | None = None) -> s.Replay:
    """A seed and up to ``max_steps`` steps, starting with an ``Onboard``; both shrink, so a
    failure ends as the few steps it needs."""
    seed = draw(st.integers(0, 2**32 - 1))
    first = draw(st.builds(s.Onboard, st.integers(1, 3)))
    return s.Replay(seed, [first, *draw(st.lists(STEPS, max_size=max_steps))], planted)


def explain(replay: s.Replay, outcome: Outcome) -> str:
    """A failure, readably: what broke, the timeline, and the command that replays it."""
    return (f"{outcome.failure} (after step {outcome.failed_at})\n"
            f"{s.timeline(replay.steps, outcome.outcomes)}\n"
            f"replay: cardledger simulate --replay {outcome.token}")
