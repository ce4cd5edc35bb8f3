"""The processor's state machines, and how observations of them are ordered.

Each entity kind has a ``Lifecycle``: its documented transitions, its final states, and a rank
that orders states within one instant. Observations reach the ledger late, twice or out of
order, so the entity's state is a function of the *set* of observations, never of their order:

- if any final state was observed, the state is the earliest final observation (by time, then
  rank): a final state stays final, even if a later report seems to change it;
- otherwise it is the latest observation (by ``updatedAt``, then rank).

``state_of`` is that rule, as of any moment, and ``supersedes`` its comparison; every reader of
states goes through them (the projections' timelines too). ``Standing`` keeps the two
candidates, so applying any permutation (with duplicates) of the same observations gives the
same state. ``judge`` classifies a new observation against it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import msgspec

from ledger.money import format_amount


class Lifecycle(msgspec.Struct, frozen=True):
    entity: str
    transitions: dict[str, frozenset[str]]
    rank: dict[str, int]

    @property
    def finals(self) -> frozenset[str]:
        return frozenset(s for s, targets in self.transitions.items() if not targets)

    def is_final(self, status: str) -> bool:
        return not self.transitions[status]

    def allows(self, source: str, target: str) -> bool:
        return target in self.transitions[source]


def _machine(entity: str, edges: dict[str, str], ranks: str) -> Lifecycle:
    transitions = {state: frozenset(targets.split()) for state, targets in edges.items()}
    order = {state: i for i, group in enumerate(ranks.split("<")) for state in group.split()}
    assert transitions.keys() == order.keys()
    return Lifecycle(entity, transitions, order)


CUSTOMER = _machine("customer", {
    "initiating": "screening", "screening": "verifying rejected",
    "verifying": "active rejected", "active": "inactive rejected", "inactive": "active",
    "rejected": "",
}, "initiating < screening < verifying < active < inactive < rejected")

ACCOUNT = _machine("account", {
    "initiating": "pending failed", "pending": "active failed",
    "active": "inactive closed", "inactive": "active closed", "failed": "", "closed": "",
}, "initiating < pending < active < inactive < failed closed")

CARD = _machine("card", {
    "issuing": "active issue_failed", "active": "inactive suspended blocked terminated",
    "inactive": "active terminated", "suspended": "active blocked terminated",
    "issue_failed": "", "blocked": "", "terminated": "",
}, "issuing < active < inactive suspended < issue_failed blocked < terminated")

AUTHORISATION = _machine("authorisation", {
    "pending": "pending capturing releasing", "capturing": "captured",
    "releasing": "released", "captured": "", "released": "",
}, "pending < capturing releasing < captured released")

TRANSACTION = _machine("transaction", {
    "processing": "processed", "processed": "reversing", "reversing": "reversed",
    "reversed": "",
}, "processing < processed < reversing < reversed")


class Sighting(msgspec.Struct, frozen=True, order=True, gc=False):
    """One observation reduced to what orders it: when, how far along, and its content."""

    at: datetime
    rank: int
    status: str
    detail: tuple[str, ...] = ()
    """The observation's other facts (amounts...), as text: two reports at the same instant
    and rank with different content are still told apart, deterministically."""


def sighting(lifecycle: Lifecycle, status: str, at: datetime,
             amount: Decimal | None = None) -> Sighting:
    """One report as the state rule orders it. An entity with an amount carries it in the
    detail, so a report that changes only the amount (an incremental authorisation, a clearing
    with a tip) is a report of its own, and the state as of T has the amount as of T."""
    return Sighting(at, lifecycle.rank[status], status,
                    () if amount is None else (format_amount(amount),))


def supersedes(lifecycle: Lifecycle, report: Sighting, kept: Sighting) -> bool:
    """Whether ``report`` takes the place of ``kept``, a report of the same kind (both final,
    or both open), in deciding the state: an earlier final one, or a later open one."""
    return report < kept if lifecycle.is_final(report.status) else report > kept


def state_of(lifecycle: Lifecycle, reports: Iterable[Sighting],
             moment: datetime | None = None) -> Sighting | None:
    """The state rule, its one home: of the reports dated at or before ``moment`` (None:
    all of them), the earliest final one if there is any, else the latest open one."""
    final: Sighting | None = None
    latest: Sighting | None = None
    for report in reports:
        if moment is not None and report.at > moment:
            continue
        if lifecycle.is_final(report.status):
            if final is None or supersedes(lifecycle, report, final):
                final = report
        elif latest is None or supersedes(lifecycle, report, latest):
            latest = report
    return final or latest


class Standing(msgspec.Struct, frozen=True):
    """The best final and the best open sighting so far; the state is derived from them."""

    final: Sighting | None = None
    open: Sighting | None = None
    seen: frozenset[Sighting] = frozenset()

    @property
    def current(self) -> Sighting | None:
        return self.final or self.open  # ``state_of`` the two: each is the best of its kind

    @property
    def status(self) -> str:
        """The entity's state (``unknown`` before any report)."""
        current = self.current
        return "unknown" if current is None else current.status

    def add(self, lifecycle: Lifecycle, sighting: Sighting) -> Standing:
        if sighting in self.seen:
            return self
        seen = self.seen | {sighting}
        if lifecycle.is_final(sighting.status):
            if self.final is None or supersedes(lifecycle, sighting, self.final):
                return Standing(sighting, self.open, seen)
            return Standing(self.final, self.open, seen)
        if self.open is None or supersedes(lifecycle, sighting, self.open):
            return Standing(self.final, sighting, seen)
        return Standing(self.final, self.open, seen)


class Verdict(enum.Enum):
    DUPLICATE = "duplicate"  # seen exactly before: record nothing
    NEW = "new"  # the first sighting of the entity
    ADVANCES = "advances"  # becomes the current state
    UNCHANGED = "unchanged"  # the final state, reported again later: record nothing
    STALE = "stale"  # older than the current state: recorded as history
    CONTRADICTS_FINAL = "contradicts final"  # a final state seems to change


def judge(lifecycle: Lifecycle, standing: Standing, sighting: Sighting) -> Verdict:
    if sighting in standing.seen:
        return Verdict.DUPLICATE
    current = standing.current
    if current is None:
        return Verdict.NEW
    final = lifecycle.is_final(sighting.status)
    if standing.final is not None:
        if final and sighting < standing.final:
            return Verdict.CONTRADICTS_FINAL  # an earlier, different final: it wins
        if sighting.at >= standing.final.at:
            return Verdict.CONTRADICTS_FINAL if (sighting.status, sighting.detail) != (
                standing.final.status, standing.final.detail) else Verdict.UNCHANGED
        return Verdict.STALE
    if final and sighting.at < current.at:
        return Verdict.CONTRADICTS_FINAL  # a final state older than what we took as current
    # A later report of the same state is recorded too: it orders the reports still to come.
    return Verdict.ADVANCES if sighting > current else Verdict.STALE
