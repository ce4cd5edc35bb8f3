"""The front door for a service that embeds the ledger: ``CardLedger``.

One object, opened with a store URL, that records what the processor reports and what the
back office decides, answers balances, holds, cards and anomalies as of any moment, lets the
caller wait until what it recorded is projected, streams what changes, runs the background
work (each task with one leader across processes), and serves the webhook receiver::

    async with CardLedger.open("sqlite:///service.db") as ledger:
        await ledger.record(snapshot)
        balances = await ledger.balances("a1", as_of=moment)

Everything it raises is a ``ledger.LedgerError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import msgspec
import structlog

from adapters.client import ProcessorClient
from adapters.commands import Commands, MoneyRecorded
from adapters.ingest import Observer
from adapters.leads import Lead
from adapters.outbox import Outbox
from adapters.receiver import WebhookReceiver
from ledger import open_store
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.errors import NotFoundError, VerificationFailedError
from ledger.events import DomainEvent
from ledger.observations import AnySnapshot
from ledger.store import EventStore, VerifyReport
from ledger.store.base import utc_now
from projections import ProjectionRunner, sweep
from projections.book import account_of
from projections.views import AccountView, AnomalyView, Balance, CardView, HoldView

log = structlog.get_logger("adapters.service")


class Change(msgspec.Struct, frozen=True, rename="camel"):
    """One fact the log gained that concerns an account: query the account to see its effect."""

    position: int
    account_id: str
    type: str
    """The event's type, e.g. ``HoldPlaced``, ``TransactionPosted``, ``FundsDeposited``."""
    at: datetime
    """Its business time."""


class CardLedger:
    """Open with ``async with CardLedger.open(url) as ledger``; see the module's docs."""

    def __init__(self, store: EventStore, runner: ProjectionRunner, *,
                 processor: ProcessorClient | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store, self.runner, self.processor = store, runner, processor
        self.observer = Observer(store, runner.policy, clock=clock)
        self.commands = Commands(store)
        self.failing: dict[str, str] = {}
        """Background tasks whose last round failed, and why (``/health`` shows them)."""

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, policy: HoldPolicy = DEFAULT_POLICY,
                   processor: ProcessorClient | None = None,
                   clock: Callable[[], datetime] = utc_now) -> AsyncIterator[CardLedger]:
        """The ledger at ``url`` (``sqlite:///PATH``, a path, or ``postgresql://...``),
        created if missing, with its projections loaded. ``processor`` is needed to push
        requests and to pull; ``clock`` is the time snapshots are checked against."""
        async with open_store(url) as store, ProjectionRunner(store, policy=policy) as runner:
            yield cls(store, runner, processor=processor, clock=clock)

    # --- recording ----------------------------------------------------------------------

    async def record(self, snapshot: AnySnapshot) -> int | None:
        """Record what a processor snapshot teaches (the path webhooks, archives and pull
        take); return the log position of its last fact, or None if it taught nothing new.
        ``InvalidInputError`` (nothing recorded) for a snapshot outside the rules."""
        result = await self.observer.record(snapshot)
        return None if result is None or result.duplicate else result.last_position

    async def record_deposit(self, account_id: str, amount: Decimal, currency: str,
                             chain_transaction: str) -> MoneyRecorded:
        """Record an on-chain deposit, once per transfer (``MoneyRecorded.duplicate`` for a
        retry; ``ConflictError`` for the same transfer with other facts)."""
        return await self.commands.record_deposit(account_id, amount, currency,
                                                  chain_transaction)

    async def record_withdrawal(self, account_id: str, amount: Decimal, currency: str,
                                chain_transaction: str) -> MoneyRecorded:
        return await self.commands.record_withdrawal(account_id, amount, currency,
                                                     chain_transaction)

    async def wait_until_visible(self, position: int | None = None) -> None:
        """Return once the projections hold the log up to ``position`` (default: everything
        recorded so far), whichever process writes them."""
        target = await self.store.head() if position is None else position
        while self.runner.position < target:
            if self.runner.leading:
                await self.runner.wait_for(target)
            else:  # catch up, or read what the leading process stored
                await self.runner.catch_up(wait=False)
                if self.runner.position < target:
                    await anyio.sleep(self.runner.lead_poll)

    # --- asking -------------------------------------------------------------------------

    async def account(self, account_id: str, *, as_of: datetime | None = None,
                      known_at: datetime | None = None) -> AccountView:
        """One account as of business time ``as_of`` (default: now), knowing only what was
        recorded by ``known_at`` (default: everything), computed from the log."""
        if account_id not in self.runner.account_ids():
            await self.wait_until_visible()
            if account_id not in self.runner.account_ids():
                raise NotFoundError(f"no account {account_id!r} in the ledger")
        return await self.runner.view_as_of(account_id, as_of or utc_now(), known_at)

    async def accounts(self, account_id: str | None = None, *, as_of: datetime | None = None,
                       known_at: datetime | None = None) -> list[AccountView]:
        """``account`` for one account, or for every account the projections know."""
        if account_id is not None:
            return [await self.account(account_id, as_of=as_of, known_at=known_at)]
        return [await self.runner.view_as_of(a, as_of or utc_now(), known_at)
                for a in self.runner.account_ids()]

    async def balances(self, account_id: str | None = None, *, as_of: datetime | None = None,
                       known_at: datetime | None = None) -> list[Balance]:
        """Per account and currency: deposits, debits, credits, posted, held, available."""
        views = await self.accounts(account_id, as_of=as_of, known_at=known_at)
        return [b for v in views for b in v.balances]

    async def holds(self, account_id: str | None = None, *, as_of: datetime | None = None,
                    known_at: datetime | None = None, closed: bool = False) -> list[HoldView]:
        """Open holds (with ``closed``, also those released, captured or expired)."""
        views = await self.accounts(account_id, as_of=as_of, known_at=known_at)
        return [h for v in views for h in v.holds if closed or h.closed is None]

    async def cards(self, account_id: str | None = None, *, as_of: datetime | None = None,
                    known_at: datetime | None = None) -> list[CardView]:
        """Cards, their status and, once terminated, their capture window's end."""
        views = await self.accounts(account_id, as_of=as_of, known_at=known_at)
        return [c for v in views for c in v.cards]

    async def anomalies(self, *, as_of: datetime | None = None) -> list[AnomalyView]:
        """Facts that contradict others (counted all the same), final states reported as
        changed, and quarantined events, oldest first."""
        moment = as_of or utc_now()
        found = [a for v in await self.accounts(as_of=moment) for a in v.anomalies]
        stored = (await self.runner.backend.snapshot()).rows
        found += [AnomalyView(kind, entity, entity_id, account_id or "",
                              datetime.fromisoformat(at))
                  for kind, entity, entity_id, account_id, at in stored["anomalies"]
                  if kind == "final_state_changed" and datetime.fromisoformat(at) <= moment]
        found.sort(key=lambda a: a.at)
        return found + [AnomalyView("quarantined", entity, entity_id, account_id or "", moment,
                                    f"event {position}: {reason}")
                        for position, entity, entity_id, account_id, reason
                        in sorted(stored["quarantined"])]

    async def verify(self) -> VerifyReport:
        """Walk the hash chain; ``VerificationFailedError`` naming the first bad position."""
        report = await self.store.verify()
        if not report.ok:
            raise VerificationFailedError(
                f"chain broken at position {report.first_bad_position}: {report.reason}")
        return report

    # --- following ----------------------------------------------------------------------

    async def changes(self, after: int = 0) -> AsyncIterator[Change]:
        """What the log gains that concerns an account, from position ``after`` on, forever
        (cancel to stop): history first, then each fact as it is committed."""
        async for batch in self.store.subscribe(after):
            for stored in batch:
                payload = stored.payload
                account_id = account_of(payload) if isinstance(payload, DomainEvent) else None
                if account_id is not None and isinstance(payload, DomainEvent):
                    yield Change(stored.position, account_id, type(payload).__name__,
                                 payload.at)

    def webhook_app(self, secret: str | None = None) -> Any:
        """The webhook receiver, an ASGI app to mount (``POST /webhooks``, ``GET /health``,
        ``GET /openapi.json``). With ``secret`` it checks Standard Webhooks signatures;
        without, it verifies by fetching each entity from the processor."""
        return WebhookReceiver(self.observer, secret=secret, fetcher=self.processor,
                               problems=self.problems).app

    def problems(self) -> list[str]:
        """What keeps the ledger from being fully well (empty: ok)."""
        problems = [f"{task} failing: {why}" for task, why in self.failing.items()]
        if self.runner.quarantined:
            problems.append(f"{self.runner.quarantined} event(s) quarantined: the projections "
                            "cannot apply them (cardledger anomalies lists them)")
        if self.runner.failure is not None:
            problems.append(f"projection runner failing: {self.runner.failure}")
        return problems

    async def run_background(self, *, sweep_every: float = 60.0, dispatch_every: float = 1.0,
                             retry_after: float = 1.0) -> None:
        """The background work, until cancelled (start it in the service's task group): the
        projection follower, the expiry sweeper and, with a processor, the outbox
        dispatcher. Each has one leader across processes; a failing round is logged with its
        traceback, shown by ``problems()``, and tried again."""
        sweeper = Lead(self.store, "sweeper")
        dispatcher = (Outbox(self.store, self.processor, lead=True)
                      if self.processor is not None else None)

        async def sweep_if_leading() -> None:
            if await sweeper.take():
                try:
                    await sweep(self.runner)
                except BaseException:
                    await sweeper.release()  # a lost database may have taken the lead along
                    raise

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: self.runner.follow(retry_after=retry_after))
                group.start_soon(self._every, "expiry sweeper", sweep_every, sweep_if_leading)
                if dispatcher is not None:
                    group.start_soon(self._every, "outbox dispatcher", dispatch_every,
                                     dispatcher.dispatch)
        finally:
            with anyio.CancelScope(shield=True):
                await sweeper.release()
                if dispatcher is not None:
                    await dispatcher.close()

    async def _every(self, name: str, seconds: float,
                     work: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await work()
            except Exception as exc:  # keep going; the next round tries again
                self.failing[name] = str(exc) or type(exc).__name__
                log.warning("background work failed; trying again", task=name,
                            error=str(exc), exc_info=True)
            else:
                self.failing.pop(name, None)
            await anyio.sleep(seconds)
