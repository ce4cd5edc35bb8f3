"""A statement streamed (``projections.statement_stream``) prints exactly the statement the
log defines (``projections.statement``), for every history, every arrival order, every way
the events come in batches, every period and every ``known_at``; and it lets go of what is
done as it walks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.hold import DEFAULT_POLICY
from ledger.events import DomainEvent, FundsDeposited, HoldCaptured, HoldPlaced, HoldReleased
from ledger.observations import AnySnapshot
from ledger.store import Event, Metadata, StoredEvent, account_of
from projections.running import moments_of
from projections.statement import Figures, StatementLine, statement
from projections.statement_stream import StreamedStatement
from tests.projections.test_statement_index import logged_history
from tests.support.histories import funded_histories

_FRACTIONS = st.floats(-0.1, 1.2)


def _of(stored: StoredEvent[Event]) -> DomainEvent:
    assert isinstance(stored.payload, DomainEvent)
    return stored.payload


def _batches(data: st.DataObject, events: list[StoredEvent[Event]],
             ) -> list[list[StoredEvent[Event]]]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


def streamed(data: st.DataObject, account_id: str, events: list[StoredEvent[Event]],
             currency: str, start: datetime, end: datetime, known_at: datetime,
             ) -> list[Figures | StatementLine]:
    walk = StreamedStatement(account_id, currency, start, end, known_at, DEFAULT_POLICY)
    for batch in _batches(data, events):  # the first pass may come in other batches
        walk.survey(batch)
    made: list[Figures | StatementLine] = []
    for batch in _batches(data, events):
        made += walk.take(batch)
    return [*made, *walk.finish()]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), funded=funded_histories())
def test_a_streamed_statement_prints_what_the_log_defines(
        data: st.DataObject, funded: tuple[list[AnySnapshot], list[DomainEvent]]) -> None:
    stored, accounts, first, span = logged_history(data, funded)

    def moment(events: list[StoredEvent[Event]]) -> datetime:
        exact = sorted({t for s in events for t in moments_of(_of(s))})
        pick: bool = data.draw(st.booleans())
        if exact and pick:
            return data.draw(st.sampled_from(exact))
        return first + span * data.draw(_FRACTIONS)

    for account_id in accounts:
        events = [s for s in stored if account_of(_of(s)) == account_id]
        for currency in ("EUR", "USD"):
            start, end = sorted((moment(events), moment(events)))
            known_at = data.draw(st.sampled_from(
                [first + span * 2, first + span * data.draw(_FRACTIONS),
                 *(s.recorded_at for s in events)]))
            known = [s for s in events if s.recorded_at <= known_at]
            expected = statement(account_id, known, currency, start, end, known_at)
            assert streamed(data, account_id, known, currency, start, end, known_at) == [
                expected.opening, *expected.lines]


def test_what_is_done_is_let_go_as_the_walk_passes_it() -> None:
    """Holds placed and released one after another: the walk keeps only the last few."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[DomainEvent] = [FundsDeposited(account_id="a1", amount=Decimal(1000),
                                                currency="EUR", chain_transaction="0x1",
                                                at=t0)]
    for n in range(300):
        at = t0 + timedelta(hours=n + 1)
        common = {"authorisation_id": f"h{n}", "account_id": "a1", "card_id": "c1",
                  "amount": Decimal(1), "currency": "EUR"}
        events += [HoldPlaced(**common, at=at, merchant_amount=Decimal(1),  # type: ignore[arg-type]
                              merchant_currency="EUR", exchange_rate=Decimal(1)),
                   HoldReleased(**common, at=at + timedelta(minutes=5))]  # type: ignore[arg-type]
    stored = [StoredEvent(n, "s", 0, bytes(16), 1, e, Metadata(), e.at)
              for n, e in enumerate(events, 1)]
    end = t0 + timedelta(days=60)
    walk = StreamedStatement("a1", "EUR", t0 - timedelta(days=1), end, end)
    walk.survey(stored)
    largest = 0
    for i in range(0, len(stored), 20):
        walk.take(stored[i:i + 20])
        largest = max(largest, len(walk._book.holds))
    assert largest <= 25  # a batch's worth, not 300
    lines = [line for line in walk.finish() if isinstance(line, StatementLine)]
    assert not walk._book.holds and lines == []  # all printed on the way


def test_a_late_report_dated_after_the_period_still_corrects_an_entity_inside_it() -> None:
    """A hold reported captured inside the period, whose placement (dated after the end, as
    hostile data may be) is learnt late: the placement gives the hold its creation, so it
    changes the closing figures, and the stream counts it as the definition does."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    end = t0 + timedelta(days=10)
    common = {"authorisation_id": "h1", "account_id": "a1", "card_id": "c1",
              "amount": Decimal(5), "currency": "EUR"}
    events: list[tuple[DomainEvent, datetime]] = [
        (FundsDeposited(account_id="a1", amount=Decimal(100), currency="EUR",
                        chain_transaction="0x1", at=t0), t0),
        (HoldCaptured(**common, at=t0 + timedelta(days=1)),  # type: ignore[arg-type]
         t0 + timedelta(days=1)),
        (HoldPlaced(**common, at=end + timedelta(days=1), merchant_amount=Decimal(5),  # type: ignore[arg-type]
                    merchant_currency="EUR", exchange_rate=Decimal(1)), end + timedelta(days=2))]
    stored = [StoredEvent(n, "s", 0, bytes(16), 1, e, Metadata(), recorded)
              for n, (e, recorded) in enumerate(events, 1)]
    known_at = end + timedelta(days=3)
    expected = statement("a1", stored, "EUR", t0 - timedelta(days=1), end, known_at)
    assert any(line.correction for line in expected.lines)  # the case this is about
    walk = StreamedStatement("a1", "EUR", t0 - timedelta(days=1), end, known_at)
    walk.survey(stored)
    assert [*walk.take(stored), *walk.finish()] == [expected.opening, *expected.lines]
