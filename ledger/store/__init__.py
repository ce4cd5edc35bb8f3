"""The append-only event store. Start at ``open_store``."""

from __future__ import annotations

import os

from ledger.clock import Clock, utc_now
from ledger.store.base import AccountRange, EventStore, LogFilter
from ledger.store.consumer import Handle, consume
from ledger.store.location import StoreLocation, parse_store_url
from ledger.store.records import (
    AppendResult,
    Event,
    ExpectedVersion,
    Metadata,
    NewEvent,
    StoredEvent,
    StreamAppend,
    StreamState,
    Tracking,
    VerifyReport,
    account_of,
)
from ledger.store.registry import EventRegistry, Upcaster

__all__ = [
    "AccountRange",
    "AppendResult",
    "Clock",
    "Event",
    "EventRegistry",
    "EventStore",
    "Handle",
    "consume",
    "ExpectedVersion",
    "LogFilter",
    "Metadata",
    "NewEvent",
    "StoredEvent",
    "StoreLocation",
    "StreamAppend",
    "StreamState",
    "Tracking",
    "Upcaster",
    "VerifyReport",
    "account_of",
    "open_store",
    "parse_store_url",
]


def open_store(url: str | os.PathLike[str], *, registry: EventRegistry,
               clock: Clock = utc_now, poll_interval: float = 1.0) -> EventStore:
    """A store for ``url`` (``ledger.store.location``); open it with ``async with``.

    ``registry`` names the event types the store reads and writes (``ledger.open_store``
    defaults to the card programme's: this layer knows no events).
    ``poll_interval`` bounds how late a subscriber sees commits made by *other* processes.
    """
    location = parse_store_url(url)
    options = {"registry": registry, "clock": clock, "poll_interval": poll_interval}
    if location.backend == "sqlite":
        from ledger.store.sqlite import SqliteEventStore

        assert location.path is not None
        return SqliteEventStore(location.path, synchronous=location.synchronous, **options)
    from ledger.store.postgres import PostgresEventStore

    return PostgresEventStore(location.url, **options)
