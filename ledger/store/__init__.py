"""The append-only event store. Start at ``open_store``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ledger.errors import StoreUrlError
from ledger.store.base import Clock, EventStore, LogFilter, utc_now
from ledger.store.records import (
    AppendResult,
    Event,
    ExpectedVersion,
    Metadata,
    NewEvent,
    StoredEvent,
    StreamState,
    VerifyReport,
)
from ledger.store.registry import EventRegistry, Upcaster

__all__ = [
    "AppendResult",
    "Clock",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "LogFilter",
    "Metadata",
    "NewEvent",
    "StoredEvent",
    "StreamState",
    "Upcaster",
    "VerifyReport",
    "open_store",
]


def open_store(url: str | os.PathLike[str], *, registry: EventRegistry,
               clock: Clock = utc_now, poll_interval: float = 1.0) -> EventStore:
    """A store for ``url``; open it with ``async with``.

    ``registry`` names the event types the store reads and writes (``ledger.open_store``
    defaults to the card programme's: this layer knows no events).

    ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, a plain file
    path, or ``postgresql://user@host:port/database``. SQLite takes ``?synchronous=full``
    (default), ``extra`` or ``normal``.
    ``poll_interval`` bounds how late a subscriber sees commits made by *other* processes.
    """
    options = {"registry": registry, "clock": clock, "poll_interval": poll_interval}
    text = os.fspath(url)
    scheme = text.partition("://")[0] if "://" in text else ""
    if scheme in ("", "sqlite"):
        from ledger.store.sqlite import SqliteEventStore

        path, query = _sqlite_location(text) if scheme else (text, {})
        unknown = set(query) - {"synchronous"}
        if unknown:
            raise StoreUrlError(f"unknown SQLite option(s): {', '.join(sorted(unknown))}")
        if not path or path == ":memory:":
            raise StoreUrlError("the SQLite store needs a file path (':memory:' is not shared "
                                "between the writer and reader connections)")
        return SqliteEventStore(Path(path), synchronous=query.get("synchronous", "full"),
                                **options)
    if scheme in ("postgresql", "postgres"):
        from ledger.store.postgres import PostgresEventStore

        return PostgresEventStore(text, **options)
    raise StoreUrlError(f"no backend for {scheme!r} URLs (supported: sqlite:///PATH, a path, "
                        "postgresql://...)")


def _sqlite_location(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.netloc:
        raise StoreUrlError(f"{url!r}: write sqlite:///relative.db or sqlite:////abs/path.db")
    return parts.path[1:], dict(parse_qsl(parts.query))
