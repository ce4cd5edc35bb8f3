"""cardledger's core: events, money, domain rules, and the event store."""

from ledger.errors import LedgerError
from ledger.store import (
    AppendResult,
    Event,
    EventRegistry,
    EventStore,
    Metadata,
    NewEvent,
    StoredEvent,
    StreamState,
    Upcaster,
    VerifyReport,
    open_store,
)

__all__ = [
    "AppendResult",
    "Event",
    "EventRegistry",
    "EventStore",
    "LedgerError",
    "Metadata",
    "NewEvent",
    "StoredEvent",
    "StreamState",
    "Upcaster",
    "VerifyReport",
    "open_store",
]
