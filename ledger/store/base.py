"""The event store's public API and everything in it that does not depend on the backend.

A backend (``sqlite.py``, later PostgreSQL) supplies a handful of primitive operations: commit a
planned group, fetch rows after a position, read stream versions, read raw rows for
verification. This class turns them into the API: validation before anything reaches the
writer, group commit through one writer task, reads in bounded batches, subscriptions that go
through the same code path for history and live events, and the hash-chain walk.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
import time
import uuid
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec

from ledger.clock import Clock, utc_now
from ledger.errors import (
    DuplicateInBatchError,
    DuplicateStreamError,
    EmptyBatchError,
    InvalidAppendError,
    InvalidPositionError,
    LimitExceededError,
    StoreClosedError,
    StoreError,
    StoreFailedError,
    StoreUnavailableError,
)
from ledger.logs import get_logger
from ledger.store import limits
from ledger.store.chain import LogWalk
from ledger.store.limits import (
    check_category,
    check_consumer,
    check_position,
    check_stream_name,
)
from ledger.store.planner import Outcome, PreparedAppend, PreparedEvent, PreparedWrite, Row
from ledger.store.records import (
    AppendResult,
    Event,
    ExpectedVersion,
    NewEvent,
    StoredEvent,
    StreamAppend,
    StreamState,
    Tracking,
    VerifyReport,
    account_of,
)
from ledger.store.registry import EventRegistry
from ledger.store.tree import leaves
from ledger.tracing import span
from ledger.transparency.merkle import NodeKey
from ledger.transparency.reader import TreeReader

log = get_logger("store")

class LogFilter(msgspec.Struct, frozen=True):
    """Which events a read or subscription wants: stream categories and/or wire names."""

    categories: tuple[str, ...] = ()
    wire_names: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.categories and not self.wire_names


class AccountRange(msgspec.Struct, frozen=True):
    """Some accounts' part of the log: the accounts from ``first`` to ``last`` (inclusive, in
    text order; none if ``first`` is None), and with ``unowned`` the events of no account."""

    first: str | None
    last: str | None
    unowned: bool = False

    def holds(self, account: str | None) -> bool:
        if account is None:
            return self.unowned
        return self.first is not None and self.last is not None and (
            self.first <= account <= self.last)


class _Pending:
    """A write waiting for the writer: its request, and the slot for its outcome."""

    __slots__ = ("done", "outcome", "write")

    def __init__(self, write: PreparedWrite) -> None:
        self.write = write
        self.done = anyio.Event()
        self.outcome: tuple[AppendResult, ...] | BaseException | None = None


F = TypeVar("F", bound=Callable[..., Any])


def driver_errors(backend: str, lost: tuple[type[BaseException], ...],
                  failed: tuple[type[BaseException], ...]) -> Callable[[F], F]:
    """A backend method's decorator: no driver exception leaves the store. What ``lost``
    names (the server or file unreachable, locked, shutting down) becomes
    ``StoreUnavailableError``, to try again later; what ``failed`` names, ``StoreFailedError``.
    Errors the store handles itself are caught inside the method, before this."""

    def decorate(method: F) -> F:
        @contextmanager
        def translated() -> Iterator[None]:
            try:
                yield
            except lost as exc:
                raise StoreUnavailableError(f"{backend} unavailable: {exc}") from exc
            except failed as exc:
                raise StoreFailedError(f"{backend}: {exc}") from exc

        if not inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            def plain(*args: Any, **kwargs: Any) -> Any:
                # Not ``translated()``: this wraps every inline commit, where a context
                # manager's generator costs more than the rest of the wrapper.
                try:
                    return method(*args, **kwargs)
                except lost as exc:
                    raise StoreUnavailableError(f"{backend} unavailable: {exc}") from exc
                except failed as exc:
                    raise StoreFailedError(f"{backend}: {exc}") from exc

            return cast(F, plain)

        @functools.wraps(method)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with translated():
                return await method(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


class EventStore(abc.ABC):
    """An append-only event log. Use it as ``async with open_store(url) as store: ...``."""

    def __init__(self, registry: EventRegistry, *, clock: Clock = utc_now,
                 poll_interval: float = 1.0) -> None:
        self.registry = registry
        self._clock = clock
        self._poll_interval = poll_interval
        self._open = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._queue: deque[_Pending] = deque()
        self._queued = anyio.Event()  # set when the queue is not empty, or the store closes
        self._room = anyio.Event()  # set when the queue has room again
        self._closing = False
        self._committed: anyio.Event | None = None  # made by the first waiter (_next_commit)
        self._turn_at = 0.0  # when an inline commit last gave the event loop a turn
        self._writing = False  # the writer task has taken a group and not settled it yet
        self._head = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._connect()
        try:
            self._head = await self._max_position()
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
        except BaseException:
            await self._disconnect()
            raise
        self._closing = False
        self._task_group.start_soon(self._write_loop)
        self._open = True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._open = False
        assert self._task_group is not None
        # The writer finishes what was already accepted, then stops. The block's own exception
        # is not handed to the task group: it propagates as it was raised, not wrapped in an
        # ExceptionGroup (the writer is internal; a caller should not see its task group).
        self._closing = True
        self._queued.set()
        try:
            await self._task_group.__aexit__(None, None, None)
        finally:
            await self._disconnect()

    def _require_open(self) -> None:
        if not self._open:
            raise StoreClosedError("the store is not open: use 'async with open_store(...)'")

    # --- appending ----------------------------------------------------------------------

    async def append(self, stream: str, events: Sequence[NewEvent[Event]], *,
                     expected: ExpectedVersion = StreamState.ANY,
                     tracking: Tracking | None = None) -> AppendResult:
        """Append ``events`` to ``stream`` atomically, after checking ``expected``.

        Returns once the events are durably committed. Appending a batch whose event ids are
        all stored already, with identical content, returns the original positions
        (``duplicate=True``) and writes nothing, whatever ``expected`` says: it is a retry of
        an append that succeeded. Raises ``WrongExpectedVersionError``,
        ``EventIdConflictError``, ``PartialDuplicateError`` or an ``InvalidAppendError``; in
        every case nothing was written. If the calling task is cancelled while waiting, the
        append may or may not have been committed: retry it with the same event ids.
        ``tracking`` records a consumer's position in the same transaction (``track``).
        """
        self._require_open()
        prepared = self.prepare(stream, events, expected)
        if tracking is not None:
            tracking = await self._checked_tracking(tracking)
        write = PreparedWrite((prepared,), tracking)
        with span("cardledger.append", stream=stream, events=len(events)):
            (result,) = await self._write(write)
        return result

    async def append_many(self, appends: Sequence[StreamAppend], *,
                          tracking: Tracking | None = None) -> list[AppendResult]:
        """Append to several streams in one transaction: all or nothing, each stream at its
        own expected version. If any stream has moved, nothing is written and the
        ``WrongExpectedVersionError`` names that stream. A retry of a committed call returns
        its results (``duplicate=True``). ``tracking``: as for ``append``.

        The same stream twice, no streams, or more than one append's limits in all (events,
        bytes) is an ``InvalidAppendError``."""
        self._require_open()
        if not isinstance(appends, Sequence) or not appends:
            raise EmptyBatchError("append_many takes a non-empty list of StreamAppend")
        streams = [getattr(a, "stream", None) for a in appends]
        if len(set(streams)) < len(streams):
            raise DuplicateStreamError(f"append_many names a stream twice ({streams!r}): put "
                                       "one stream's events in one StreamAppend")
        prepared = tuple(self.prepare(*_stream_append(a)) for a in appends)
        _check_write_limits(prepared)
        write = PreparedWrite(prepared, await self._checked_tracking(tracking))
        with span("cardledger.append_many", streams=len(prepared)):
            return list(await self._write(write))

    async def track(self, tracking: Tracking) -> None:
        """Record a consumer's position alone: it handled the events up to it and had nothing
        to write. ``TrackingConflictError`` when that position is recorded already."""
        self._require_open()
        await self._write(PreparedWrite((), await self._checked_tracking(tracking, True)))

    async def tracked_position(self, consumer: str) -> int:
        """The position ``consumer`` last committed (0: none yet): resume after it."""
        self._require_open()
        return await self._tracked(check_consumer(consumer))

    async def _checked_tracking(self, tracking: Tracking | None,
                                required: bool = False) -> Tracking | None:
        if tracking is None and not required:
            return None
        if not isinstance(tracking, Tracking):
            raise InvalidAppendError(f"tracking must be a Tracking, not {tracking!r}")
        check_consumer(tracking.consumer)
        _within(tracking.position, "tracking position", 1, await self.head())
        return tracking

    async def _write(self, write: PreparedWrite) -> tuple[AppendResult, ...]:
        if not self._queue and self._commits_alone():
            return self._commit_now(write)
        while len(self._queue) >= limits.WRITE_QUEUE_DEPTH:  # back-pressure
            await self._room.wait()
        pending = _Pending(write)
        self._queue.append(pending)
        if not (len(self._queue) == 1 and await self._committed_alone(pending)):
            self._queued.set()
            await pending.done.wait()
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        assert pending.outcome is not None
        return pending.outcome

    def _commits_alone(self) -> bool:
        """Whether a write finding the queue empty can be committed in the caller's task,
        now: the writer is idle, the backend commits inline, and no other task is ready (one
        that is might append too, and join a group commit: ``_committed_alone``)."""
        if self._writing or not self._commits_inline() or _others_ready():
            return False
        # Only tasks that are ready show in the loop's queue, not those waiting on a socket:
        # every so often the write takes the queued path, and its turn (_committed_alone).
        return time.monotonic() - self._turn_at < limits.MAX_SECONDS_WITHOUT_TURN

    def _commit_now(self, write: PreparedWrite) -> tuple[AppendResult, ...]:
        # No await from the caller's check to the settling: nothing else uses the writer.
        try:
            outcome = self._commit_inline([write], self._clock())[0]
        finally:
            self._notify_committed()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _committed_alone(self, pending: _Pending) -> bool:
        """The fast path of a write that finds no other waiting: commit it in this task, when
        the backend can (``_commit_inline``), instead of waking the writer. Waking it costs a
        hop to its thread and back, more than the commit itself on a fast disk.

        First every task ready to run gets a turn: those that append now queue behind this
        write, and then all of them go to the writer together, as one group commit."""
        if self._writing or not self._commits_inline():
            return False
        await anyio.lowlevel.cancel_shielded_checkpoint()
        self._turn_at = time.monotonic()
        if self._writing or len(self._queue) != 1 or self._queue[0] is not pending:
            return False
        self._queue.popleft()
        # No await from here to the settling: nothing else can use the writer meanwhile.
        outcomes: Sequence[Outcome | BaseException]
        try:
            outcomes = self._commit_inline([pending.write], self._clock())
        except Exception as exc:  # one write: its own failure, as the writer would give it
            outcomes = [exc]
        self._settle([pending], outcomes)
        return True

    def prepare(self, stream: str, events: Sequence[NewEvent[Event]],
                expected: ExpectedVersion) -> PreparedAppend:
        """Validate and encode one append. Runs in the caller's task: bad input never queues."""
        check_stream_name(stream)
        if not isinstance(expected, StreamState) and (
            not isinstance(expected, int) or isinstance(expected, bool) or expected < 0
        ):
            raise InvalidAppendError(f"expected must be a StreamState or a version >= 0, "
                                     f"not {expected!r}")
        if not events:
            raise EmptyBatchError(f"append to {stream!r} carries no events")
        if len(events) > limits.MAX_BATCH_EVENTS:
            raise LimitExceededError(f"a batch holds at most {limits.MAX_BATCH_EVENTS} events, "
                                     f"this one {len(events)}")
        prepared = self._prepare_events(events)
        ids = frozenset(e.id_bytes for e in prepared)
        if len(ids) < len(prepared):
            raise DuplicateInBatchError(f"append to {stream!r} names an event id twice")
        size = sum(len(e.payload) + len(e.metadata) for e in prepared)
        if size > limits.MAX_BATCH_BYTES:
            raise LimitExceededError(f"a batch is at most {limits.MAX_BATCH_BYTES} bytes "
                                     f"encoded, this one {size}")
        return PreparedAppend(stream, expected, prepared, ids)

    def _prepare_events(self, events: Sequence[NewEvent[Event]]) -> tuple[PreparedEvent, ...]:
        # The hot loop of every append: names bound once, one pass.
        registry = self.registry
        encode_payload, encode_metadata = registry.encode_payload, registry.encode_metadata
        UUID, max_bytes, prepared = uuid.UUID, limits.MAX_EVENT_BYTES, []
        for event in events:
            if event.__class__ is not NewEvent and not isinstance(event, NewEvent):
                raise InvalidAppendError(f"append takes NewEvent items, not {type(event).__name__}")
            event_id = event.event_id
            if event_id.__class__ is not UUID and not isinstance(event_id, UUID):
                raise InvalidAppendError(f"event_id must be a UUID, not {event_id!r}")
            wire, schema_version, payload = encode_payload(event.payload)
            metadata = encode_metadata(event.metadata)
            if len(payload) + len(metadata) > max_bytes:
                raise LimitExceededError(f"an event is at most {max_bytes} bytes encoded, "
                                         f"{wire} is {len(payload) + len(metadata)}")
            prepared.append(PreparedEvent(event_id, event_id.bytes, wire, schema_version,
                                          payload, metadata, account_of(event.payload)))
        return tuple(prepared)

    async def _write_loop(self) -> None:
        """The one writer: take everything queued (up to a limit), commit it together."""
        queue = self._queue
        while True:
            await self._queued.wait()
            group, size = [], 0
            while queue and size < limits.MAX_GROUP_EVENTS:
                group.append(queue.popleft())
                size += sum(len(a.events) for a in group[-1].write.appends)
            if not queue and not self._closing:
                # All taken: the next append that waits for the writer sets it again. Left
                # set, it would wake the writer for a lone append's fast path and take it.
                self._queued = anyio.Event()
            if not group:
                if self._closing:
                    return
                continue
            room, self._room = self._room, anyio.Event()
            room.set()
            self._writing = True
            try:
                await self._commit_and_settle(group)
            finally:
                self._writing = False

    async def _commit_and_settle(self, group: list[_Pending]) -> None:
        # Shielded: once a group is taken, its callers get an answer even at shutdown.
        with anyio.CancelScope(shield=True):
            outcomes: Sequence[Outcome | BaseException]
            try:
                outcomes = await self._commit_group([p.write for p in group], self._clock())
            except StoreError as exc:
                outcomes = [exc] * len(group)
            except Exception as exc:  # the backend failed as a whole: isolate the callers
                log.warning("group commit failed, retrying appends one by one", error=str(exc))
                outcomes = [await self._commit_alone(p.write) for p in group]
            self._settle(group, outcomes)

    def _settle(self, group: list[_Pending], outcomes: Sequence[Outcome | BaseException]) -> None:
        for pending, outcome in zip(group, outcomes, strict=True):
            pending.outcome = outcome
            pending.done.set()
        self._notify_committed()

    async def _commit_alone(self, write: PreparedWrite) -> Outcome | BaseException:
        try:
            return (await self._commit_group([write], self._clock()))[0]
        except Exception as exc:
            return exc

    def _next_commit(self) -> anyio.Event:
        """The event the next commit sets. Take it before reading the head: a commit between
        the two then still wakes the waiter."""
        if self._committed is None:
            self._committed = anyio.Event()
        return self._committed

    def _notify_committed(self) -> None:
        # No event when nobody waits: a commit with no subscriber makes none.
        committed, self._committed = self._committed, None
        if committed is not None:
            committed.set()

    # --- reading ------------------------------------------------------------------------

    async def head(self) -> int:
        """The position of the last committed event (0 for an empty log)."""
        self._require_open()
        self._head = max(self._head, await self._max_position())
        return self._head

    async def stream_version(self, stream: str) -> int | None:
        """The version of the stream's last event, or None when the stream does not exist."""
        self._require_open()
        check_stream_name(stream)
        return (await self._stream_versions([stream])).get(stream)

    async def read_stream(self, stream: str, *, from_version: int = 0,
                          limit: int | None = None) -> list[StoredEvent[Event]]:
        """The stream's events from ``from_version`` on, in version order."""
        self._require_open()
        check_stream_name(stream)
        check_position(from_version, "from_version")
        if limit is not None:
            check_position(limit, "limit")
        records = await self._fetch_stream(stream, from_version, limit)
        return self.registry.decode_records(records)

    def make_filter(self, categories: Iterable[str] = (), types: Iterable[str] = ()) -> LogFilter:
        return LogFilter(tuple(check_category(c) for c in categories),
                         tuple(self.registry.wire_names_of(types)) if types else ())

    async def read_batches(self, after: int = 0, *, categories: Iterable[str] = (),
                           types: Iterable[str] = (),
                           batch_size: int = limits.READ_BATCH_EVENTS,
                           ) -> AsyncGenerator[list[StoredEvent[Event]], None]:
        """The log after position ``after`` up to its current head, in bounded batches."""
        self._require_open()
        check_position(after, "after")
        check_position(batch_size, "batch_size", least=1)
        log_filter = self.make_filter(categories, types)
        upto = await self.head()
        while after < upto:
            records, after = await self._fetch(after, upto, log_filter, batch_size)
            if records:
                yield self.registry.decode_records(records)

    async def account_sizes(self, upto: int) -> list[tuple[str | None, int]]:
        """How many events of positions 1..``upto`` each account has, in account order; those
        of no account first, as None (read from the account index alone)."""
        self._require_open()
        check_position(upto, "upto")
        sizes = await self._account_sizes(upto)
        return sorted(sizes, key=lambda size: (size[0] is not None, size[0] or ""))

    async def read_accounts(self, accounts: AccountRange, *, upto: int,
                            batch_size: int = limits.READ_BATCH_EVENTS,
                            ) -> AsyncGenerator[list[StoredEvent[Event]], None]:
        """The events of ``accounts`` in positions 1..``upto``, in bounded batches: those of
        no account first (``unowned``), then account by account, each one's in log order."""
        self._require_open()
        check_position(upto, "upto")
        check_position(batch_size, "batch_size", least=1)
        starts: list[tuple[str | None, int]] = [(None, 0)] if accounts.unowned else []
        if accounts.first is not None:
            starts.append((accounts.first, 0))
        for start in starts:
            while rows := await self._fetch_accounts(start, accounts.last, upto, batch_size):
                yield self.registry.decode_records(row[2] for row in rows)
                start = rows[-1][0], rows[-1][1]

    async def read_all(self, after: int = 0, *, categories: Iterable[str] = (),
                       types: Iterable[str] = ()) -> AsyncIterator[StoredEvent[Event]]:
        """Every event after position ``after``, one by one (see ``read_batches``)."""
        async for batch in self.read_batches(after, categories=categories, types=types):
            for event in batch:
                yield event

    async def subscribe(self, after: int = 0, *, categories: Iterable[str] = (),
                        types: Iterable[str] = (),
                        batch_size: int = limits.READ_BATCH_EVENTS,
                        ) -> AsyncIterator[list[StoredEvent[Event]]]:
        """Catch up from checkpoint ``after``, then follow new commits, forever.

        History and live events come through the same fetch. Commits made through this store
        wake the subscriber at once; commits by other processes are seen within
        ``poll_interval`` seconds.
        """
        self._require_open()
        check_position(after, "after")
        check_position(batch_size, "batch_size", least=1)
        log_filter = self.make_filter(categories, types)
        scanned = after
        while True:
            committed = self._next_commit()
            upto = await self.head()
            if scanned < upto:
                records, scanned = await self._fetch(scanned, upto, log_filter, batch_size)
                if records:
                    yield self.registry.decode_records(records)
                continue
            with anyio.move_on_after(self._poll_interval):
                await committed.wait()

    async def wait_for_position(self, position: int) -> None:
        """Return once the log's head has reached ``position``. Bound it with
        ``anyio.fail_after``."""
        check_position(position, "position")
        while True:
            committed = self._next_commit()
            if await self.head() >= position:
                return
            with anyio.move_on_after(self._poll_interval):
                await committed.wait()

    # --- verification -------------------------------------------------------------------

    async def verify(self) -> VerifyReport:
        """Walk the log from position 1; report the first row that does not match.

        A row matches when it sits at the next position, its columns agree with its record,
        and its hash is SHA-256 of the previous row's hash and its record. Then every stored
        node of the Merkle tree must be the one the records make. ``root`` in the report is
        the tree's root, which a checkpoint anchors outside the database.
        """
        self._require_open()
        walk = LogWalk(self.registry)
        async for rows in self._verify_rows():
            walk.feed(rows)
            if walk.failed:
                return walk.failed
        async for nodes in self._stored_nodes():
            for level, index, digest in nodes:
                walk.compare_node(level, index, digest)
        return walk.report()

    # --- the Merkle tree (ledger.transparency) ------------------------------------------

    async def origin(self) -> str:
        """The ledger's name, made when its database was created: the first line of its
        checkpoints, so that a checkpoint of one ledger never vouches for another."""
        self._require_open()
        return await self._origin()

    async def tree_root(self, size: int | None = None) -> tuple[int, bytes]:
        """The size and RFC 9162 root hash of the tree over the first ``size`` events
        (default: all of them)."""
        self._require_open()
        head = await self.head()
        size = head if size is None else _within(size, "size", 0, head)
        return size, await self._tree.root(size)

    async def inclusion_proof(self, position: int, size: int) -> list[bytes]:
        """The RFC 9162 proof that the event at ``position`` is in the tree of ``size``."""
        self._require_open()
        size = _within(size, "size", 1, await self.head())
        position = _within(position, "position", 1, size)
        return await self._tree.inclusion_proof(position - 1, size)

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``new`` events extends the tree of ``old``."""
        self._require_open()
        new = _within(new, "size", 1, await self.head())
        old = _within(old, "old size", 1, new)
        return await self._tree.consistency_proof(old, new)

    async def record(self, position: int) -> bytes:
        """The canonical record stored at ``position``: what the tree's leaf hashes."""
        self._require_open()
        position = _within(position, "position", 1, await self.head())
        records, _ = await self._fetch(position - 1, position, LogFilter(), 1)
        return records[0]

    @functools.cached_property
    def _tree(self) -> TreeReader:
        return TreeReader(self._nodes, self._leaves)

    async def _leaves(self, lo: int, hi: int) -> list[bytes]:
        records, _ = await self._fetch(lo, hi, LogFilter(), hi - lo)
        return leaves(records)

    async def raw_rows(self) -> AsyncIterator[list[Row]]:
        """Every row exactly as stored (position, stream, version, event id, wire name,
        recorded_at in microseconds, record, hash), in batches: for exports and audits."""
        self._require_open()
        async for rows in self._verify_rows():
            yield rows

    # --- what a backend provides --------------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open connections and bring the schema up to date; check stored event types."""

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _commit_group(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        """Plan and commit a group in one transaction; one outcome per write, in order."""

    def _commits_inline(self) -> bool:
        """Whether ``_commit_inline`` may be used now. Only a backend whose commit is a plain
        function call, quick enough to run on the event loop's thread, says yes."""
        return False

    def _commit_inline(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        """``_commit_group``, run in the calling thread."""
        raise NotImplementedError

    @abc.abstractmethod
    async def _tracked(self, consumer: str) -> int: ...

    @abc.abstractmethod
    async def _max_position(self) -> int: ...

    @abc.abstractmethod
    async def _stream_versions(self, streams: Sequence[str]) -> dict[str, int | None]: ...

    @abc.abstractmethod
    async def _fetch_stream(self, stream: str, from_version: int,
                            limit: int | None) -> list[bytes]: ...

    @abc.abstractmethod
    async def _fetch(self, after: int, upto: int, log_filter: LogFilter,
                     limit: int) -> tuple[list[bytes], int]:
        """Records of matching rows in ``(after, upto]``, at most ``limit``, in order, and the
        position up to which the range has been scanned."""

    @abc.abstractmethod
    async def _account_sizes(self, upto: int) -> list[tuple[str | None, int]]: ...

    @abc.abstractmethod
    async def _fetch_accounts(self, after: tuple[str | None, int], last: str | None, upto: int,
                              limit: int) -> list[tuple[str | None, int, bytes]]:
        """(account, position, record) of at most ``limit`` rows at or before ``upto``, after
        ``after`` in (account, position) order: with account None, the rows of no account
        after that position; otherwise rows of accounts up to ``last``."""

    @abc.abstractmethod
    def _verify_rows(self) -> AsyncIterator[list[Row]]:
        """Every row, in position order, in batches."""

    @abc.abstractmethod
    async def _origin(self) -> str: ...

    @abc.abstractmethod
    async def _nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """The stored tree nodes among ``keys``."""

    @abc.abstractmethod
    def _stored_nodes(self) -> AsyncIterator[list[tuple[int, int, bytes]]]:
        """Every stored tree node (level, index, hash), in batches."""


def _others_ready() -> bool:
    """Whether the event loop has anything but this task ready to run. A lone append skips
    its turn when nothing else is ready: the turn (a cancel scope and a poll, about 14 µs)
    would only find the queue as it left it. asyncio's ready queue is not public: on a loop
    without it (uvloop, trio) the answer is yes, and the append takes its turn as before."""
    try:
        ready = asyncio.get_running_loop()._ready  # type: ignore[attr-defined]
    except (RuntimeError, AttributeError):
        return True
    return bool(ready)


def _stream_append(part: object) -> tuple[str, Sequence[NewEvent[Event]], ExpectedVersion]:
    if not isinstance(part, StreamAppend):
        raise InvalidAppendError(f"append_many takes StreamAppend items, not {part!r}")
    return part.stream, part.events, part.expected


def _check_write_limits(appends: tuple[PreparedAppend, ...]) -> None:
    """An atomic write is held to one append's limits, in all."""
    events = sum(len(a.events) for a in appends)
    if events > limits.MAX_BATCH_EVENTS:
        raise LimitExceededError(f"an atomic append holds at most {limits.MAX_BATCH_EVENTS} "
                                 f"events in all, this one {events}")
    size = sum(len(e.payload) + len(e.metadata) for a in appends for e in a.events)
    if size > limits.MAX_BATCH_BYTES:
        raise LimitExceededError(f"an atomic append is at most {limits.MAX_BATCH_BYTES} bytes "
                                 f"encoded in all, this one {size}")
    ids = [i for a in appends for i in a.ids]
    if len(set(ids)) < len(ids):
        raise DuplicateInBatchError("append_many names an event id twice")


def _within(value: object, name: str, least: int, most: int) -> int:
    """``check_position``, and no further than ``most`` (the log's head)."""
    position = check_position(value, name, least=least)
    if position > most:
        raise InvalidPositionError(f"{name} {position} is past the end of the log ({most} "
                                   "events)")
    return position
