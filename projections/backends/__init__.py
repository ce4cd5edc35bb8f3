"""Where a projection's tables live, and which runner may write them.

The read models live in the PostgreSQL database of the log, or in a SQLite file of their own
beside the log's (``projections.backends.sqlite``). A backend opens them, loads what a runner
restarts from, commits one batch with its checkpoint in one transaction, and answers the
point-in-time and audit reads.

**One writer per projection.** A runner writes only while it holds the projection's lead: an
exclusive lock the operating system (SQLite: ``flock`` on a file beside the database) or the
server (PostgreSQL: a session advisory lock) releases by itself when the holder's process
dies, so a standby takes over without anyone cleaning up. Each commit also checks, in its
transaction, that the checkpoint is still the one the runner started the batch from: should two
runners ever both believe they lead, the second write fails instead of counting twice.
"""

from __future__ import annotations

from pathlib import Path

from ledger.store import EventStore
from projections.backends.base import (
    PART_SUFFIX,
    REBUILD_SUFFIX,
    ProjectionBackend,
    ProjectionConflictError,
    ProjectionError,
    ProjectionFailedError,
    ProjectionUnavailableError,
    ProjectionUsageError,
    Snapshot,
    Stored,
    moved,
)

__all__ = ["PART_SUFFIX", "REBUILD_SUFFIX", "ProjectionBackend", "ProjectionConflictError",
           "ProjectionError", "ProjectionFailedError", "ProjectionUnavailableError",
           "ProjectionUsageError", "Snapshot", "Stored", "backend_for", "moved", "store_url"]


def backend_for(store: EventStore, name: str) -> ProjectionBackend:
    """The backend that keeps the store's projection ``name``."""
    path, dsn = _where(store)
    if path is not None:
        from projections.backends.sqlite import SqliteProjections

        return SqliteProjections(path, name)
    if dsn is not None:
        from projections.backends.postgres import PostgresProjections

        return PostgresProjections(dsn, name)
    raise ProjectionUsageError(f"projections cannot be kept in a {type(store).__name__}")


def store_url(store: EventStore) -> str:
    """What another process opens the same log with (``open_store``)."""
    path, dsn = _where(store)
    if path is None and dsn is None:
        raise ProjectionUsageError(f"a {type(store).__name__} cannot be opened elsewhere")
    return str(path if path is not None else dsn)


def _where(store: EventStore) -> tuple[Path | None, str | None]:
    """The SQLite file or the PostgreSQL URL of the store (one of them, or neither)."""
    return getattr(store, "path", None), getattr(store, "dsn", None)
