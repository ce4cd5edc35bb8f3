"""The domain's repository: an entity's state from its stream, and a decision appended at the
version that was read, so that a concurrent change is noticed and decided again.

``decide_and_append`` is the only place that retries a decision. Every path that decides goes
through it: observations of the processor (``adapters.processor.observer``), the back
office's requests and transfers (``adapters.service.commands``). A decision that spans
entities (a card and its account) goes through ``decide_and_append_many``: the same loop over
several streams, appended all or nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ledger.domain.programme import evolve_all
from ledger.errors import InvalidAppendError, WrongExpectedVersionError
from ledger.store import (
    AppendResult,
    EventStore,
    ExpectedVersion,
    NewEvent,
    StreamAppend,
    StreamState,
)
from ledger.store.records import StoredEvent

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


Decide = Callable[[Any], Sequence[NewEvent[Any]] | Awaitable[Sequence[NewEvent[Any]]]]
"""A decision: an entity's state -> the batch to append (empty: nothing to record). It may
be async, to read what else it needs (another entity's state) from the log."""


class Decided(msgspec.Struct, frozen=True):
    loaded: Loaded
    """The state the batch was decided on, and the version it was appended at."""
    batch: list[NewEvent[Any]]
    result: AppendResult | None
    """Where the batch went (None: nothing was decided)."""


async def decide_and_append(store: EventStore, stream: str, decide: Decide, *,
                            guess: Loaded | None = None) -> Decided:
    """The one load-decide-append loop: load the entity, decide on its state, append what
    was decided at the version read; on a version conflict (another writer changed the
    entity meanwhile), load and decide again, at most ``MAX_ATTEMPTS`` times. ``guess`` is a
    state to try first instead of reading the stream (what this process last wrote): only a
    guess, which the append's version check verifies.

    A rule the decision breaks raises, and nothing is written. So do the store's other
    refusals (an event id stored with other content, ...): they are not conflicts that
    deciding again could resolve, and the caller knows what they mean."""
    loaded = guess
    for _ in range(MAX_ATTEMPTS):
        if loaded is None:
            loaded = await load(store, stream)
        decision = decide(loaded.state)
        batch = list(await decision if inspect.isawaitable(decision) else decision)
        if not batch:
            return Decided(loaded, batch, None)
        try:
            result = await store.append(stream, batch, expected=loaded.expected)
        except WrongExpectedVersionError:
            loaded = None  # the entity moved meanwhile: decide again on its new state
            continue
        return Decided(loaded, batch, result)
    raise WrongExpectedVersionError(stream, f"the version read, {MAX_ATTEMPTS} times", None)


DecideMany = Callable[[dict[str, Any]], Mapping[str, Sequence[NewEvent[Any]]]
                      | Awaitable[Mapping[str, Sequence[NewEvent[Any]]]]]
"""A decision over several entities: their states by stream -> the batch for each stream
that changes (streams left out, or with an empty batch, are not written)."""


class DecidedMany(msgspec.Struct, frozen=True):
    loaded: dict[str, Loaded]
    """The states the batches were decided on, by stream."""
    batches: dict[str, list[NewEvent[Any]]]
    results: list[AppendResult]
    """Where each written stream's batch went, in the order of ``batches``."""


async def decide_and_append_many(store: EventStore, streams: Sequence[str],
                                 decide: DecideMany) -> DecidedMany:
    """``decide_and_append`` over several streams: load each, decide on all their states,
    append every stream's batch in one transaction at the version read
    (``EventStore.append_many``); when any of them moved meanwhile, nothing was written, and
    all are loaded and decided again."""
    for _ in range(MAX_ATTEMPTS):
        loaded = {stream: await load(store, stream) for stream in streams}
        decision = decide({stream: found.state for stream, found in loaded.items()})
        decided = await decision if inspect.isawaitable(decision) else decision
        batches = {stream: list(batch) for stream, batch in decided.items() if batch}
        if set(batches) - set(loaded):
            raise InvalidAppendError(f"the decision writes streams it did not load: "
                                     f"{sorted(set(batches) - set(loaded))}")
        if not batches:
            return DecidedMany(loaded, {}, [])
        try:
            results = await store.append_many([StreamAppend(s, b, loaded[s].expected)
                                               for s, b in batches.items()])
        except WrongExpectedVersionError:
            continue  # one of them moved meanwhile: decide again on their new states
        return DecidedMany(loaded, batches, results)
    raise WrongExpectedVersionError(", ".join(streams), f"the versions read, {MAX_ATTEMPTS} "
                                    "times", None)
