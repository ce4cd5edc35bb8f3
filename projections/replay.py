"""The audit replay: every balance, hold and anomaly recomputed from the log alone, as of any
business time T and as known at any record time K, and compared with the stored projections.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.events import DomainEvent
from ledger.store import Event, EventStore, StoredEvent, account_of
from projections import tables
from projections.backends import Snapshot
from projections.book import (
    AccountBook,
    Unprojectable,
    contradiction,
    quarantine_row,
)
from projections.tables import rows_of
from projections.views import AccountView, view

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner


class Replay(msgspec.Struct):
    views: dict[str, AccountView]
    contradictions: list[tuple[str, str, str, str | None, str]]
    """``final_state_changed`` reports: (kind, entity, entity id, account id, at)."""
    events: int
    quarantined: list[tuple[int, str, str, str | None, str]] = []
    """Events the projections cannot apply: (position, entity, id, account id, why)."""


class ReplayBuilder:
    """Folds events, in log order, into full books."""

    def __init__(self, as_of: datetime | None = None, known_at: datetime | None = None,
                 policy: HoldPolicy = DEFAULT_POLICY) -> None:
        self.as_of, self.known_at, self.policy = as_of, known_at, policy
        self.books: dict[str, AccountBook] = {}
        self.contradictions: dict[tuple[str, str], tuple[str, str, str, str | None, str]] = {}
        """Per (kind, entity id), the first report in log order, as the stored table keeps it
        (a second ``final_state_changed`` of one entity is the same anomaly, not another)."""
        self.quarantined: list[tuple[int, str, str, str | None, str]] = []
        self.events = 0

    def add(self, events: Iterable[StoredEvent[Event]]) -> None:
        for stored in events:
            payload = stored.payload
            if not isinstance(payload, DomainEvent):
                continue
            if self.known_at is not None and stored.recorded_at > self.known_at:
                continue
            self.events += 1
            account_id = account_of(payload)
            contradicting = contradiction(payload)
            if contradicting is not None and (self.as_of is None or payload.at <= self.as_of):
                kind, _, entity_id, *_ = contradicting
                self.contradictions.setdefault((kind, entity_id), contradicting)
            if account_id is not None:
                book = self.books.setdefault(account_id, AccountBook(account_id))
                try:
                    book.apply(payload)
                except Unprojectable as exc:
                    self.quarantined.append(quarantine_row(stored.position, payload, exc))

    def result(self) -> Replay:
        return Replay({a: view(b, self.as_of, self.policy) for a, b in sorted(self.books.items())},
                      list(self.contradictions.values()), self.events, self.quarantined)


async def replay(batches: AsyncIterable[list[StoredEvent[Event]]], as_of: datetime | None = None,
                 known_at: datetime | None = None, upto: int | None = None,
                 policy: HoldPolicy = DEFAULT_POLICY) -> Replay:
    """Replay the batches (of the log up to position ``upto``, when given)."""
    builder = ReplayBuilder(as_of, known_at, policy)
    async for batch in batches:
        if upto is not None and batch[-1].position > upto:
            builder.add(e for e in batch if e.position <= upto)
            break
        builder.add(batch)
    return builder.result()


async def stored_drift(store: EventStore, runner: ProjectionRunner) -> list[str]:
    """Where ``runner``'s stored projections differ from a full replay of the log they have
    seen (after catching up): the check that incremental equals replay."""
    await runner.catch_up()
    stored = await runner.backend.snapshot()
    return drift(await replay(store.read_batches(), upto=stored.position,
                              policy=runner.policy), stored)


def drift(recomputed: Replay, stored: Snapshot) -> list[str]:
    """Every row where the stored projections differ from the replay (of the log up to the
    snapshot's position)."""
    expected: dict[str, set[tuple[object, ...]]] = {t: set() for t in tables.VIEW_TABLES}
    for account in recomputed.views.values():
        for table, rows in rows_of(account).items():
            expected[table] |= set(rows.values())
    expected["anomalies"] |= set(recomputed.contradictions)
    expected["quarantined"] |= set(recomputed.quarantined)
    found = []
    for table in tables.VIEW_TABLES:
        kept = stored.rows[table]
        found += [f"{table}: stored but not recomputed: {row}" for row in kept - expected[table]]
        found += [f"{table}: recomputed but not stored: {row}" for row in expected[table] - kept]
    return found
