"""Deliberately broken ledgers, to show the simulation finds what it is meant to find.

Each bug goes in through a seam, and the code is left as it is. One is a parameter the ledger
takes (its ``HoldPolicy``). The others replace one named function for the length of a run,
the way a test double would:

=====================  ==================================================================
``dedupe-off``         ``adapters.processor.deliveries.marker_id``: each delivery's marker
                       gets a fresh id, so a redelivery is recorded again.
``window-31-days``     ``CardLedger.open(policy=HoldPolicy(window=31 days))``: holds on a
                       terminated card stay capturable a day too long.
``late-capture-twice``  ``projections.views.hold_view``: a hold captured after its card was
                       terminated still counts as held beside its debit.
``order-by-arrival``   ``projections.book.state_of``: an entity's state is the report that
                       arrived last, not the one its ``updatedAt`` and status rank decide.
=====================  ==================================================================
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import msgspec

from adapters.processor import deliveries
from ledger.domain.hold import HoldPolicy
from ledger.domain.lifecycle import AUTHORISATION, Lifecycle, Sighting
from projections import book, views


class Planted(msgspec.Struct, frozen=True):
    name: str
    description: str
    seam: str
    policy: HoldPolicy | None = None
    patches: tuple[tuple[Any, str, Callable[..., Any]], ...] = ()

    @contextmanager
    def applied(self) -> Iterator[None]:
        with ExitStack() as stack:
            for target, attribute, replacement in self.patches:
                stack.enter_context(mock.patch.object(target, attribute, replacement))
            yield


def _fresh_marker_ids() -> Callable[[str], uuid.UUID]:
    count = iter(range(1 << 62))
    return lambda event_id: uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{next(count)}")


def _late_capture_counted_twice(original: Callable[..., Any]) -> Callable[..., Any]:
    def hold_view(account_id: str, facts: Any, as_of: datetime | None,
                  moment: datetime | None, card: Any, linked: Any,
                  policy: HoldPolicy) -> Any:
        found = original(account_id, facts, as_of, moment, card, linked, policy)
        if found is None or found.closed != "captured" or card is None or (
                card.capture_window_until is None):
            return found
        captured_at = facts.timeline.at(AUTHORISATION, as_of).at
        if captured_at > card.capture_window_until - policy.window:  # after termination
            return msgspec.structs.replace(found, remaining=found.amount, closed=None)
        return found
    return hold_view


def _state_by_arrival(lifecycle: Lifecycle, reports: Iterable[Sighting],
                      moment: datetime | None = None) -> Sighting | None:
    arrived = [r for r in reports if moment is None or r.at <= moment]
    return arrived[-1] if arrived else None


PLANTED: dict[str, Planted] = {p.name: p for p in (
    Planted("dedupe-off", "a redelivered webhook is recorded again",
            "adapters.processor.deliveries.marker_id",
            patches=((deliveries, "marker_id", _fresh_marker_ids()),)),
    Planted("window-31-days", "the 30-day capture window after termination is 31 days",
            "CardLedger.open(policy=...)", policy=HoldPolicy(window=timedelta(days=31))),
    Planted("late-capture-twice", "a capture after termination is counted as held and "
            "as debited", "projections.views.hold_view",
            patches=((views, "hold_view", _late_capture_counted_twice(views.hold_view)),)),
    Planted("order-by-arrival", "reports applied in arrival order, not by updatedAt",
            "projections.book.state_of", patches=((book, "state_of", _state_by_arrival),)),
)}
