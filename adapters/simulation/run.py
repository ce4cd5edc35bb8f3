"""The simulator: one schedule, run against a real ledger on a SQLite file and the sandbox's
world, on one virtual clock, with every invariant checked.

Nothing runs in the background and nothing waits for real. The ledger's background work
(the outbox, pull sync, the expiry sweep) runs only when a step says so, and its client's
retries wait on the virtual clock. Everything random is drawn from the seed. So a seed and a
schedule give the same log, byte for byte, on every run.
"""

from __future__ import annotations

import base64
import hashlib
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, nullcontext
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adapters.processor.client import ClientConfig, ProcessorClient, new_signing_key
from adapters.processor.outbox import Outbox
from adapters.sandbox import Sandbox, SandboxConfig
from adapters.sandbox.errors import SandboxError
from adapters.sandbox.world import World
from adapters.service.card_ledger import CardLedger
from adapters.simulation import schedule as s
from adapters.simulation.invariants import Violation, check_all, check_capture_window
from adapters.simulation.network import Crashed, Delivery, Mailbox, Network
from adapters.simulation.planted import PLANTED, Planted
from ledger.clock import ManualClock
from ledger.domain.hold import DEFAULT_POLICY
from ledger.errors import LedgerError
from ledger.ids import SeededIds
from ledger.observations import Address, Merchant
from ledger.store import EventStore

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Where every simulation's clock starts (a Monday morning)."""
ADDRESS = Address(first_line="1 Simulation Street", city="London", country="GB",
                  post_code="SW1 1AA")
CENTS = Decimal("0.01")
HEAL_ROUNDS = 20
STEP_TIME = timedelta(seconds=1)
"""Virtual time each step takes, besides what ``Advance`` steps and retries' waits add."""


class Outcome(msgspec.Struct, kw_only=True):
    """What a run did and found. Every field but ``seconds`` is the same on every run of
    one replay."""

    seed: int
    steps: int
    planted: str | None
    ok: bool
    failure: str | None = None
    """The first invariant broken, and how."""
    failed_at: int | None = None
    """The step after which it was found (``steps`` for the final check)."""
    head_hash: str | None = None
    """The hash chain's head: equal runs wrote equal logs."""
    events: dict[str, int] = {}
    invariants: dict[str, int] = {}
    """How often each invariant was checked."""
    faults: dict[str, int] = {}
    """Faults injected, by kind: the client's, the webhooks', crashes."""
    outcomes: list[str] = []
    """What each step did, for the timeline."""
    token: str = ""
    seconds: float = 0.0
    """Wall time of the run: the one field that differs between runs."""


class Simulation:
    """One run. ``await Simulation(replay, directory).run()`` returns its ``Outcome``."""

    def __init__(self, replay: s.Replay, directory: Path) -> None:
        self.replay, self.seed = replay, replay.seed
        self.planted: Planted | None = PLANTED[replay.planted] if replay.planted else None
        self.db = directory / "ledger.db"
        self.clock = ManualClock(START)
        self.ids = SeededIds(self.seed, self.clock)
        secret = "whsec_" + base64.b64encode(hashlib.sha256(
            f"simulation-{self.seed}".encode()).digest()[:24]).decode()
        self.sandbox = Sandbox(SandboxConfig(seed=self.seed, webhook_secret=secret),
                               clock=self.clock)
        self.world = self.sandbox.world
        self.mailbox = Mailbox(secret, random.Random(self.seed + 1))
        self.world.on_change = self.mailbox.publish  # the simulator, not a task, delivers
        self.network = Network(httpx.ASGITransport(app=self.sandbox.app))
        self.counts: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.unrecorded: list[tuple[str, str, Decimal, str]] = []
        """Money moves the processor made that the ledger could not record yet (it did not
        know the account): the back office records them later, as it would."""
        self.customers = self.restarts = self.transfers = 0
        self.crash_at_append: str | None = None
        self._incarnation = AsyncExitStack()

    # --- the ledger's process, started and restarted from its file ----------------------

    async def _start(self) -> None:
        stack = self._incarnation = AsyncExitStack()
        policy = self.planted.policy if self.planted and self.planted.policy else DEFAULT_POLICY
        self.ledger = await stack.enter_async_context(CardLedger.open(
            self.db, policy=policy, processor=self.client, clock=self.clock, ids=self.ids))
        self.outbox = Outbox(self.ledger.store, self.client, clock=self.clock,
                             rng=random.Random(f"{self.seed}:outbox:{self.restarts}"))
        self.hooks = await stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.ledger.webhook_app(self.mailbox.secret)),
            base_url="http://ledger.test"))
        self._arm_store_crash(self.ledger.store)

    def _arm_store_crash(self, store: EventStore) -> None:
        """Wrap this process's appends so an armed crash can strike at the next one."""
        append = store.append

        async def crashing_append(*args: Any, **kwargs: Any) -> Any:
            point, self.crash_at_append = self.crash_at_append, None
            if point == "before-append":
                raise Crashed("the process died before its append")
            result = await append(*args, **kwargs)
            if point == "after-append":
                raise Crashed("the process died after its append committed")
            return result

        store.append = crashing_append  # type: ignore[method-assign]

    async def _restart(self) -> None:
        self.restarts += 1
        self.counts["crash"] += 1
        await self._incarnation.aclose()
        await self._start()

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome(seed=self.seed, steps=len(self.replay.steps),
                          planted=self.replay.planted, ok=True, token=s.token(self.replay))
        config = ClientConfig(base_url="http://processor.test",
                              api_key=self.sandbox.credentials.api_key,
                              api_secret=self.sandbox.credentials.api_secret, deadline=120.0)
        with self.planted.applied() if self.planted else nullcontext():
            async with ProcessorClient(config, new_signing_key(), transport=self.network,
                                       rng=random.Random(self.seed + 2), timer=self.clock,
                                       ids=SeededIds(self.seed + 3, self.clock)) as client:
                self.client = client
                await client.register_signing_key()
                await self._start()
                try:
                    await self._steps(outcome)
                finally:
                    await self._incarnation.aclose()
        outcome.faults = dict(sorted((self.counts + self.network.injected).items()))
        outcome.invariants = dict(sorted(self.checks.items()))
        outcome.seconds = round(time.perf_counter() - started, 3)
        return outcome

    async def _steps(self, outcome: Outcome) -> None:
        for n, step in enumerate(self.replay.steps):
            self.clock.advance(STEP_TIME)  # the processor's reports of two steps never tie
            try:
                outcome.outcomes.append(await self._survive(step))
            except Violation as broken:
                outcome.outcomes.append(f"VIOLATION: {broken}")
                return self._failed(outcome, n, broken)
        try:
            await self._heal_and_check()
        except Violation as broken:
            return self._failed(outcome, len(self.replay.steps), broken)
        report = await self.ledger.verify()
        outcome.head_hash = report.last_hash
        outcome.events = dict(sorted(Counter([
            e.type async for e in self.ledger.store.read_all()]).items()))

    @staticmethod
    def _failed(outcome: Outcome, at: int, broken: Violation) -> None:
        outcome.ok, outcome.failure, outcome.failed_at = False, str(broken), at

    async def _survive(self, step: s.AnyStep) -> str:
        """Run one step; a crash restarts the ledger from its file; a typed refusal is an
        outcome; any other exception is a broken invariant (every error must be typed)."""
        try:
            return await self._do(step)
        except Violation:
            raise
        except BaseException as exc:
            if not _is_crash(exc):
                if isinstance(exc, LedgerError):
                    return f"refused: {type(exc).__name__}"
                if isinstance(exc, Exception):
                    raise Violation("typed errors", f"an untyped {type(exc).__name__}: "
                                    f"{exc}") from exc
                raise
        await self._restart()
        return "crashed; restarted from the database file"

    # --- the steps ----------------------------------------------------------------------

    async def _do(self, step: s.AnyStep) -> str:
        w, on = self.world, self._eligible
        match step:
            case s.NewCustomer():
                self.customers += 1
                n = self.customers
                await self.ledger.register_customer(f"sim-{self.seed}-{n}",
                                                    f"eip155:324:0x{n:040x}")
                return "requested"
            case s.Onboard(customers=customers):
                return await self._onboard(customers)
            case s.OpenAccount(customer=i):
                return await self._ledger_request(on(w.customers, i, _without_account(w)),
                                                  lambda c: self.ledger.open_account(c, "EUR"))
            case s.RequestCard(account=i):
                return await self._ledger_request(on(w.accounts, i, _without_card(w)),
                                                  lambda a: self.ledger.request_card(a, ADDRESS))
            case s.Terminate(card=i):
                return await self._ledger_request(
                    on(w.cards, i, lambda c: c.status != "terminated"),
                    self.ledger.terminate_card)
            case s.Deposit(account=i, cents=cents) | s.Withdraw(account=i, cents=cents):
                return await self._move_money(step, on(w.accounts, i, _active), cents)
            case s.Dispatch():
                return f"{await self.outbox.dispatch()} settled"
            case s.Deliver(pick=p, fate=fate):
                return await self._deliver(p, fate)
            case s.Pull():
                report = await self.ledger.pull()
                return f"pulled {report.fetched}, recorded {report.recorded}"
            case s.Sweep():
                expired = await self.ledger.expire_holds()
                await self._check_capture_window()
                return f"{expired} expired"
            case s.Advance(seconds=seconds):
                return await self._advance(seconds)
            case s.Fault(kind=kind):
                self.network.faults.append(kind)
                return "armed"
            case s.Crash(point="now"):
                await self._restart()
                return "restarted from the database file"
            case s.Crash(point="after-send"):
                self.network.crash_after_send = True
                return "armed"
            case s.Crash(point=point):
                self.crash_at_append = point
                return "armed"
            case s.Heal():
                await self._heal_and_check()
                return "healed; all invariants hold"
        return self._processor(step)

    async def _onboard(self, customers: int) -> str:
        first = len(self.world.accounts)  # deposits name the new accounts, past these
        for phase in s.onboarding(random.Random(self.seed), customers):
            if isinstance(phase, s.Deliver):
                await self._deliver_all()
            elif isinstance(phase, s.Deposit):
                await self._do(s.Deposit(phase.account + first, phase.cents))
            elif not isinstance(phase, s.Fault | s.Crash | s.Advance):  # a clean network
                await self._do(phase)
        return f"{len(self.world.accounts) - first} account(s) opened"

    async def _deliver_all(self) -> None:
        """Every pending webhook, in order, once (one refused stays pending)."""
        for delivery in list(self.mailbox.pending):
            if 200 <= await self._post(delivery) < 300:
                self.mailbox.pending.remove(delivery)

    @staticmethod
    def _eligible(table: dict[str, Any], index: int, keep: Callable[[Any], bool]) -> str | None:
        """The ``index``-th (counting round) of the entities ``keep`` picks, in creation
        order: a step acts on something it can act on, or does nothing."""
        ids = [key for key, entity in table.items() if keep(entity)]
        return ids[index % len(ids)] if ids else None

    def _processor(self, step: s.AnyStep) -> str:
        """What happens at the processor (the card network, merchants, its operators): the
        step acts on the n-th entity it can act on (``AT_PROCESSOR``)."""
        entities, can, act = AT_PROCESSOR[type(step)]
        index: int = getattr(step, step.__struct_fields__[0])
        target = self._eligible(entities(self.world), index, can)
        if target is None:
            return "nothing to act on"
        try:
            return act(self.world, target, step)
        except SandboxError as refused:
            return f"processor refused: {refused.code}"

    async def _ledger_request(self, target: str | None,
                              ask: Callable[[str], Awaitable[object]]) -> str:
        if target is None:
            return "nothing to ask about"
        await ask(target)
        return "requested"

    async def _move_money(self, step: s.Deposit | s.Withdraw, account_id: str | None,
                          cents: int) -> str:
        if account_id is None:
            return "no account"
        amount, kind = _money(cents), type(step).__name__.lower()
        try:
            if kind == "deposit":
                self.world.deposit(account_id, amount)
            else:
                self.world.withdraw(account_id, amount)
        except SandboxError as refused:
            return f"processor refused: {refused.code}"
        self.transfers += 1
        chain = f"eip155:324:0x{self.seed:016x}{self.transfers:048x}"
        self.unrecorded.append((kind, account_id, amount, chain))
        await self._record_transfers()
        return f"{kind} {amount}"

    async def _record_transfers(self) -> None:
        """Record the transfers the ledger can take now (its account known), in order."""
        left = []
        for kind, account_id, amount, chain in self.unrecorded:
            if account_id not in self.ledger.runner.account_ids():
                await self.ledger.wait_until_visible()
            if account_id not in self.ledger.runner.account_ids():
                left.append((kind, account_id, amount, chain))
            elif kind == "deposit":
                await self.ledger.record_deposit(account_id, amount, "EUR", chain)
            else:  # the processor let it go: the ledger records the fact
                await self.ledger.record_withdrawal(account_id, amount, "EUR", chain,
                                                    allow_overdraft=True)
        self.unrecorded = left

    async def _deliver(self, index: int, fate: str) -> str:
        mailbox = self.mailbox
        if not mailbox.pending:
            return "nothing to deliver"
        chosen = index % len(mailbox.pending)
        delivery = mailbox.pending[chosen]
        if chosen:
            self.counts["webhook-reordered"] += 1
        if fate == "drop":
            self.counts["webhook-dropped"] += 1
            return f"{delivery.event_id[:8]} dropped"
        status = await self._post(delivery)
        if fate == "duplicate":  # it will be sent again
            self.counts["webhook-duplicated"] += 1
        elif 200 <= status < 300:
            mailbox.pending.remove(delivery)
        return f"{delivery.event_id[:8]} answered {status}"

    async def _post(self, delivery: Delivery) -> int:
        response = await self.hooks.post("/webhooks", content=delivery.body,
                                         headers=self.mailbox.headers(delivery))
        if 200 <= response.status_code < 300:
            self.mailbox.acknowledged[delivery.event_id] += 1
        return response.status_code

    async def _advance(self, seconds: int) -> str:
        now = self.clock.advance(timedelta(seconds=seconds))
        released = len(self.world.expire())  # the processor's own sweep
        expired = await self.ledger.expire_holds()  # the ledger's
        await self._check_capture_window()
        return f"{now:%Y-%m-%d %H:%M}; processor released {released}, ledger expired {expired}"

    async def _check_capture_window(self) -> None:
        await self.ledger.wait_until_visible()
        self.checks["capture window"] += 1
        await check_capture_window(self)

    # --- quiescence ---------------------------------------------------------------------

    async def _heal_and_check(self) -> None:
        """The network heals; the ledger catches up with everything; then every invariant."""
        self.network.faults.clear()
        self.network.crash_after_send, self.crash_at_append = False, None
        for _ in range(HEAL_ROUNDS):
            while self.mailbox.pending:
                delivery = self.mailbox.pending.pop(0)
                if not 200 <= await self._post(delivery) < 300:
                    raise Violation("healed delivery", f"webhook {delivery.event_id} refused "
                                    "once the network healed")
            self.outbox.backoff.clear()  # the processor is reachable: try every one now
            await self.outbox.dispatch()
            await self.ledger.pull()
            await self.ledger.expire_holds()
            await self._record_transfers()
            if not self.mailbox.pending and not await self.outbox.pending():
                break
        await self.ledger.wait_until_visible()
        await check_all(self)


def _capture(world: World, hold_id: str, step: Any) -> str:
    factor = {"full": Decimal(1), "part": Decimal("0.6"), "over": Decimal("1.15")}[step.how]
    amount = (Decimal(world.authorisation(hold_id).amount) * factor).quantize(
        CENTS, ROUND_HALF_EVEN)
    return f"{world.capture(hold_id, amount).status} {amount}"


def _refund(world: World, transaction_id: str, step: Any) -> str:
    amount = (Decimal(world.transaction(transaction_id).amount) * step.percent / 100).quantize(
        CENTS, ROUND_HALF_EVEN)
    return f"refunded {world.refund(transaction_id, max(amount, CENTS)).amount}"


def _active(entity: Any) -> bool:
    return bool(entity.status == "active")


def _pending(hold: Any) -> bool:
    return bool(hold.status == "pending")


def _table(name: str) -> Callable[[World], dict[str, Any]]:
    return lambda world: getattr(world, name)


def _always(entity: Any) -> bool:
    return True


AT_PROCESSOR: dict[type, tuple[Callable[[World], dict[str, Any]], Callable[[Any], bool],
                               Callable[[World, str, Any], str]]] = {
    # step: (the entities it acts on, which of them it can act on, what it does)
    s.Verify: (_table("customers"), lambda c: c.status == "verifying",
               lambda w, c, _: w.set_customer(c, "active").status),
    s.Issue: (_table("cards"), lambda c: c.status == "issuing",
              lambda w, c, _: w.set_card(c, "active").status),
    s.Authorise: (_table("cards"), _active, lambda w, c, step: w.authorise(
        c, _money(step.cents), "EUR", Merchant()).status),
    s.Amend: (_table("authorisations"), _pending,
              lambda w, h, step: w.amend(h, _money(step.cents)).amount),
    s.Capture: (_table("authorisations"), _pending, _capture),
    s.Release: (_table("authorisations"), _pending, lambda w, h, _: w.release(h).status),
    s.LatePresentment: (lambda w: {k: v for k, v in w.authorisations.items() if k in w.expired},
                        _always, lambda w, h, _: f"debit {w.present_late(h).amount}"),
    s.ForcePost: (_table("cards"), lambda c: c.status != "issuing",
                  lambda w, c, step: w.force_post(c, _money(step.cents)).status),
    s.Settle: (_table("transactions"), lambda t: t.status == "processing",
               lambda w, t, _: w.set_transaction(t, "processed").status),
    s.Reverse: (_table("transactions"), lambda t: t.status == "processed",
                lambda w, t, _: w.set_transaction(t, "reversed").status),
    s.Refund: (_table("transactions"), lambda t: t.direction == "debit"
               and t.status in ("processing", "processed"), _refund),
}


def _without_account(world: Any) -> Callable[[Any], bool]:
    owners = {a.customer_id for a in world.accounts.values()}
    return lambda c: c.status == "active" and c.id not in owners


def _without_card(world: Any) -> Callable[[Any], bool]:
    carded = {c.account_id for c in world.cards.values() if c.status != "terminated"}
    return lambda a: a.status == "active" and a.id not in carded


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENTS)


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, Crashed):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_crash(e) for e in exc.exceptions)
    return False


async def simulate(replay: s.Replay, directory: Path | None = None) -> Outcome:
    """Run ``replay`` in ``directory`` (a temporary one by default) and return what it
    found."""
    if directory is not None:
        return await Simulation(replay, directory).run()
    with tempfile.TemporaryDirectory(prefix="cardledger-sim-") as temporary:
        return await Simulation(replay, Path(temporary)).run()


def seeded(seed: int, steps: int = 300, planted: str | None = None) -> s.Replay:
    """The replay of ``seed``: its steps drawn by ``schedule.draw``."""
    return s.Replay(seed, s.draw(seed, steps), planted)

