"""Recording what the processor reports: one path for webhooks, archives and pull sync.

A report (an entity snapshot) is decided against the entity's state and the context its rules
need (a hold's card; a transaction's hold and card), all loaded from the log, and the events
are appended to the entity's stream at the version that was loaded: a concurrent report for
the same entity makes the append fail, and the report is decided again on fresh state.

A webhook delivery (``adapters.processor.deliveries``) is recorded with its marker in the same
batch: a redelivery's batch is the marker alone, which the store finds a duplicate.
"""

from __future__ import annotations

from typing import Any

import anyio

from adapters.processor.deliveries import Delivery, DeliveryConflictError, marker_id
from ledger.clock import Clock, utc_now
from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.domain.programme import (
    context_ids,
    decide_observation,
    evolve_all,
    snapshot_stream,
)
from ledger.errors import (
    EventIdConflictError,
    PartialDuplicateError,
    WrongExpectedVersionError,
)
from ledger.events import DomainEvent
from ledger.ids import Ids, uuid7
from ledger.logs import get_logger
from ledger.observations import AnySnapshot, check_snapshot, kind_of
from ledger.repository import UNSEEN, Decided, Loaded, decide_and_append, load
from ledger.store import (
    AppendResult,
    Event,
    EventStore,
    Metadata,
    NewEvent,
)
from ledger.tracing import span

log = get_logger("observer")

_STRIPES = 64
_RECENT_LIMIT = 10_000


class Observer:
    """Records processor snapshots in a store; see the module's docstring."""

    def __init__(self, store: EventStore, policy: HoldPolicy = DEFAULT_POLICY, *,
                 clock: Clock = utc_now, ids: Ids = uuid7) -> None:
        self.store, self.policy = store, policy
        self.clock, self.ids = clock, ids
        """The ledger's now, which reports' dates are checked against (``check_snapshot``)."""
        # Reports of one entity are decided one at a time in this process (striped locks:
        # bounded memory); other processes are kept honest by the expected version.
        self._stripes = [anyio.Lock() for _ in range(_STRIPES)]
        # Entities' states as this process last appended them. Only a shortcut: a state that
        # another process has moved on makes the append fail its version check, and the
        # report is decided again on state read from the log.
        self._recent: dict[str, Loaded] = {}

    async def record(self, snapshot: AnySnapshot, *, delivery: Delivery | None = None,
                     correlation_id: str | None = None) -> AppendResult | None:
        """Record what ``snapshot`` teaches; None when it teaches nothing and there is no
        delivery to mark as received. A snapshot outside the rules of ``check_snapshot``
        raises ``InvalidSnapshotError`` and records nothing."""
        if delivery is None or snapshot is not delivery.snapshot:
            check_snapshot(snapshot, self.clock())  # a delivery's was checked when parsed
        stream = snapshot_stream(snapshot)
        source = f"offblocks:event:{delivery.event_id}" if delivery else "offblocks:fetch"
        metadata = Metadata(occurred_at=snapshot.updated_at, correlation_id=correlation_id,
                            source=source)
        with span("cardledger.record", stream=stream, correlation_id=correlation_id):
            async with self._stripes[hash(stream) % _STRIPES]:
                return await self._record(snapshot, stream, delivery, metadata,
                                          correlation_id)

    async def _record(self, snapshot: AnySnapshot, stream: str, delivery: Delivery | None,
                      metadata: Metadata, correlation_id: str | None) -> AppendResult | None:
        async def decide(state: Any) -> list[NewEvent[Event]]:
            events = await self._decide(snapshot, state)
            batch: list[NewEvent[Event]] = [NewEvent(payload=e, metadata=metadata,
                                                                     event_id=self.ids())
                                            for e in events]
            return [delivery.marker(), *batch] if delivery is not None else batch

        # The first guess is what this process last appended, or else an entity taken to be
        # new; the loop's version check verifies it, and reads the log after a conflict.
        try:
            decided = await decide_and_append(self.store, stream, decide,
                                              guess=self._recent.get(stream, UNSEEN))
        except PartialDuplicateError as exc:
            if delivery is None or marker_id(delivery.event_id) not in exc.stored:
                raise
            # Received before, and recorded with what it taught then: the marker alone
            # says whether it is this delivery again or another one.
            return await self._received_again(stream, delivery)
        except EventIdConflictError:
            raise self._conflict(delivery) from None
        except WrongExpectedVersionError:
            self._recent.pop(stream, None)
            raise
        if decided.result is None:
            return None
        self._remember(stream, kind_of(snapshot), decided)
        log.debug("observation recorded", stream=stream, events=len(decided.batch),
                  duplicate=decided.result.duplicate, correlation_id=correlation_id)
        return decided.result

    async def _received_again(self, stream: str, delivery: Delivery) -> AppendResult:
        try:
            return await self.store.append(stream, [delivery.marker()])
        except EventIdConflictError:
            raise self._conflict(delivery) from None

    @staticmethod
    def _conflict(delivery: Delivery | None) -> DeliveryConflictError:
        assert delivery is not None, "only a delivery's marker has a derived id"
        return DeliveryConflictError(
            f"eventId {delivery.event_id!r} was recorded before with other content (another "
            f"entity or other fields); this {delivery.webhook_type} delivery for "
            f"{delivery.snapshot.id!r} is refused")

    def _remember(self, stream: str, kind: str, decided: Decided) -> None:
        assert decided.result is not None
        if decided.result.duplicate:
            return  # nothing new was written: what we hold is still the state
        state = evolve_all(kind, decided.loaded.state, (n.payload for n in decided.batch))
        self._keep(stream, Loaded(state, decided.result.versions[-1]))

    def _keep(self, stream: str, loaded: Loaded) -> None:
        if len(self._recent) >= _RECENT_LIMIT:
            self._recent.pop(next(iter(self._recent)))  # the oldest entry
        self._recent[stream] = loaded

    async def _decide(self, snapshot: AnySnapshot, state: Any) -> list[DomainEvent]:
        card_id, authorisation_id = context_ids(snapshot)
        the_card = await self._context(f"card-{card_id}") if card_id else None
        the_hold = await self._context(f"authorisation-{authorisation_id}") if (
            authorisation_id) else None
        return decide_observation(snapshot, state, the_card, the_hold, self.policy)

    async def _context(self, stream: str) -> Any:
        """Another entity's state, for the flags a decision records. The stored anomalies are
        recomputed by the projections from everything known, so a state this process read
        or wrote before is enough."""
        recent = self._recent.get(stream)
        if recent is None:
            recent = await load(self.store, stream)
            self._keep(stream, recent)
        return recent.state
