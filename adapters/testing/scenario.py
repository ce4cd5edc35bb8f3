"""A seeded, realistic card programme run against the sandbox, end to end.

The back office registers customers, opens accounts, records deposits and requests cards
through the outbox; the sandbox verifies and issues them; then payments: authorisations
captured in full, in part or above the hold, released, or left pending; settlements,
reversals and refunds; a card terminated with holds pending (one captured within its 30-day
window); the clock moved past 30 days. The ledger learns everything through webhooks (with
the sandbox's faults, if any) and pull sync. ``settle()`` then waits for quiescence, and
``compare()`` puts the ledger's balances beside the sandbox's own.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import msgspec

from adapters.processor.client import ClientConfig, ProcessorClient, SandboxControl, new_signing_key
from adapters.processor.errors import Conflict, Refused
from adapters.processor.observer import Observer
from adapters.processor.outbox import Outbox
from adapters.processor.reconcile import Difference, reconcile
from adapters.processor.sync import pull
from adapters.sandbox import Sandbox
from adapters.service.card_ledger import CardLedger
from adapters.service.commands import Commands
from adapters.service.sweeper import sweep
from adapters.webhooks.receiver import WebhookReceiver
from ledger.events import RequestAccepted
from ledger.logs import get_logger
from ledger.observations import Address
from ledger.store import EventStore
from projections import ProjectionRunner

log = get_logger("scenario")
ADDRESS = Address(first_line="1 Test Avenue", city="London", country="GB", post_code="SW1 1AA")
DAY = 86_400


class ScenarioConfig(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    customers: int = 3
    payments: int = 60
    deposit: Decimal = Decimal("5000")


@dataclass
class Stack:
    """A ledger wired to a processor (the sandbox): everything a programme needs."""

    store: EventStore
    sandbox: Sandbox
    client: ProcessorClient
    runner: ProjectionRunner
    observer: Observer
    receiver: WebhookReceiver
    outbox: Outbox
    commands: Commands
    control: SandboxControl
    accounts: list[str] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    approved: int = 0
    declined: int = 0


@asynccontextmanager
async def stack(db: Path, sandbox: Sandbox, *, base_url: str = "http://sandbox.test",
                api_transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[Stack]:
    config = ClientConfig(base_url=base_url, api_key=sandbox.credentials.api_key,
                          api_secret=sandbox.credentials.api_secret, deadline=60.0)
    async with ProcessorClient(config, new_signing_key(), transport=api_transport) as client:
        await client.register_signing_key()
        # The front door, as a service opens it; snapshots are checked against the
        # simulated world's time.
        async with CardLedger.open(str(db), processor=client,
                                   clock=sandbox.clock.now) as ledger:
            yield Stack(ledger.store, sandbox, client, ledger.runner, ledger.observer,
                        WebhookReceiver(ledger.observer, secret=sandbox.webhooks.secret,
                                        problems=ledger.problems),
                        Outbox(ledger.store, client), ledger.commands, SandboxControl(client))


async def _push(s: Stack) -> dict[str, str]:
    """Send what the outbox holds; the remote id each request produced, by request id."""
    await s.outbox.dispatch()
    accepted = {}
    async for event in s.store.read_all(types=["RequestAccepted"]):
        assert isinstance(event.payload, RequestAccepted)
        if event.payload.remote_id:
            accepted[str(event.payload.request_id)] = event.payload.remote_id
    return accepted


async def settle(s: Stack) -> None:
    """Quiescence: webhooks delivered, pull sync, expiries swept, projections caught up."""
    await s.sandbox.webhooks.drain()
    await s.runner.catch_up()
    await pull(s.client, s.observer, [h.authorisation_id for h in s.runner.live_holds()])
    await sweep(s.runner, now=s.sandbox.clock.now())
    await s.runner.catch_up()


async def run(s: Stack, config: ScenarioConfig) -> None:
    rng = random.Random(config.seed)
    registrations = [await s.commands.register_customer(f"cust-{config.seed}-{n}",
                                                        f"eip155:324:0x{n:040x}")
                     for n in range(config.customers)]
    remote = await _push(s)
    for event in registrations:
        await s.control.verify_customer(remote[str(event.request_id)])
    await settle(s)
    openings = [await s.commands.open_account(remote[str(e.request_id)], "EUR")
                for e in registrations]
    remote = await _push(s)
    s.accounts = [remote[str(e.request_id)] for e in openings]
    await settle(s)
    for n, account_id in enumerate(s.accounts):
        await s.control.deposit(account_id, config.deposit)
        await s.commands.record_deposit(account_id, config.deposit, "EUR",
                                        f"eip155:324:0x{config.seed:x}{n:04x}")
    requests = [await s.commands.request_card(a, ADDRESS) for a in s.accounts]
    remote = await _push(s)
    s.cards = [remote[str(e.request_id)] for e in requests]
    for card_id in s.cards:
        await s.control.issue_card(card_id)
    await settle(s)
    await _payments(s, rng, config.payments)
    await _terminate_with_holds_pending(s, rng)
    await s.control.advance_clock(31 * DAY)
    await settle(s)


async def _payments(s: Stack, rng: random.Random, count: int) -> None:
    """Each card pays in its own task (its own seeded RNG), so their waits overlap."""
    seeds = [rng.getrandbits(64) for _ in s.cards]
    async with anyio.create_task_group() as group:
        for n, (card_id, seed) in enumerate(zip(s.cards, seeds, strict=True)):
            share = count // len(s.cards) + (n < count % len(s.cards))
            group.start_soon(_card_payments, s, card_id, random.Random(seed), share)


async def _card_payments(s: Stack, card_id: str, rng: random.Random, count: int) -> None:
    debits: list[str] = []
    for _ in range(count):
        amount = Decimal(rng.randrange(100, 20_000)) / 100
        try:
            hold = await s.control.authorise(card_id, amount)
        except Refused:
            s.declined += 1
            continue  # declined: no authorisation exists
        s.approved += 1
        action = rng.choices(["full", "partial", "over", "release", "pending"],
                             weights=[5, 2, 1, 2, 2])[0]
        if action == "release":
            await s.control.release(hold.id)
        elif action != "pending":
            factor = {"full": Decimal(1), "partial": Decimal("0.6"), "over": Decimal("1.15")}
            await s.control.capture(hold.id, (amount * factor[action]).quantize(Decimal("0.01")))
            debits.append(hold.id)
    for transaction_id in debits:
        roll = rng.random()
        if roll < 0.7:
            await s.control.settle(transaction_id)
            if roll < 0.1:
                await s.control.settle(transaction_id, reverse=True)
        elif roll < 0.85:
            transaction = await s.client.transaction(transaction_id)
            await s.control.refund(transaction_id,
                                   (Decimal(transaction.amount) / 2).quantize(Decimal("0.01")))


async def _terminate_with_holds_pending(s: Stack, rng: random.Random) -> None:
    card_id = s.cards[0]
    holds = [await s.control.authorise(card_id, Decimal(rng.randrange(500, 3000)) / 100)
             for _ in range(3)]
    await settle(s)
    await s.commands.card_action(card_id, "terminate")
    await _push(s)
    await s.control.advance_clock(5 * DAY)
    try:  # within 30 days of the termination: the capture is honoured
        await s.control.capture(holds[0].id)
    except Conflict:
        log.warning("capture after termination refused", authorisation_id=holds[0].id)
    await settle(s)


class Comparison(msgspec.Struct):
    account_id: str
    ledger: dict[str, str]
    sandbox: dict[str, str]

    @property
    def equal(self) -> bool:
        return all(Decimal(self.ledger[k]) == Decimal(self.sandbox[k]) for k in self.ledger)


FIGURES = ("deposits", "debits", "credits", "posted", "held", "available")


async def compare(s: Stack) -> tuple[list[Comparison], list[Difference]]:
    comparisons = []
    for account_id in s.accounts:
        view = await s.runner.view_as_of(account_id, as_of=s.sandbox.clock.now())
        (balance,) = view.balances
        ours = {k: str(getattr(balance, k)) for k in FIGURES}
        truth = await s.control.balance(account_id)
        comparisons.append(Comparison(account_id, ours, {k: truth[k] for k in FIGURES}))
    return comparisons, await reconcile(s.store, s.client)
