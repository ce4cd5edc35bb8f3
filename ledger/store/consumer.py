"""Exactly-once consumers: read the log from a tracked position, handle each event, and
commit what was decided together with the event's position (``Tracking``), in one
transaction. A crash between handling and commit loses nothing and repeats nothing: the
next start resumes after the last committed position and handles the event again, and a
second commit of one position is a ``TrackingConflictError`` (another instance did it).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from ledger.store.base import EventStore
from ledger.store.records import Event, StoredEvent, StreamAppend, Tracking

Handle = Callable[[StoredEvent[Event]],
                  Sequence[StreamAppend] | Awaitable[Sequence[StreamAppend]]]
"""An event -> the appends it causes (none: nothing to write). Deterministic, so that
handling it again after a crash decides the same."""


async def consume(store: EventStore, consumer: str, handle: Handle, *,
                  categories: Iterable[str] = (), types: Iterable[str] = (),
                  follow: bool = True) -> int:
    """Handle every event after ``consumer``'s tracked position (those of ``categories`` and
    ``types``), then, with ``follow``, each new one as it is committed, forever. Returns the
    last position committed (without ``follow``, once caught up)."""
    after = committed = await store.tracked_position(consumer)
    batches: AsyncIterator[list[StoredEvent[Event]]] = (
        store.subscribe(after, categories=categories, types=types) if follow
        else store.read_batches(after, categories=categories, types=types))
    async for batch in batches:
        idle = None  # the last of a run of events that wrote nothing: tracked in one commit
        for event in batch:
            decided = handle(event)
            appends = list(await decided if inspect.isawaitable(decided) else decided)
            if not appends:
                idle = event.position
                continue
            await store.append_many(appends, tracking=Tracking(consumer, event.position))
            committed, idle = event.position, None
        if idle is not None:
            await store.track(Tracking(consumer, idle))
            committed = idle
    return committed
