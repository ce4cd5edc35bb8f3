"""The projection runner: keeps the read models in step with the log, exactly once.

It reads the log from its checkpoint in batches (history and live commits through the same
subscription), folds each batch into the affected accounts' books, and writes the changed rows
together with the new checkpoint in one transaction: a crash between batches loses nothing and
counts nothing twice. The stored views are each account's state as of its latest business
time; the expiry sweeper keeps that time moving as holds expire.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import msgspec

from ledger.backoff import backoff
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.errors import LedgerError
from ledger.events import (
    CardObserved,
    DomainEvent,
    HoldExpired,
    HoldObserved,
    TransactionObserved,
)
from ledger.logs import get_logger
from ledger.store import AccountRange, Event, EventStore, StoredEvent, account_of
from ledger.store.planner import micros
from ledger.tracing import span as trace
from projections import tables
from projections.backends import (
    PART_SUFFIX,
    REBUILD_SUFFIX,
    ProjectionConflictError,
    ProjectionError,
    ProjectionFailedError,
    ProjectionUsageError,
    backend_for,
    store_url,
)
from projections.book import (
    AccountBook,
    HoldFacts,
    MoneyMovement,
    Timeline,
    TransactionFacts,
    Unprojectable,
    apply_or_skip,
    contradiction,
    entity_of,
    quarantine_row,
)
from projections.live import LiveAccount, Sums, group_of
from projections.partitions import (
    MAX_WORKERS,
    PartJob,
    build_part,
    plan_parts,
)
from projections.postings import Entry, journal
from projections.running import moments_of
from projections.views import AccountView, HoldView, view

__all__ = ["LeadElsewhereError", "ProjectionError", "ProjectionFailedError",
           "ProjectionRunner"]
log = get_logger("projections")
_NEVER = 2**62  # a record time after any (microseconds since the epoch)
_NEVER_AT = datetime.max.replace(tzinfo=UTC)
T = TypeVar("T")
_SHARE_EVERY = 16  # events folded, or accounts derived, between two hand-overs of the GIL
_REBUILD_BATCH = 1_000
"""Events a rebuild beside a serving runner reads at a time: their decoding is on the loop."""
MODEL_VERSION = 4
"""The version of the balance model and of the stored facts. Tables written by another
version are rebuilt from the log by the first runner that leads (2: amounts per report;
3: quarantined events; 4: facts by group, settled ones out of memory)."""


class LeadElsewhereError(ProjectionConflictError):
    """Another runner leads the projection, so this one cannot swap tables in."""


class AccountFacts(msgspec.Struct):
    movements: list[MoneyMovement]
    latest_at: datetime | None
    sums: Sums | None = None
    """The running sums, settled groups' contributions included (``projections.live``)."""


_FACT_TYPES: dict[str, type] = {"hold": HoldFacts, "transaction": TransactionFacts,
                                "card": Timeline}
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(t) for kind, t in _FACT_TYPES.items()}
_ACCOUNT_DECODER = msgspec.msgpack.Decoder(AccountFacts)


class _Span:
    """Events folded into the books and not yet written: what their commit must write."""

    def __init__(self, after: int, *, ordered: bool = True) -> None:
        self.after = self.last = after
        self.ordered = ordered
        """Events come in log order (a position at or before ``last`` is one applied
        already); a rebuild's part reads them account by account instead."""
        self.events = 0
        self.touched: dict[str, dict[tuple[str, str], None]] = {}
        """Per account, the entities its events were about, in log order (written in that
        order, they load in that order)."""
        self.write = tables.BatchWrite()


class ProjectionRunner:
    """Use as ``async with ProjectionRunner(store) as runner``; then ``catch_up()``,
    ``follow()`` (forever), ``wait_for(position)`` or ``rebuild()``.

    Runners in several processes may share a projection: one writes at a time (it holds the
    lead while it catches up or follows), the others wait for the lead and take over when the
    leader stops or dies (see ``projections.backends``)."""

    name: str = "ledger"
    """Which projection: its tables, checkpoint and lead (``projections.backends``)."""

    def __init__(self, store: EventStore, *, policy: HoldPolicy = DEFAULT_POLICY,
                 batch_size: int = 5_000, commit_every: int = 50_000,
                 lead_poll: float = 0.2, evict: bool = True, name: str = name) -> None:
        self.store, self.policy, self.batch_size = store, policy, batch_size
        self.name = name
        self.commit_every = commit_every
        """Catching up, write at most this many events' changes in one transaction. A
        commit's cost follows the pages it touches, and the accounts' rows are spread over
        their tables, so a larger span writes each page once for more events (a 1M-event
        rebuild: 16 us an event of commits at 10,000, 8 at 50,000). No writer of the log
        waits for it: on SQLite the tables have a file of their own, on PostgreSQL they
        share no row with the log (``projections.backends``). The span's rows are held until
        its commit: memory grows with it (50,000: ~40 MB)."""
        self.lead_poll = lead_poll
        """Seconds between attempts to take the lead while another runner holds it."""
        self.evict = evict
        """Let settled groups leave memory (``projections.live``): memory then follows what
        is open. Off, everything stays (faster on a small ledger)."""
        self.off_loop = False
        """Fold and derive in a worker thread (``_compute``): set for a rebuild's runner."""
        self.on_commit: Callable[[int], None] | None = None
        """Called with the number of events each commit applied (a progress bar's advance)."""
        self.backend = backend_for(store, self.name)
        self.position = 0
        self._accounts: dict[str, LiveAccount] = {}
        self.quarantined = 0
        """Events the projections could not apply (``Unprojectable``), listed in the
        ``quarantined`` table: the ledger is degraded while there are any."""
        self.failure: str | None = None
        """Why ``follow`` last failed, until it applies the log again (for ``/health``)."""
        self._moved = anyio.Event()
        self._leaders = 0  # this runner's tasks holding the lead now
        self._guard = anyio.Lock()  # taking and giving up the lead
        self._applying = anyio.Lock()  # loading the books, or folding and committing
        self._stale = False  # the books may be ahead of the tables
        self._outdated = False  # the tables were written by another model version
        self.replaces_outdated_online = self.backend.rebuilds_online
        """Tables of another model version are rebuilt beside (``rebuild_online``) while
        the runner answers from the log (``reads_the_log``); off for a rebuild's own runner,
        whose leftover tables are simply begun again."""
        self._replacing = anyio.Lock()  # one task rebuilds outdated tables; others wait
        self._rebuilding_here = anyio.Lock()  # this runner's rebuild, until its tables go

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.backend.open()
        try:
            await self._load()
        except BaseException:
            await self.backend.close()
            raise
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None,
                        ) -> None:
        await self.backend.close()

    async def _load(self) -> None:
        """Rebuild the in-memory books from the stored facts: no replay of the log."""
        stored = await self.backend.load()
        self.position, self._stale = stored.position, False
        self.quarantined = stored.quarantined
        self._accounts = {}
        self._outdated = stored.position > 0 and stored.model != MODEL_VERSION
        if self._outdated:
            return  # facts of another version may not even decode: rebuilt when leading
        if stored.position == 0:  # nothing applied: rows there are other projections' (the
            self.quarantined = 0  # parts of one projection on PostgreSQL share its tables)
            return
        sums: dict[str, Sums | None] = {}
        for account_id, facts in stored.accounts:
            account = _ACCOUNT_DECODER.decode(facts)
            self._account(account_id).book.movements = account.movements
            self._account(account_id).book.latest_at = account.latest_at
            sums[account_id] = account.sums
        entities: dict[str, list[tuple[str, str, Any]]] = {}
        for entity_id, kind, account_id, facts in stored.entities:
            self._account(account_id)
            entities.setdefault(account_id, []).append(
                (kind, entity_id, _DECODERS[kind].decode(facts)))
        with _bug_guard(f"the stored facts (checkpoint {stored.position})"):
            for account_id, live in self._accounts.items():
                stored_sums = sums.get(account_id)
                if stored_sums is not None:
                    live.load(stored_sums, entities.get(account_id, []))
                else:  # nothing settled yet: the parts are all there is
                    live.restore(entities.get(account_id, []))
                    live.refresh([("account", account_id), *(
                        (kind, entity_id)
                        for kind, entity_id, _ in entities.get(account_id, []))], None)

    def _account(self, account_id: str) -> LiveAccount:
        live = self._accounts.get(account_id)
        if live is None:
            live = self._accounts[account_id] = LiveAccount(
                AccountBook(account_id, prune=True), self.policy)
        return live

    async def _load_if_moved(self) -> None:
        """Load the stored state if another runner wrote since this one last did."""
        async with self._applying:
            if await self.backend.checkpoint() != self.position:
                await self._load()

    @property
    def outdated(self) -> bool:
        """Whether the tables were written by another model version: the first commit of
        this runner as leader rebuilds them from position 0."""
        return self._outdated

    @property
    def reads_the_log(self) -> bool:
        """Whether this runner answers from the log's own account index rather than its
        tables: they were written by another model version, and the first commit of this
        runner as leader rebuilds them beside (``rebuild_online``) and swaps them in. Until
        then every account's events are read from the log up to its head, so answers are
        current (and slower); expiries wait for the swap to be swept."""
        return self._outdated and self.replaces_outdated_online

    @property
    def rebuilding(self) -> bool:
        """Whether this runner is rebuilding its projection beside it now."""
        return self._rebuilding_here.locked()

    async def refresh(self) -> None:
        """Load the stored state if another runner wrote since this one last did (how a
        runner that does not lead sees the leader's swap)."""
        await self._load_if_moved()

    @property
    def leading(self) -> bool:
        """Whether this runner holds the projection's lead (and so may write) now."""
        return self._leaders > 0

    @asynccontextmanager
    async def _lead(self, wait: bool = True) -> AsyncIterator[bool]:
        """Hold the projection's lead for the block (True), waiting for it; or, without
        ``wait`` and with another runner leading, take that runner's stored state (False).
        The tasks of one runner share its lead."""
        while True:
            async with self._guard:
                if self._leaders > 0 or await self.backend.try_lead():
                    self._leaders += 1
                    break
            if not wait:
                await self._load_if_moved()
                yield False
                return
            await anyio.sleep(self.lead_poll)
        try:
            await self._load_if_moved()
            yield True
        finally:
            with anyio.CancelScope(shield=True):
                async with self._guard:
                    self._leaders -= 1
                    if self._leaders == 0:
                        await self.backend.resign()

    # --- following the log --------------------------------------------------------------

    async def catch_up(self, *, wait: bool = True) -> int:
        """Apply everything committed so far; return the position reached. If another runner
        leads, wait for the lead; or, with ``wait=False``, take the state it has stored."""
        async with self._lead(wait) as leading:
            if leading:
                async with self._writing():
                    span = _Span(self.position)
                    async for batch in self.store.read_batches(
                            self.position, batch_size=self.batch_size):
                        while batch:  # in pieces that fill the span, no more
                            piece = batch[:self.commit_every - span.events]
                            batch = batch[len(piece):]
                            await self._read_back(piece)
                            with _bug_guard(_positions(span)):
                                await self._compute(self._fold_sharing, piece, span)
                            if span.events >= self.commit_every:
                                span = await self._commit(span)
                    await self._commit(span)
        return self.position

    async def follow(self, *, retry_after: float | None = None,
                     retry_cap: float = 60.0) -> None:
        """Take the lead (waiting while another runner has it), then apply the log as it
        grows, forever (run it in a task group; cancel to stop). A failure (the database
        connection lost, a ``ProjectionFailedError``) is raised; or, with ``retry_after``,
        logged, shown by ``failure``, and retried after a backoff from ``retry_after``
        seconds, doubling up to ``retry_cap``, as the leader or as a standby if another
        runner took over. Only the read side waits: the log goes on recording."""
        failures = 0
        while True:
            try:
                async with self._lead():
                    if self.reads_the_log:  # before subscribing from the old checkpoint
                        await self._replace_outdated()
                    if self.position >= await self.store.head():
                        self.failure, failures = None, 0  # leading again, nothing behind
                    async for batch in self.store.subscribe(self.position,
                                                            batch_size=self.batch_size):
                        await self._apply(batch)
                        failures = 0
            except Exception as exc:  # the database gone away, or a bug: say which, retry
                if retry_after is None:
                    raise
                failures += 1
                wait = backoff(failures, retry_after, max(retry_cap, retry_after))
                self.failure = (f"{str(exc) or type(exc).__name__} (failed {failures} time(s) "
                                f"in a row; next try in {wait:g} s)")
                log.warning("projection runner failed; retrying", error=str(exc),
                            failures=failures, retry_in=wait,
                            exc_info=not isinstance(exc, LedgerError))
                await anyio.sleep(wait)

    async def wait_for(self, position: int) -> None:
        """Return once this runner has applied the log up to ``position``."""
        while self.position < position:
            moved = self._moved
            await moved.wait()

    async def rebuild(self, *, workers: int = 1, wait: bool = True) -> int:
        """Throw the read models away and recompute them from position 0, in place: until
        it is done, readers see the tables fill. ``rebuild_online`` does not stop them.
        With ``workers`` > 1, that many processes fold the log up to its head in parts
        (``projections.partitions``). Another runner leading, wait for the lead; or, with
        ``wait=False``, ``LeadElsewhereError``."""
        _check_workers(workers)
        async with self._lead(wait) as leading:
            if not leading:
                raise LeadElsewhereError(
                    f"another runner leads the projection {self.name!r}: rebuild it there")
            await self.backend.clear()
            await self._load()
            if workers > 1:
                await self._fold_in_parts(workers)
            return await self.catch_up()

    async def rebuild_online(self, *, wait: bool = True, workers: int = 1) -> int:
        """Recompute the read models from position 0 into a projection of their own
        (``<name>~rebuild``) while this one keeps following the log and answering, then swap
        them in at the head, in one transaction: no reader sees a half-built table. Return
        the position of the swap.

        A rebuild stopped half-way (a crash, SIGKILL) leaves the current tables serving and
        its own where it stopped: the next ``rebuild_online`` resumes from there. One
        rebuild at a time: another waits for it, or with ``wait=False`` gets a
        ``ProjectionConflictError``. This runner must be able to lead: with ``wait=False``
        and another runner leading, ``LeadElsewhereError`` (``rebuild_beside`` then)."""
        self._check_online()
        async with self._lead(wait) as leading:
            if not leading:
                raise LeadElsewhereError(
                    f"another runner leads the projection {self.name!r}: rebuild it there")
            async with self._rebuilding(wait, workers) as shadow:
                await shadow.catch_up()  # the bulk, while this runner goes on following
                async with self._applying:  # this runner's commits wait for the swap
                    await shadow.catch_up()  # what was recorded meanwhile
                    await self.backend.adopt(shadow.backend, self.position)
                    self._take_over(shadow)
                with anyio.CancelScope(shield=True):  # swapped in: never left to resume
                    await shadow.backend.discard()
        log.info("projection rebuilt online", projection=self.name, position=self.position)
        return self.position

    async def rebuild_beside(self, *, wait: bool = True, workers: int = 1) -> int:
        """The rebuild of ``rebuild_online`` up to the head, left for the leading runner to
        swap in (``CardLedger.run_background`` resumes it): for a process that does not
        lead. Returns the position it reached."""
        self._check_online()
        async with self._rebuilding(wait, workers) as shadow:
            return await shadow.catch_up()

    def _check_online(self) -> None:
        if not self.backend.rebuilds_online:
            raise ProjectionUsageError(
                f"no online rebuild with {type(self.backend).__name__}: it cannot keep "
                "a rebuild's tables apart (rebuild() recomputes them in place)")

    @asynccontextmanager
    async def _rebuilding(self, wait: bool, workers: int) -> AsyncIterator[ProjectionRunner]:
        """The projection a rebuild writes, its lead held: one rebuild at a time. Begun
        anew with ``workers`` > 1, its bulk is folded in parts."""
        _check_workers(workers)
        if not wait and self._rebuilding_here.locked():  # before opening its tables: they
            raise ProjectionConflictError(  # may be being dropped after a swap
                f"a rebuild of the projection {self.name!r} is running already")
        async with self._rebuilding_here, self._rebuilding_shadow(wait, workers) as shadow:
            yield shadow

    @asynccontextmanager
    async def _rebuilding_shadow(self, wait: bool, workers: int,
                                 ) -> AsyncIterator[ProjectionRunner]:
        shadow = ProjectionRunner(self.store, policy=self.policy,
                                  batch_size=min(self.batch_size, _REBUILD_BATCH),
                                  commit_every=self.commit_every, lead_poll=self.lead_poll,
                                  evict=self.evict, name=f"{self.name}{REBUILD_SUFFIX}")
        shadow.on_commit, shadow.off_loop = self.on_commit, True
        shadow.replaces_outdated_online = False
        async with shadow, shadow._lead(wait) as rebuilding:
            if not rebuilding:
                raise ProjectionConflictError(
                    f"a rebuild of the projection {self.name!r} is running already")
            if workers > 1 and shadow.position == 0:
                await shadow._fold_in_parts(workers)
            yield shadow

    async def _fold_in_parts(self, workers: int) -> None:
        """Fold the log up to its head in parts, by ``workers`` processes at once, then take
        their rows as this projection's (empty until then) in one transaction."""
        upto = await self.store.head()
        parts = plan_parts(await self.store.account_sizes(upto), workers)
        names = [f"{self.name}{PART_SUFFIX}{n}" for n in range(len(parts))]
        await self.backend.drop_parts(names)  # a crashed attempt's
        url = store_url(self.store)
        try:
            async with anyio.create_task_group() as group:
                for name, part in zip(names, parts, strict=True):
                    group.start_soon(build_part, PartJob(url, name, part, upto, self.policy,
                                                         self.batch_size, self.commit_every))
        except BaseException as failed:
            with anyio.CancelScope(shield=True):
                await self.backend.drop_parts(names)
            if isinstance(failed, BaseExceptionGroup):  # one part failed: the others stopped
                raise failed.exceptions[0] from failed
            raise
        async with self._applying:
            await self.backend.merge(names, upto, MODEL_VERSION)
            await self._load()
        log.info("projection folded in parts", projection=self.name, parts=len(parts),
                 position=upto)
        if self.on_commit is not None:
            self.on_commit(upto)

    async def fold_part(self, part: AccountRange, upto: int) -> int:
        """Fold the events of ``part``'s accounts up to ``upto`` into this projection,
        account by account: one worker's share of a rebuild in parts
        (``projections.partitions``). Return how many events it folded."""
        async with self._lead(wait=False) as leading:
            if not leading:
                raise ProjectionConflictError(f"the part {self.name!r} is being built already")
            folded = 0
            async with self._writing():
                span = _Span(self.position, ordered=False)
                async for batch in self.store.read_accounts(part, upto=upto,
                                                            batch_size=self.batch_size):
                    _check_part(batch, part)
                    await self._read_back(batch)
                    with _bug_guard(_positions(span)):
                        self._fold(batch, span)
                    folded += len(batch)
                    if span.events >= self.commit_every:
                        span = await self._commit(span)
                await self._commit(span)
        return folded

    async def rebuild_left_off(self) -> bool:
        """Whether a ``rebuild_online`` stopped before its swap: its tables wait to resume."""
        return await self.backend.has_projection(f"{self.name}{REBUILD_SUFFIX}")

    def _take_over(self, shadow: ProjectionRunner) -> None:
        """Hold the books of ``shadow``, whose tables this runner's have just become."""
        self._accounts, self.position = shadow._accounts, shadow.position
        self.quarantined, self._stale, self._outdated = shadow.quarantined, False, False
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    async def _apply(self, events: list[StoredEvent[Event]]) -> None:
        async with self._writing():
            span = _Span(self.position)
            await self._read_back(events)
            with _bug_guard(_positions(span)):
                self._fold(events, span)
            await self._commit(span)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Fold and commit, one task at a time (a sweep's catch-up may run beside follow()).
        Between a fold and its commit the books are ahead of the tables: if the block fails
        there, the next one reloads them first."""
        assert self._leaders > 0, "only the leading runner writes"
        if self.reads_the_log:
            await self._replace_outdated()
        async with self._applying:
            if self._outdated:  # a backend that cannot rebuild beside: in place
                log.warning("projection tables written by another model version: rebuilding",
                            projection=self.name, model=MODEL_VERSION)
                await self.backend.clear()
                await self._load()
            if self._stale:
                await self._load()
            self._stale = True
            yield
            self._stale = False

    async def _replace_outdated(self) -> None:
        """Rebuild tables of another model version beside them and swap the new ones in,
        answering from the log meanwhile (``reads_the_log``); one task does it, the others
        wait for it."""
        async with self._replacing:
            if self._outdated:
                log.warning("projection tables written by another model version: rebuilding "
                            "them online, answering from the log meanwhile",
                            projection=self.name, model=MODEL_VERSION)
                await self.rebuild_online()

    async def _read_back(self, events: list[StoredEvent[Event]]) -> None:
        """Before folding: restore the settled groups these events concern (a late report of
        theirs; a change of their card's state or capture window) from their table."""
        wanted: set[str] = set()
        cards: set[str] = set()
        latest: dict[str, datetime] = {}
        for stored in events:
            payload = stored.payload
            account_id = account_of(payload) if isinstance(payload, DomainEvent) else None
            live = self._accounts.get(account_id) if account_id else None
            if live is None:
                continue  # an account seen for the first time has nothing settled
            assert isinstance(payload, DomainEvent) and account_id is not None
            book = live.book
            if isinstance(payload, HoldObserved | HoldExpired):
                if payload.authorisation_id not in book.holds:
                    wanted.add(payload.authorisation_id)
            elif isinstance(payload, TransactionObserved):
                if payload.transaction_id not in book.transactions:
                    wanted.add(payload.authorisation_id or f"~{payload.transaction_id}")
            elif isinstance(payload, CardObserved):
                cards.add(payload.card_id)
            if latest.get(account_id) is None or payload.at > latest[account_id]:
                latest[account_id] = payload.at
        for account_id, moment in latest.items():  # capture windows this batch may close
            live = self._accounts[account_id]
            cards |= {card_id for card_id, until in live.windows.items()
                      if (live.moment is None or live.moment < until) and until <= moment}
        if cards:
            wanted |= {hold_id for hold_id, account_id in await self.backend.holds_of_cards(
                sorted(cards)) if hold_id not in self._accounts[account_id].book.holds}
        if not wanted:
            return
        found: dict[str, list[tuple[str, str, Any]]] = {}
        for entity_id, kind, account_id, facts in await self.backend.settled_facts(
                sorted(wanted)):
            found.setdefault(account_id, []).append(
                (kind, entity_id, _DECODERS[kind].decode(facts)))
        for account_id, entities in found.items():
            self._account(account_id).restore(entities)

    async def _compute(self, work: Callable[..., T], *args: Any) -> T:
        """Fold or derive: seconds of pure Python for a long catch-up. A rebuild beside a
        serving runner does it in a worker thread, so that the event loop it shares with the
        service keeps its turns (the GIL is handed over every few milliseconds); nothing
        else touches that runner's books meanwhile."""
        if self.off_loop:
            return await anyio.to_thread.run_sync(work, *args)
        return work(*args)

    def _fold_sharing(self, events: list[StoredEvent[Event]], span: _Span) -> None:
        """``_fold``, and off the loop, the GIL handed to a waiting thread every few events:
        otherwise the event loop's thread would wait its switch interval (5 ms) each time it
        wants it back (every await that a thread or a syscall completes)."""
        if not self.off_loop:
            return self._fold(events, span)
        for start in range(0, len(events), _SHARE_EVERY):
            self._fold(events[start:start + _SHARE_EVERY], span)
            time.sleep(0)  # releases the GIL: a waiting thread takes it now
        return None

    def _fold(self, events: Iterable[StoredEvent[Event]], span: _Span) -> None:
        ordered = span.ordered
        for stored in events:
            if stored.position > span.last:
                span.last = stored.position
            elif ordered:
                continue  # applied already
            span.events += 1
            payload = stored.payload
            if not isinstance(payload, DomainEvent):
                continue
            account_id = account_of(payload)
            contradicting = contradiction(payload)
            if contradicting is not None:
                span.write.anomalies.append(contradicting)
            if account_id is None:
                continue
            try:
                self._account(account_id).book.apply(payload)
            except Unprojectable as exc:
                span.write.quarantined.append(quarantine_row(stored.position, payload, exc))
                self.quarantined += 1
                log.error("event quarantined: the projections cannot apply it",
                          position=stored.position, reason=str(exc))
                continue
            span.write.account_events.append((account_id, stored.position))
            span.touched.setdefault(account_id, {})[entity_of(payload)] = None

    async def _commit(self, span: _Span) -> _Span:
        """Write what the span changed, with its checkpoint; return the next, empty span."""
        if span.events == 0:
            return span
        with _bug_guard(_positions(span)):
            leaving = await self._compute(self._derive, span)
        with trace("cardledger.projection_commit", after=span.after, last=span.last):
            await self.backend.commit(span.write, span.after, span.last)
        for live, settled in leaving:
            live.evict(settled)
        if self.on_commit is not None:
            self.on_commit(span.events)
        self.position, self.failure = span.last, None
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
        return _Span(self.position, ordered=span.ordered)

    def _derive(self, span: _Span) -> list[tuple[LiveAccount, list[str]]]:
        """Queue in the span's write the rows its events changed, and the groups that may
        leave memory once it is committed."""
        write = span.write
        write.models.append((self.name, MODEL_VERSION))
        leaving: list[tuple[LiveAccount, list[str]]] = []
        for n, (account_id, touched) in enumerate(span.touched.items(), 1):
            if self.off_loop and n % _SHARE_EVERY == 0:
                time.sleep(0)  # the GIL to a waiting thread, as _fold_sharing
            live = self._accounts[account_id]
            book = live.book
            live.refresh(touched, write)
            settled = live.settled() if self.evict else []
            leaving_now = {entity for g in settled for entity in live.members(g)}
            for kind, entity_id in touched:
                facts = _entities_of(book, kind).get(entity_id)
                if facts is not None:  # written settled at once (open 0) if it leaves now
                    write.entities.append((entity_id, kind, account_id,
                                           group_of(kind, entity_id, facts),
                                           int((kind, entity_id) not in leaving_now),
                                           _ENCODER.encode(facts)))
            write.settled += sorted(leaving_now.difference(touched))
            leaving.append((live, settled))
            write.accounts.append((account_id, _ENCODER.encode(
                AccountFacts(book.movements, book.latest_at, live.sums()))))
        return leaving

    # --- reading ------------------------------------------------------------------------

    def account_ids(self) -> list[str]:
        """The accounts in the projection's books (none while it ``reads_the_log``)."""
        return sorted(self._accounts)

    async def known_accounts(self) -> list[str]:
        """``account_ids``; while the runner ``reads_the_log``, the accounts in the log's
        account index up to its head (there, an account whose events were all quarantined
        is known too)."""
        if not self.reads_the_log:
            return self.account_ids()
        sizes = await self.store.account_sizes(await self.store.head())
        return sorted(account_id for account_id, _ in sizes if account_id is not None)

    def live_holds(self) -> list[HoldView]:
        """Holds still pending or capturing whose expiry the log does not record yet."""
        return [hold for live in self._accounts.values() for hold in live.holds.values()
                if hold.status in ("pending", "capturing")
                and live.book.holds[hold.authorisation_id].expired_at is None]

    async def stored_view(self, account_id: str) -> AccountView | None:
        """The account's view as the projection holds it (settled groups read back)."""
        live = self._accounts.get(account_id)
        if live is None:
            return None
        book = AccountBook(account_id, prune=True, movements=live.book.movements,
                           holds=dict(live.book.holds), transactions=dict(live.book.transactions),
                           cards=dict(live.book.cards), latest_at=live.book.latest_at)
        for entity_id, kind, _, facts in await self.backend.account_facts(account_id):
            entities = _entities_of(book, kind)
            if entity_id not in entities:
                entities[entity_id] = _DECODERS[kind].decode(facts)
        return view(book, None, self.policy)

    async def view_as_of(self, account_id: str, as_of: datetime | None = None,
                         known_at: datetime | None = None) -> AccountView:
        """The account as of business time ``as_of``, knowing only what was recorded by
        ``known_at``: computed from the log, reading only this account's events."""
        book, _ = await self._book_known_at(account_id, known_at)
        return view(book, as_of, self.policy)

    async def journal_as_of(self, account_id: str, as_of: datetime,
                            known_at: datetime | None = None) -> list[Entry]:
        """The account's double-entry journal (``projections.postings``) up to ``as_of``:
        one balanced entry per currency at each business time its figures changed."""
        book, times = await self._book_known_at(account_id, known_at)
        return journal(book, [t for t in times if t <= as_of] + [as_of], self.policy)

    async def history(self, account_id: str, known_at: datetime | None = None,
                      ) -> tuple[AccountBook, set[datetime]]:
        """The account's book from everything recorded by ``known_at`` (default: all), and
        the business times of its events: what a journal or a statement is made from."""
        return await self._book_known_at(account_id, known_at)

    async def _book_known_at(self, account_id: str, known_at: datetime | None,
                             ) -> tuple[AccountBook, set[datetime]]:
        """The account's book from its events recorded by ``known_at``, and their business
        times."""
        book, times = AccountBook(account_id), set()
        for stored in await self.account_events(account_id, known_at):
            assert isinstance(stored.payload, DomainEvent)
            apply_or_skip(book, stored.payload)
            times |= moments_of(stored.payload)
        return book, times

    async def account_events(self, account_id: str, known_at: datetime | None = None, *,
                             after: int = 0) -> list[StoredEvent[Event]]:
        """The account's events after position ``after`` recorded by ``known_at`` (default:
        all), in log order: those the projection indexes, then those the log gained since
        its checkpoint; while the runner ``reads_the_log``, read by the log's account index."""
        if self.reads_the_log:
            return [stored async for batch in self.account_batches(
                account_id, _NEVER_AT if known_at is None else known_at)
                for stored in batch if stored.position > after]
        position = self.position
        records = await self.backend.account_records(
            account_id, after, position, _NEVER if known_at is None else micros(known_at))
        found = [stored for stored in self.store.registry.decode_records(records)
                 if isinstance(stored.payload, DomainEvent)]
        async for batch in self.store.read_batches(max(position, after)):
            found += [stored for stored in batch if isinstance(stored.payload, DomainEvent)
                      and account_of(stored.payload) == account_id
                      and (known_at is None or stored.recorded_at <= known_at)]
        return found

    async def account_batches(self, account_id: str, known_at: datetime,
                              upto: int | None = None,
                              ) -> AsyncIterator[list[StoredEvent[Event]]]:
        """``account_events`` in batches, read by the log's account index up to ``upto``
        (default: its head): what a statement of millions of lines is made from without
        holding them."""
        accounts = AccountRange(account_id, account_id)
        upto = await self.store.head() if upto is None else upto
        async for batch in self.store.read_accounts(accounts, upto=upto,
                                                    batch_size=self.batch_size):
            _check_part(batch, accounts, "its statement cannot be made from the index")
            yield [stored for stored in batch if isinstance(stored.payload, DomainEvent)
                   and stored.recorded_at <= known_at]


@contextmanager
def _bug_guard(what: str) -> Iterator[None]:
    """Folding events into the books and deriving rows is computation over what the store
    already accepted: whatever it raises is a bug. Say so in one line, naming ``what`` was
    being folded and where it failed, so that a command reports it and exits, and ``serve``
    shows it on ``/health``, instead of a traceback."""
    try:
        yield
    except ProjectionFailedError:
        raise
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}{f': {exc}' if str(exc) else ''}"
        raise ProjectionFailedError(
            f"the projections cannot apply {what} ({detail} at "
            f"{Path(frame.filename).name}:{frame.lineno}): a bug in cardledger; the log is "
            "intact and nothing of it was written") from exc


def _check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or not (
            1 <= workers <= MAX_WORKERS):
        raise ProjectionUsageError(f"workers: {workers!r} is not a number from 1 to "
                                   f"{MAX_WORKERS}")


def _check_part(events: list[StoredEvent[Event]], part: AccountRange,
                remedy: str = "rebuild with one worker") -> None:
    """Each event read for ``part`` is of its accounts: the log's account column agrees with
    the records (it is outside the hash chain, so ``verify`` does not vouch for it)."""
    for stored in events:
        if not part.holds(account_of(stored.payload)):
            raise ProjectionFailedError(
                f"position {stored.position}: its event's account is not the one the log "
                "indexes it under (the column altered, or an upcaster changed the account): "
                f"{remedy}")


def _positions(span: _Span) -> str:
    return f"log positions {span.after + 1}-{max(span.last, span.after + 1)}"


def _entities_of(book: AccountBook, kind: str) -> dict[str, Any]:
    """The book's entities of one kind (none for an account's own facts)."""
    if kind == "hold":
        return book.holds
    if kind == "transaction":
        return book.transactions
    return book.cards if kind == "card" else {}
