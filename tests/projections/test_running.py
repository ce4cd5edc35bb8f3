"""The running figures equal the full view at every moment, for every generated history:
at the moments the walk yields, and at any moment between them (nothing changes unseen)."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings

from ledger.events import DomainEvent
from ledger.observations import AnySnapshot
from projections.running import Running
from projections.views import Balance, view
from tests.support.histories import books, funded_histories, moments, record

Figures = dict[str, tuple[Decimal, ...]]


def _figures(balances: list[Balance]) -> Figures:
    return {b.currency: (b.deposits, b.debits, b.credits, b.posted, b.held, b.available)
            for b in balances if any((b.deposits, b.debits, b.credits, b.held))}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(funded=funded_histories())
def test_the_walk_equals_the_view_at_every_moment(
        funded: tuple[list[AnySnapshot], list[DomainEvent]]) -> None:
    events = record(*funded)
    for book in books(events).values():
        walked = list(Running(book).walk())
        times = [moment for moment, _ in walked]
        assert times == sorted(times)
        for moment, balances in walked:
            assert _figures(balances) == _figures(view(book, moment).balances), moment
        probes = [*moments(events), *(t + timedelta(days=d) for t in times for d in (1, 29))]
        for probe in probes:
            i = bisect_right(times, probe)
            seen = _figures(walked[i - 1][1]) if i else {}
            assert seen == _figures(view(book, probe).balances), probe


def test_nothing_to_walk_is_nothing() -> None:
    from projections.book import AccountBook

    assert list(Running(AccountBook("a1")).walk(datetime(2026, 1, 1).astimezone())) == []
