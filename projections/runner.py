"""The projection runner: keeps the read models in step with the log, exactly once.

It reads the log from its checkpoint in batches (history and live commits through the same
subscription), folds each batch into the affected accounts' books, and writes the changed rows
together with the new checkpoint in one transaction: a crash between batches loses nothing and
counts nothing twice. The stored views are each account's state as of its latest business
time; the expiry sweeper keeps that time moving as holds expire.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.to_thread
import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.errors import LedgerError
from ledger.events import DomainEvent
from ledger.store import Event, EventStore, StoredEvent
from ledger.store.planner import micros
from projections import tables
from projections.book import (
    AccountBook,
    HoldFacts,
    MoneyMovement,
    Timeline,
    TransactionFacts,
    account_of,
    contradiction,
    entity_of,
)
from projections.tables import Rows, rows_of
from projections.views import AccountView, HoldView, view

T = TypeVar("T")


class AccountFacts(msgspec.Struct):
    movements: list[MoneyMovement]
    latest_at: datetime | None


_FACT_TYPES: dict[str, type] = {"hold": HoldFacts, "transaction": TransactionFacts,
                                "card": Timeline}
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(t) for kind, t in _FACT_TYPES.items()}
_ACCOUNT_DECODER = msgspec.msgpack.Decoder(AccountFacts)


class ProjectionError(LedgerError):
    pass


class ProjectionRunner:
    """Use as ``async with ProjectionRunner(store) as runner``; then ``catch_up()``,
    ``follow()`` (forever), ``wait_for(position)`` or ``rebuild()``."""

    name = "ledger"

    def __init__(self, store: EventStore, *, policy: HoldPolicy = DEFAULT_POLICY,
                 batch_size: int = 5_000) -> None:
        path = getattr(store, "path", None)
        if path is None:
            raise ProjectionError("projections are kept in SQLite stores only, for now")
        self.store, self.policy, self.batch_size, self._path = store, policy, batch_size, path
        self._db: sqlite3.Connection | None = None
        self._thread = anyio.CapacityLimiter(1)
        self.position = 0
        self._books: dict[str, AccountBook] = {}
        self._written: dict[str, dict[str, dict[tuple[Any, ...], int]]] = {}
        """Per account and table, each written row's hash: enough to tell what changed."""
        self._moved = anyio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._db = await self._in_thread(self._open)
        await self._in_thread(self._load)
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None,
                        ) -> None:
        if self._db is not None:
            await self._in_thread(self._db.close)
            self._db = None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 30000")
        tables.create(db)
        return db

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._thread)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise ProjectionError("the runner is not open: use 'async with ProjectionRunner(...)'")
        return self._db

    def _load(self) -> None:
        """Rebuild the in-memory books from the stored facts: no replay of the log."""
        row = self.db.execute("SELECT position FROM projection_checkpoints WHERE name = ?",
                              (self.name,)).fetchone()
        self.position = row[0] if row else 0
        self._books, self._written = {}, {}
        for account_id, facts in self.db.execute("SELECT account_id, facts FROM "
                                                 "projection_accounts"):
            account = _ACCOUNT_DECODER.decode(facts)
            self._books[account_id] = AccountBook(account_id, prune=True,
                                                  movements=account.movements,
                                                  latest_at=account.latest_at)
        for entity_id, kind, account_id, facts in self.db.execute(
                "SELECT entity_id, kind, account_id, facts FROM projection_entities"):
            book = self._books.setdefault(account_id, AccountBook(account_id, prune=True))
            _entities_of(book, kind)[entity_id] = _DECODERS[kind].decode(facts)
        for account_id, book in self._books.items():
            self._diff(account_id, rows_of(view(book, None, self.policy)), None)

    # --- following the log --------------------------------------------------------------

    async def catch_up(self) -> int:
        """Apply everything committed so far; return the position reached."""
        async for batch in self.store.read_batches(self.position, batch_size=self.batch_size):
            await self._apply(batch)
        return self.position

    async def follow(self) -> None:
        """Apply the log as it grows, forever (run it in a task group; cancel to stop)."""
        async for batch in self.store.subscribe(self.position, batch_size=self.batch_size):
            await self._apply(batch)

    async def wait_for(self, position: int) -> None:
        """Return once the projection has applied the log up to ``position``."""
        while self.position < position:
            moved = self._moved
            await moved.wait()

    async def rebuild(self) -> int:
        """Throw the read models away and recompute them from position 0."""
        await self._in_thread(tables.clear, self.db, self.name)
        await self._in_thread(self._load)
        return await self.catch_up()

    async def _apply(self, events: list[StoredEvent[Event]]) -> None:
        write = self._fold(events)
        last = events[-1].position
        await self._in_thread(write.commit, self.db, self.name, last)
        self.position = last
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def _fold(self, events: Iterable[StoredEvent[Event]]) -> tables.BatchWrite:
        write = tables.BatchWrite()
        touched: dict[tuple[str, str], AccountBook] = {}
        for stored in events:
            payload = stored.payload
            if not isinstance(payload, DomainEvent):
                continue
            account_id = account_of(payload)
            contradicting = contradiction(payload)
            if contradicting is not None:
                write.anomalies.append(contradicting)
            if account_id is None:
                continue
            book = self._books.get(account_id)
            if book is None:
                book = self._books[account_id] = AccountBook(account_id, prune=True)
            book.apply(payload)
            write.account_events.append((account_id, stored.position))
            touched[entity_of(payload)] = book
        accounts = {book.account_id: book for book in touched.values()}
        for (kind, entity_id), book in touched.items():
            facts = _entities_of(book, kind).get(entity_id)
            if facts is not None:
                write.entities.append((entity_id, kind, book.account_id, _ENCODER.encode(facts)))
        for account_id, book in accounts.items():
            write.accounts.append((account_id, _ENCODER.encode(
                AccountFacts(book.movements, book.latest_at))))
            self._diff(account_id, rows_of(view(book, None, self.policy)), write)
        return write

    def _diff(self, account_id: str, rows: Rows, write: tables.BatchWrite | None) -> None:
        """Queue the rows that changed since they were last written (None: just remember)."""
        before = self._written.get(account_id, {})
        hashes = {table: {key: hash(row) for key, row in rows[table].items()}
                  for table in tables.VIEW_TABLES}
        if write is not None:
            for table in tables.VIEW_TABLES:
                old = before.get(table, {})
                write.upserts[table] += [row for key, row in rows[table].items()
                                         if old.get(key) != hashes[table][key]]
                write.deletes[table] += [key for key in old if key not in rows[table]]
        self._written[account_id] = hashes

    # --- reading ------------------------------------------------------------------------

    def account_ids(self) -> list[str]:
        return sorted(self._books)

    def live_holds(self) -> list[HoldView]:
        """Holds still pending or capturing whose expiry the log does not record yet."""
        live = []
        for book in self._books.values():
            for hold in view(book, None, self.policy).holds:
                if hold.status in ("pending", "capturing") and (
                        book.holds[hold.authorisation_id].expired_at is None):
                    live.append(hold)
        return live

    def stored_view(self, account_id: str) -> AccountView | None:
        book = self._books.get(account_id)
        return None if book is None else view(book, None, self.policy)

    async def view_as_of(self, account_id: str, as_of: datetime | None = None,
                         known_at: datetime | None = None) -> AccountView:
        """The account as of business time ``as_of``, knowing only what was recorded by
        ``known_at``: computed from the log, reading only this account's events."""
        records = await self._in_thread(self._account_records, account_id, known_at)
        book = AccountBook(account_id)
        for record in records:
            payload = self.store.registry.decode_record(record).payload
            if isinstance(payload, DomainEvent):
                book.apply(payload)
        # Events after the checkpoint are not indexed yet: read them from the log.
        async for batch in self.store.read_batches(self.position):
            for stored in batch:
                if (isinstance(stored.payload, DomainEvent)
                        and account_of(stored.payload) == account_id
                        and (known_at is None or stored.recorded_at <= known_at)):
                    book.apply(stored.payload)
        return view(book, as_of, self.policy)

    def _account_records(self, account_id: str, known_at: datetime | None) -> list[bytes]:
        limit = micros(known_at) if known_at is not None else 2**62
        return [row[0] for row in self.db.execute(
            "SELECT e.record FROM account_events a JOIN events e ON e.position = a.position "
            "WHERE a.account_id = ? AND a.position <= ? AND e.recorded_at <= ? "
            "ORDER BY a.position", (account_id, self.position, limit))]


def _entities_of(book: AccountBook, kind: str) -> dict[str, Any]:
    """The book's entities of one kind (none for an account's own facts)."""
    if kind == "hold":
        return book.holds
    if kind == "transaction":
        return book.transactions
    return book.cards if kind == "card" else {}
