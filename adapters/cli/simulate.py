"""``cardledger simulate``: run the whole-system simulation (``adapters.simulation``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import click
import msgspec

from adapters.cli import output
from adapters.simulation import (
    PLANTED,
    Outcome,
    Replay,
    from_token,
    seeded,
    timeline,
)
from adapters.simulation import (
    simulate as run_simulation,
)
from adapters.simulation.schedule import BadTokenError
from adapters.simulation.shrink import shrink

HELP = """Run a card programme through a real ledger and the sandbox, with faults, crashes and
time jumps drawn from a seed, checking invariants throughout.

\b
A SEED gives the whole run: the programme, the network (webhooks dropped, sent twice, out of
order; client calls answered 429, 409 or 5xx, or timing out before or after the work), the
crashes (the ledger killed at an append or after a request, and restarted from its database
file) and the virtual clock. Two runs of one seed write the same log, byte for byte.

\b
Invariants: every webhook answered 2xx is in the log exactly once; once the network heals
and a pull runs, every account's figures equal the processor's own; no hold on a terminated
card is held 30 days after the termination; the projection equals a full replay; the hash
chain verifies; the outbox holds nothing acknowledged and unsent; a healed network gets
every webhook answered 2xx; every error is typed.

\b
A failure is shrunk to a short schedule and printed as a timeline with a replay token:
cardledger simulate --replay TOKEN runs exactly that schedule again.
Exit status: 0 every invariant held, 1 one broke, 2 bad usage."""


@click.command(name="simulate", help=HELP)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63),
              help="The seed (with --seeds, the first of them).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 1_000_000),
              help="How many seeds to run, one after the other.")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(1, 100_000),
              help="Steps per seed.")
@click.option("--replay", "replay_token", help="Run the schedule of a replay token.")
@click.option("--planted", type=click.Choice(sorted(PLANTED)),
              help="Run against a deliberately broken ledger (to see it caught).")
@click.option("--shrink/--no-shrink", "shrinking", default=True, show_default=True,
              help="Shrink a failure to a short schedule.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON summary per seed (head hash, events, invariants, faults).")
def simulate(seed: int, seeds: int, steps: int, replay_token: str | None,
             planted: str | None, shrinking: bool, as_json: bool) -> None:
    if replay_token is not None:
        try:
            replays = [from_token(replay_token)]
        except BadTokenError as exc:
            raise click.BadParameter(str(exc), param_hint="--replay") from None
        shrinking = False  # a token is what to reproduce, exactly
    else:
        replays = [seeded(n, steps, planted) for n in range(seed, seed + seeds)]
    raise SystemExit(anyio.run(_run_all, replays, shrinking, as_json))


async def _run_all(replays: list[Replay], shrinking: bool, as_json: bool) -> int:
    # The faults are injected on purpose: the ledger's warnings about them are expected, and
    # what matters is reported by the invariants.
    logging.getLogger("cardledger").setLevel(logging.ERROR)
    started, checks, steps = time.perf_counter(), 0, 0
    with output.progress("simulating", len(replays), len(replays) > 1 and not as_json) as done:
        for replay in replays:
            outcome = await run_simulation(replay)
            if as_json:
                output.emit_json(summary(outcome))
            if not outcome.ok:
                await _report_failure(replay, outcome, shrinking)
                return 1
            checks += sum(outcome.invariants.values())
            steps += outcome.steps
            done(1)
    elapsed = time.perf_counter() - started
    if not as_json:
        click.echo(f"{len(replays)} seed(s), {steps} steps: every invariant held "
                   f"({checks} checks) in {elapsed:.1f} s, "
                   f"{len(replays) / elapsed * 60:.0f} seeds/min, {steps / elapsed:.0f} steps/s")
    return 0


def summary(outcome: Outcome) -> dict[str, Any]:
    """The outcome without its per-step timeline."""
    fields = msgspec.to_builtins(outcome)
    fields.pop("outcomes")
    return dict(fields)


async def _report_failure(replay: Replay, outcome: Outcome, shrinking: bool) -> None:
    click.echo(f"seed {replay.seed}: FAILED after step {outcome.failed_at}: {outcome.failure}",
               err=True)
    if shrinking and len(replay.steps) > 1:
        click.echo("shrinking...", err=True)
        replay, outcome = await shrink(replay, outcome)
        click.echo(f"shrunk to {len(replay.steps)} steps: {outcome.failure}", err=True)
    click.echo(timeline(replay.steps, outcome.outcomes), err=True)
    click.echo(f"replay: cardledger simulate --replay {outcome.token}", err=True)
