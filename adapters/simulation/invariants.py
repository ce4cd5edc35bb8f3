"""What must hold after any mix of faults. Each check raises ``Violation`` naming the
invariant and what broke it; the simulator counts how often each one was checked."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Protocol

from adapters.processor.outbox import Outbox
from adapters.sandbox.world import World
from adapters.service.card_ledger import CardLedger
from adapters.simulation.network import Mailbox
from ledger.clock import ManualClock
from ledger.events import ObservationReceived
from projections.replay import stored_drift


class Simulation(Protocol):
    """What the checks look at: the simulator's ledger, the processor's world, the webhooks
    sent, the clock and the transfers not recorded yet."""

    ledger: CardLedger
    world: World
    mailbox: Mailbox
    clock: ManualClock
    checks: Counter[str]
    unrecorded: list[tuple[str, str, Decimal, str]]

CAPTURE_WINDOW = timedelta(days=30)
"""The processor's rule, stated here on its own: not the ledger's policy, which a planted
bug may have changed."""
FIGURES = ("deposits", "debits", "credits", "posted", "held", "available")


class Violation(AssertionError):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant


async def check_all(sim: Simulation) -> None:
    for name, check in (("deliveries exactly once", check_deliveries),
                        ("books equal the processor's", check_books),
                        ("capture window", check_capture_window),
                        ("projection equals replay", check_replay),
                        ("verify passes", check_chain),
                        ("outbox empty", check_outbox)):
        sim.checks[name] += 1
        await check(sim)


async def check_deliveries(sim: Simulation) -> None:
    """Every delivery answered 2xx is in the log exactly once (its marker)."""
    markers: Counter[str] = Counter()
    async for stored in sim.ledger.store.read_all(types=["ObservationReceived"]):
        assert isinstance(stored.payload, ObservationReceived)
        markers[stored.payload.event_id] += 1
    for event_id in sim.mailbox.acknowledged:
        if markers[event_id] != 1:
            raise Violation("deliveries exactly once", f"webhook {event_id} was answered 2xx "
                            f"and is in the log {markers[event_id]} times")
    twice = [e for e, n in markers.items() if n > 1]
    if twice:
        raise Violation("deliveries exactly once", f"webhook {twice[0]} is in the log "
                        f"{markers[twice[0]]} times")


async def check_books(sim: Simulation) -> None:
    """Every account's figures equal the processor's own books, and every money movement
    the processor made is recorded."""
    if sim.unrecorded:
        kind, account_id, amount, _ = sim.unrecorded[0]
        raise Violation("books equal the processor's", f"{kind} of {amount} to {account_id} "
                        "never recorded: the ledger does not know the account")
    known = set(sim.ledger.runner.account_ids())
    for account_id in sim.world.accounts:
        truth = sim.world.balance(account_id)
        if account_id not in known:
            raise Violation("books equal the processor's", f"account {account_id} is not "
                            "in the ledger")
        ours = {b.currency: b for b in await sim.ledger.balances(account_id)}
        mine = ours.get(truth.currency)
        for figure in FIGURES:
            expected = Decimal(getattr(truth, figure))
            found = getattr(mine, figure) if mine is not None else Decimal(0)
            if found != expected:
                raise Violation("books equal the processor's", f"account {account_id} "
                                f"{figure} {found} in the ledger, {expected} at the processor")


async def check_capture_window(sim: Simulation) -> None:
    """No hold on a terminated card is held past 30 days after the termination: as of the
    moment the window closed, and as of now."""
    now = sim.clock()
    known = set(sim.ledger.runner.account_ids())
    for card_id, terminated in sim.world.terminated_at.items():
        account_id, closes = sim.world.cards[card_id].account_id, terminated + CAPTURE_WINDOW
        if now < closes or account_id not in known:
            continue
        for moment in (closes, now):
            for hold in await sim.ledger.holds(account_id, as_of=moment):
                if hold.card_id == card_id and hold.remaining > 0:
                    raise Violation("capture window", f"hold {hold.authorisation_id} holds "
                                    f"{hold.remaining} as of {moment:%Y-%m-%d %H:%M} on card "
                                    f"{card_id}, terminated {terminated:%Y-%m-%d %H:%M}")


async def check_replay(sim: Simulation) -> None:
    """The stored projection equals a full replay of the log."""
    found = await stored_drift(sim.ledger.store, sim.ledger.runner)
    if found:
        raise Violation("projection equals replay", f"{len(found)} rows differ: {found[0]}")


async def check_chain(sim: Simulation) -> None:
    report = await sim.ledger.store.verify()
    if not report.ok:
        raise Violation("verify passes", f"position {report.first_bad_position}: "
                        f"{report.reason}")


async def check_outbox(sim: Simulation) -> None:
    """Nothing the ledger acknowledged is left unsent: every request has an outcome."""
    pending = await Outbox(sim.ledger.store, None, clock=sim.clock).pending()
    if pending:
        raise Violation("outbox empty", f"{len(pending)} request(s) acknowledged and never "
                        f"sent, the first {pending[0].type} at position {pending[0].position}")
