"""A deterministic simulation of a whole card programme (what TigerBeetle calls a VOPR).

One seed drives the processor's world, the network, crashes and the clock. A real ledger
on a SQLite file lives through it, and after every fault the invariants must hold::

    outcome = await simulate(seeded(7))
    assert outcome.ok, outcome.failure

``schedules()`` draws schedules with hypothesis, so a failure shrinks to a short one.
Every outcome carries a replay token: ``cardledger simulate --replay TOKEN`` runs it again.
"""

from adapters.simulation.invariants import Violation
from adapters.simulation.planted import PLANTED, Planted
from adapters.simulation.run import Outcome, Simulation, seeded, simulate
from adapters.simulation.schedule import Replay, draw, from_token, timeline, token

__all__ = ["PLANTED", "Outcome", "Planted", "Replay", "Simulation", "Violation", "draw",
           "from_token", "seeded", "simulate", "timeline", "token"]
