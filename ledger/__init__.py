"""cardledger's core: events, money, domain rules, and the event store."""

import os

from ledger.clock import utc_now
from ledger.errors import (
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    StoreUnavailableError,
    VerificationFailedError,
)
from ledger.store import (
    AppendResult,
    Clock,
    Event,
    EventRegistry,
    EventStore,
    Metadata,
    NewEvent,
    StoredEvent,
    StreamState,
    Upcaster,
    VerifyReport,
)
from ledger.store import open_store as _open_store

__all__ = [
    "AppendResult",
    "Event",
    "EventRegistry",
    "EventStore",
    "LedgerError",
    "ConflictError",
    "InvalidInputError",
    "NotFoundError",
    "StoreUnavailableError",
    "VerificationFailedError",
    "Metadata",
    "NewEvent",
    "StoredEvent",
    "StreamState",
    "Upcaster",
    "VerifyReport",
    "open_store",
]


def open_store(url: str | os.PathLike[str], *, registry: EventRegistry | None = None,
               clock: Clock = utc_now, poll_interval: float = 1.0) -> EventStore:
    """A store for ``url`` (``ledger.store.open_store``), reading and writing the card
    programme's events (``ledger.events.DOMAIN_REGISTRY``) unless given another registry."""
    from ledger.events import DOMAIN_REGISTRY

    return _open_store(url, registry=registry or DOMAIN_REGISTRY, clock=clock,
                       poll_interval=poll_interval)
