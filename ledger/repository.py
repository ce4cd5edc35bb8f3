"""The domain's repository: an entity's state from its stream, and a decision appended at the
version that was read, so that a concurrent change is noticed and decided again.

Every path that decides goes through it: observations of the processor
(``adapters.processor.observer``), the back office's requests and transfers
(``adapters.service.commands``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from ledger.domain.programme import evolve_all
from ledger.errors import WrongExpectedVersionError
from ledger.events import DomainEvent
from ledger.store import AppendResult, EventStore, ExpectedVersion, NewEvent, StreamState
from ledger.store.records import StoredEvent

E = TypeVar("E", bound=DomainEvent)
MAX_ATTEMPTS = 20
"""Decisions retried after a version conflict before giving up (each conflict means another
writer changed the entity meanwhile: a burst of reports, not a livelock)."""


class Loaded(msgspec.Struct):
    state: Any
    version: int | None
    """The stream's version (None: no stream yet)."""

    @property
    def expected(self) -> ExpectedVersion:
        """What an append decided on this state expects the stream to be."""
        return StreamState.NO_STREAM if self.version is None else self.version


UNSEEN = Loaded(None, None)
"""An entity nothing is known about."""


def fold(events: Iterable[StoredEvent[Any]], kind: str) -> Any:
    """An entity's state from its stream (markers and other kinds of events skipped)."""
    return evolve_all(kind, None, (stored.payload for stored in events))


async def load(store: EventStore, stream: str) -> Loaded:
    """An entity's state from its stream ``<kind>-<id>``, and the stream's version."""
    events = await store.read_stream(stream)
    return Loaded(fold(events, stream.partition("-")[0]),
                  events[-1].version if events else None)


async def decide_and_append(store: EventStore, stream: str,
                            decide: Callable[[Any], Sequence[E]],
                            ) -> tuple[list[E], AppendResult | None]:
    """Load the entity, decide on its state, append what was decided at the version read;
    on a version conflict, load and decide again. Returns the events and where they went
    (None: nothing was decided). A rule the decision breaks raises, and nothing is written."""
    for _ in range(MAX_ATTEMPTS):
        loaded = await load(store, stream)
        events = list(decide(loaded.state))
        if not events:
            return events, None
        try:
            result = await store.append(stream, [NewEvent(payload=e) for e in events],
                                        expected=loaded.expected)
        except WrongExpectedVersionError:
            continue  # the entity moved meanwhile: decide again on its new state
        return events, result
    raise WrongExpectedVersionError(stream, "the version read", None)
