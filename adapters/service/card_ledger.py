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
from contextlib import aclosing, asynccontextmanager, suppress
from datetime import datetime
from decimal import Decimal
from functools import partial
from os import PathLike, fspath

import anyio
import anyio.to_thread
import msgspec
from starlette.types import ASGIApp

import projections.statement
from adapters.metrics import Metrics
from adapters.processor.client import ProcessorClient
from adapters.processor.observer import Observer
from adapters.processor.outbox import Outbox
from adapters.processor.sync import SyncReport, pull
from adapters.service import statements
from adapters.service.commands import CardAction, Commands, MoneyRecorded
from adapters.service.statements import Statement
from adapters.service.sweeper import sweep
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store
from ledger.clock import Clock, utc_now
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.errors import (
    InsufficientFundsError,
    InvalidInputError,
    NotFoundError,
    VerificationFailedError,
)
from ledger.events import (
    AccountOpeningRequested,
    CardIssuanceRequested,
    CardRequest,
    CustomerRegistrationRequested,
    DomainEvent,
)
from ledger.ids import Ids, uuid7
from ledger.interop import JSONReady
from ledger.logs import get_logger
from ledger.moments import check_moment
from ledger.money import MINOR_UNITS, Money, currency_amount
from ledger.observations import Address, AnySnapshot
from ledger.store import EventStore, VerifyReport, account_of
from ledger.transparency import prover
from ledger.transparency.note import SigningKey
from projections import ProjectionRunner
from projections.backends import ProjectionConflictError
from projections.backends.lead import Lead
from projections.postings import Entry
from projections.statement import Figures, Printed, StatementLine
from projections.statement_index import StatementIndex
from projections.statement_stream import StreamedStatement
from projections.views import (
    AccountView,
    AnomalyView,
    Balance,
    CardView,
    HoldView,
    listed_anomalies,
)

log = get_logger("service")
LAG_LIMIT = 60.0
"""Seconds behind the log after which the projection counts as lagging (``/health``)."""
OUTBOX_LIMIT = 600.0
"""Seconds a request may wait for the processor before the outbox counts as stuck."""


class Change(msgspec.Struct, JSONReady, frozen=True, rename="camel"):
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
                 clock: Clock = utc_now, ids: Ids = uuid7) -> None:
        self.store, self.runner, self.processor = store, runner, processor
        self.clock = clock
        """The ledger's one clock (see ``open``)."""
        self.ids = ids
        """Where new event and request ids come from (see ``open``)."""
        self.observer = Observer(store, runner.policy, clock=clock, ids=ids)
        self.commands = Commands(store, clock, ids)
        self.metrics = Metrics()
        self._withdrawing = anyio.Lock()  # a check of funds and its withdrawal, one at a time
        self.failing: dict[str, str] = {}
        """Background tasks whose last round failed, and why (``/health`` shows them)."""
        self._lag_seconds = 0.0  # set by the watcher of run_background
        self._outbox_oldest = 0.0
        self._requests = Outbox(store, None, clock=clock)  # the watcher's view of what is pending
        self._lines = StatementIndex(runner.policy)  # statements' lines, kept between pages
        self._indexing = anyio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str | PathLike[str], *, policy: HoldPolicy = DEFAULT_POLICY,
                   processor: ProcessorClient | None = None,
                   clock: Clock = utc_now, ids: Ids = uuid7) -> AsyncIterator[CardLedger]:
        """The ledger at ``url`` (``sqlite:///PATH``, a path, or ``postgresql://...``),
        created if missing, with its projections loaded. ``processor`` is needed to push
        requests and to pull. ``clock`` is the ledger's one clock: record times, commands' times,
        the default ``as_of``, the expiry sweep, the outbox's backoff and the metrics' ages
        all read it (``ManualClock`` for a test that moves time itself). ``ids`` makes the new
        event and request ids (time-ordered random UUIDs; ``SeededIds`` for a run that must
        repeat exactly, such as a simulation)."""
        async with open_store(fspath(url), clock=clock) as store, \
                ProjectionRunner(store, policy=policy) as runner:
            yield cls(store, runner, processor=processor, clock=clock, ids=ids)

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
        retry; ``ConflictError`` for the same transfer with other facts). ``NotFoundError``
        until the account's report has arrived; ``InvalidInputError`` for an amount that is
        not a positive Decimal within the currency's minor units, or an unknown currency."""
        await self._require_account(account_id)
        with self.metrics.append_seconds.time():
            return await self.commands.record_deposit(account_id, amount, currency,
                                                      chain_transaction)

    async def record_withdrawal(self, account_id: str, amount: Decimal, currency: str,
                                chain_transaction: str, *,
                                allow_overdraft: bool = False) -> MoneyRecorded:
        """Record an on-chain withdrawal, with the rules of ``record_deposit``. One larger
        than the account's available balance (now, on the ledger's clock) is refused with
        ``InsufficientFundsError`` unless ``allow_overdraft``; a retry of one recorded
        already is never refused. The check is made against this ledger's projection,
        one withdrawal at a time in this process; two processes recording withdrawals of
        one account at once can each pass it."""
        await self._require_account(account_id)
        async with self._withdrawing:
            if not allow_overdraft:
                await self._require_funds(account_id, amount, currency, chain_transaction)
            with self.metrics.append_seconds.time():
                return await self.commands.record_withdrawal(account_id, amount, currency,
                                                             chain_transaction)

    async def _require_funds(self, account_id: str, amount: Decimal, currency: str,
                             chain_transaction: str) -> None:
        wanted = currency_amount(amount, currency)
        await self.wait_until_visible()
        available = sum((b.available for b in await self.balances(account_id)
                         if b.currency == currency), Decimal(0)).quantize(wanted)
        if wanted > available and not await self.commands.has_withdrawal(
                account_id, chain_transaction):
            raise InsufficientFundsError(
                f"withdrawal of {Money(wanted, currency)} from account {account_id}: only "
                f"{Money(available, currency)} is available (pass allow_overdraft=True to "
                "record it all the same)")

    # Requests to the processor: each is recorded, then sent by the outbox (``run_background``
    # with a processor), with an idempotency key, until the processor answers for good.

    async def register_customer(self, external_id: str,
                                wallet: str) -> CustomerRegistrationRequested:
        """Ask the processor to create a customer (``POST /customers``) for the back office's
        ``external_id`` and on-chain ``wallet`` (CAIP-10). ``InvalidInputError`` for a bad id
        or wallet, or when the ledger has no processor to send the request to."""
        self._require_processor("register a customer")
        return await self.commands.register_customer(external_id, wallet)

    async def open_account(self, customer_id: str, currency: str) -> AccountOpeningRequested:
        """Ask the processor to open an account in ``currency`` for a customer (``POST
        /customers/{id}/accounts``). ``NotFoundError`` for a customer the ledger has not heard
        of, ``ConflictError`` for one whose state forbids it, ``InvalidInputError`` as
        ``register_customer``."""
        self._require_processor(f"open an account for customer {customer_id!r}")
        return await self.commands.open_account(customer_id, currency)

    async def request_card(self, account_id: str,
                           billing_address: Address) -> CardIssuanceRequested:
        """Ask the processor for a virtual card on an account (``POST
        /accounts/{id}/cards``). Errors as ``open_account``, for the account."""
        self._require_processor(f"request a card for account {account_id!r}")
        return await self.commands.request_card(account_id, billing_address)

    async def freeze_card(self, card_id: str) -> CardRequest:
        """Ask the processor to deactivate an active card (``PATCH /cards/{id}/deactivate``).
        ``NotFoundError`` for a card the ledger has not heard of, ``ConflictError`` for one
        whose state forbids it (or already asked), and ``InvalidInputError`` when the ledger
        has no processor to send it to."""
        return await self._card_command(card_id, "deactivate")

    async def unfreeze_card(self, card_id: str) -> CardRequest:
        """Ask the processor to activate an inactive card again, as ``freeze_card``."""
        return await self._card_command(card_id, "activate")

    async def terminate_card(self, card_id: str) -> CardRequest:
        """Ask the processor to terminate a card (``DELETE /cards/{id}``), as
        ``freeze_card``. Its pending holds stay capturable for 30 days from the termination."""
        return await self._card_command(card_id, "terminate")

    async def _card_command(self, card_id: str, action: CardAction) -> CardRequest:
        self._require_processor(f"{action} card {card_id!r}")
        return await self.commands.card_action(card_id, action)

    def _require_processor(self, what: str) -> None:
        if self.processor is None:
            raise InvalidInputError(
                f"cannot {what}: this ledger has no processor to send the request to (open "
                "it with processor=...), and it would wait for ever")

    async def pull(self) -> SyncReport:
        """Fetch what the processor holds (customers, accounts, cards, the live holds and
        the transactions) and record what the ledger lacks: what a missed webhook would
        have said. ``InvalidInputError`` without a processor."""
        self._require_processor("pull")
        assert self.processor is not None
        return await pull(self.processor, self.observer,
                          [h.authorisation_id for h in self.runner.live_holds()])

    async def expire_holds(self) -> int:
        """Write ``HoldExpired`` for every live hold whose expiry has passed on the ledger's
        clock; return how many were new (the background sweeper calls this every
        ``sweep_every`` seconds; a test that moved its clock can call it at once)."""
        return await sweep(self.runner, self.clock())

    async def wait_until_visible(self, position: int | None = None) -> None:
        """Return once the projections hold the log up to ``position`` (default: everything
        recorded so far), whichever process writes them. A position the log has not reached
        yet is waited for; ``InvalidInputError`` for one that is not a position."""
        if position is not None and (type(position) is not int or position < 0):
            raise InvalidInputError(f"position: {position!r} is not a log position (an int "
                                    ">= 0)")
        target = await self.store.head() if position is None else position
        if self.runner.reads_the_log:  # outdated tables, rebuilt beside: answers come from
            await self.runner.refresh()  # the log up to its head until the swap is seen
            if self.runner.reads_the_log:
                return
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
        """One account as of business time ``as_of`` (default: the ledger's clock), knowing
        only what was recorded by ``known_at`` (default: everything), computed from the log.
        ``NotFoundError`` for an account the ledger has not heard of; ``InvalidInputError``
        for a naive or out-of-range moment."""
        moment, known = self._moments(as_of, known_at)
        await self._require_account(account_id)
        return await self.runner.view_as_of(account_id, moment, known)

    async def accounts(self, account_id: str | None = None, *, as_of: datetime | None = None,
                       known_at: datetime | None = None) -> list[AccountView]:
        """``account`` for one account, or for every account the projections know."""
        if account_id is not None:
            return [await self.account(account_id, as_of=as_of, known_at=known_at)]
        moment, known = self._moments(as_of, known_at)
        return [await self.runner.view_as_of(a, moment, known)
                for a in await self.runner.known_accounts()]

    def _moments(self, as_of: datetime | None,
                 known_at: datetime | None) -> tuple[datetime, datetime | None]:
        return (check_moment(self.clock() if as_of is None else as_of, "as_of"),
                None if known_at is None else check_moment(known_at, "known_at"))

    async def _require_account(self, account_id: object) -> None:
        if not isinstance(account_id, str):
            raise InvalidInputError(f"account_id: {account_id!r} is not a string")
        if account_id not in await self.runner.known_accounts():
            await self.wait_until_visible()
            if account_id not in await self.runner.known_accounts():
                raise NotFoundError(
                    f"no account {account_id[:64]!r} in the ledger: it learns of an account "
                    "from the processor (its account.updated webhook, or a pull) before it "
                    "takes deposits, withdrawals or questions about it")

    async def journal(self, account_id: str, *, as_of: datetime | None = None,
                      known_at: datetime | None = None) -> list[Entry]:
        """The account's changes up to ``as_of`` (default: now) as double-entry journal
        entries: at each business time its figures changed, one entry per currency moving
        money between its ``available`` and ``held`` funds, the ``chain`` (deposits and
        withdrawals) and ``merchants`` (debits and credits). Every entry sums to zero."""
        moment, known = self._moments(as_of, known_at)
        await self._require_account(account_id)
        return await self.runner.journal_as_of(account_id, moment, known)

    async def statement(self, account_id: str, currency: str, start: datetime,
                        end: datetime, *, known_at: datetime | None = None, limit: int = 100,
                        cursor: str | None = None) -> Statement:
        """The account's statement in ``currency`` for the period after ``start`` up to
        ``end`` (``projections.statement``): the opening balance, a page of ``limit`` lines
        with their running balance, the closing balance and the cursor of the next page. The
        first page pins what the statement knows (``known_at``, default: now), so new
        events never move its lines; a later report about the period is a correction line.
        ``NotFoundError`` for an unknown account; ``InvalidInputError`` for an unknown
        currency, ``start`` after ``end``, a naive moment, or a cursor this statement did
        not give."""
        start, end = await self._check_statement(account_id, currency, start, end)
        limit = statements.check_limit(limit)
        offset = 0
        if cursor is not None:
            known_at, offset = statements.read_cursor(cursor, account_id, currency, start, end)
        whole = await self._statement(account_id, currency, start, end, known_at)
        more = offset + limit < len(whole.lines)
        return msgspec.structs.replace(
            whole, lines=whole.lines[offset:offset + limit],
            next_cursor=statements.make_cursor(account_id, currency, start, end,
                                               whole.known_at, offset + limit)
            if more else None)

    async def whole_statement(self, account_id: str, currency: str, start: datetime,
                              end: datetime, *, known_at: datetime | None = None) -> Statement:
        """``statement`` with every line and no cursor, from one walk through the account
        (what ``cardledger statement`` writes); the same checks and errors."""
        start, end = await self._check_statement(account_id, currency, start, end)
        return await self._statement(account_id, currency, start, end, known_at)

    async def stream_statement(self, account_id: str, currency: str, start: datetime,
                               end: datetime, *, known_at: datetime | None = None,
                               ) -> tuple[datetime, AsyncIterator[Figures | StatementLine]]:
        """``whole_statement`` as it is made, for an account with millions of lines: the
        moment it knows (``known_at``, default: now), and an async iterator of the opening
        figures and then each line, none of them held once given (the closing figures are
        the last line's, or the opening's). Made from the log, read twice in batches
        (``projections.statement_stream``), not from kept lines; the same checks and
        errors."""
        start, end = await self._check_statement(account_id, currency, start, end)
        known = check_moment(self.clock() if known_at is None else known_at, "known_at")
        walk = StreamedStatement(account_id, currency, start, end, known, self.runner.policy)
        upto = await self.store.head()
        async for batch in self.runner.account_batches(account_id, known, upto):
            walk.survey(batch)

        async def made() -> AsyncIterator[Figures | StatementLine]:
            # Each batch's walk in a worker thread, as ``_statement``'s: the event loop keeps
            # its turns while a statement of millions of lines is made.
            async for batch in self.runner.account_batches(account_id, known, upto):
                for item in await anyio.to_thread.run_sync(walk.take, batch):
                    yield item
            for item in await anyio.to_thread.run_sync(walk.finish):
                yield item

        return known, made()

    async def _check_statement(self, account_id: str, currency: str, start: datetime,
                               end: datetime) -> tuple[datetime, datetime]:
        start, end = check_moment(start, "start"), check_moment(end, "end")
        if start > end:
            raise InvalidInputError(f"start {start.isoformat()} is after end {end.isoformat()}")
        if currency not in MINOR_UNITS:
            raise InvalidInputError(f"currency: {currency!r} is not an ISO 4217 currency")
        await self._require_account(account_id)
        return start, end

    async def _statement(self, account_id: str, currency: str, start: datetime,
                         end: datetime, known_at: datetime | None) -> Statement:
        known = check_moment(self.clock() if known_at is None else known_at, "known_at")
        await self.wait_until_visible()
        # Walking an account is seconds of computation for millions of lines: in a worker
        # thread, so that the event loop (webhooks, other queries) keeps its turns meanwhile.
        async with self._indexing:  # one taker at a time: an event is taken in once
            kept = self._lines.account(account_id)
            new = await self.runner.account_events(account_id, after=kept.position)

            def take_and_print() -> Printed | None:
                kept.take(new)
                self._lines.trim()
                return kept.print_from(currency, start, end, known)

            printed = await anyio.to_thread.run_sync(take_and_print)
        if printed is None:  # a correction to show: made from the log, as defined
            events = await self.runner.account_events(account_id, known)
            printed = await anyio.to_thread.run_sync(
                projections.statement.statement, account_id, events, currency, start, end,
                known, self.runner.policy)
        return statements.Statement(
            account_id=account_id, currency=currency, start=start, end=end, known_at=known,
            opening=printed.opening, lines=printed.lines, closing=printed.closing,
            next_cursor=None)

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
        moment, _ = self._moments(as_of, None)
        views = await self.accounts(as_of=moment)
        stored = (await self.runner.backend.snapshot()).rows
        return listed_anomalies((a for v in views for a in v.anomalies), stored["anomalies"],
                                stored["quarantined"], moment)

    async def verify(self) -> VerifyReport:
        """Walk the hash chain; ``VerificationFailedError`` naming the first bad position."""
        report = await self.store.verify()
        if not report.ok:
            raise VerificationFailedError(
                f"chain broken at position {report.first_bad_position}: {report.reason}")
        return report

    async def checkpoint(self, key: SigningKey) -> str:
        """A checkpoint of the log now (C2SP tlog-checkpoint: the ledger's origin, its size,
        its Merkle root), signed by ``key``: publish it, so that a later rewrite of the
        database shows (``cardledger verify --against``)."""
        if not isinstance(key, SigningKey):
            raise InvalidInputError(f"key: a SigningKey, not {type(key).__name__}")
        return await prover.signed_checkpoint(self.store, key)

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

    def webhook_app(self, secret: str | None = None, *,
                    checkpoint_key: SigningKey | None = None) -> ASGIApp:
        """The webhook receiver, an ASGI app to mount (``POST /webhooks``, ``GET /health``,
        ``GET /openapi.json``; ``GET /checkpoint`` with a ``checkpoint_key``). With
        ``secret`` it checks Standard Webhooks signatures; without, it verifies by fetching
        each entity from the processor."""
        checkpoint = None if checkpoint_key is None else partial(self.checkpoint,
                                                                  checkpoint_key)
        return WebhookReceiver(self.observer, secret=secret, fetcher=self.processor,
                               problems=self.problems, metrics=self.metrics,
                               checkpoint=checkpoint).app

    def problems(self) -> list[str]:
        """What keeps the ledger from being fully well (empty: ok)."""
        problems = [f"{task} failing: {why}" for task, why in self.failing.items()]
        if self.runner.quarantined:
            problems.append(f"{self.runner.quarantined} event(s) quarantined: the projections "
                            "cannot apply them (cardledger anomalies lists them)")
        if self.runner.reads_the_log:
            problems.append("projection tables of another model version: rebuilding them "
                            "online; answers are computed from the log meanwhile, and "
                            "expired holds are swept once the new tables are in")
        if self.runner.failure is not None:
            problems.append(f"projection runner failing: {self.runner.failure}")
        if self._lag_seconds > LAG_LIMIT:
            problems.append(f"projection lagging: the oldest event not projected is "
                            f"{self._lag_seconds:.0f} s old (limit {LAG_LIMIT:.0f} s)")
        if self._outbox_oldest > OUTBOX_LIMIT:
            problems.append(f"outbox stuck: the oldest pending request is "
                            f"{self._outbox_oldest:.0f} s old (limit {OUTBOX_LIMIT:.0f} s)")
        return problems

    async def run_background(self, *, sweep_every: float = 60.0, dispatch_every: float = 1.0,
                             pull_every: float | None = None, retry_after: float = 1.0,
                             watch_every: float = 1.0, resume_every: float = 5.0) -> None:
        """The background work, until cancelled (start it in the service's task group): the
        projection follower, the expiry sweeper and, with a processor, the outbox dispatcher
        (and pull sync, every ``pull_every`` seconds if given). Each has one leader across
        processes; a failing round is logged with its traceback, shown by ``problems()``,
        and tried again. A watcher keeps the metrics' lag and backlog figures current, and
        a rebuild stopped half-way is resumed (``ProjectionRunner.rebuild_online``)."""
        sweeper, puller = Lead(self.store, "sweeper"), Lead(self.store, "pull")
        dispatcher = (Outbox(self.store, self.processor, lead=True, clock=self.clock)
                      if self.processor is not None else None)

        async def sweep_if_leading() -> None:
            if await sweeper.take():
                try:
                    self.metrics.expired.inc(await self.expire_holds())
                    self.metrics.sweeps.inc()
                except BaseException:
                    await sweeper.release()  # a lost database may have taken the lead along
                    raise

        async def pull_if_leading() -> None:
            assert self.processor is not None
            if await puller.take():
                await self.pull()
                self.metrics.pull_last_success.set(self.clock().timestamp())

        async def watch() -> None:
            await self._watch(dispatcher, sweeper)

        async def resume_rebuild() -> None:
            # A rebuild_online stopped half-way (the process killed) resumes in the process
            # that leads, while it serves: once at a time across processes.
            runner = self.runner
            if runner.leading and not runner.rebuilding and await runner.rebuild_left_off():
                with suppress(ProjectionConflictError):  # another process's, running
                    await runner.rebuild_online(wait=False)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: self.runner.follow(retry_after=retry_after))
                group.start_soon(self._every, "expiry sweeper", sweep_every, sweep_if_leading)
                group.start_soon(self._every, "watcher", watch_every, watch)
                group.start_soon(self._every, "rebuild resumer", resume_every, resume_rebuild)
                if dispatcher is not None:
                    group.start_soon(self._every, "outbox dispatcher", dispatch_every,
                                     dispatcher.dispatch)
                if self.processor is not None and pull_every is not None:
                    group.start_soon(self._every, "pull sync", pull_every, pull_if_leading)
        finally:
            with anyio.CancelScope(shield=True):
                await sweeper.release()
                await puller.release()
                if dispatcher is not None:
                    await dispatcher.close()

    async def _watch(self, dispatcher: Outbox | None, sweeper: Lead | None = None) -> None:
        """Measure the projection's lag and the outbox's backlog; mark the leads held."""
        now = self.clock()
        head, position = await self.store.head(), self.runner.position
        self._lag_seconds = 0.0
        if head > position:
            async with aclosing(self.store.read_batches(position, batch_size=1)) as batches:
                async for (oldest, *_) in batches:
                    self._lag_seconds = max(0.0, (now - oldest.recorded_at).total_seconds())
                    break
        pending = await self._requests.pending()
        self._outbox_oldest = (now - pending[0].recorded_at).total_seconds() if pending else 0.0
        m = self.metrics
        m.lag_events.set(head - position)
        m.lag_seconds.set(self._lag_seconds)
        m.outbox_pending.set(len(pending))
        m.outbox_oldest_seconds.set(self._outbox_oldest)
        m.leading.labels("projection").set(int(self.runner.leading))
        m.leading.labels("outbox").set(int(dispatcher is not None and dispatcher.leading))
        m.leading.labels("sweeper").set(int(sweeper is not None and sweeper.held))

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
