"""The kept lines print exactly the statement the log defines (``projections.statement``),
for every history, every arrival order, every way the events are taken in (in chunks, late
reports included), every period and every ``known_at``; and they answer whenever nothing
recorded after the period closed is about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.hold import DEFAULT_POLICY
from ledger.events import DomainEvent, FundsDeposited, HoldExpired, HoldPlaced
from ledger.observations import AnySnapshot
from ledger.store import Event, Metadata, StoredEvent, account_of
from ledger.testing import deliveries
from projections.running import moments_of
from projections.statement import statement
from projections.statement_index import AccountLines, StatementIndex
from tests.support.histories import funded_histories, record

_FRACTIONS = st.floats(-0.1, 1.2)


def _stored(data: st.DataObject, events: list[DomainEvent]) -> list[StoredEvent[Event]]:
    """The events as a log holds them: recorded when they arrive, some late (the record
    time never goes back)."""
    found: list[StoredEvent[Event]] = []
    recorded = datetime(2000, 1, 1, tzinfo=UTC)
    for position, event in enumerate(events, 1):
        late = timedelta(hours=data.draw(st.sampled_from([0, 0, 1, 30, 24 * 20])))
        recorded = max(recorded, event.at + late)
        found.append(StoredEvent(position, "s", 0, bytes(16), 1, event, Metadata(), recorded))
    return found


def logged_history(data: st.DataObject, funded: tuple[list[AnySnapshot], list[DomainEvent]],
                   ) -> tuple[list[StoredEvent[Event]], list[str], datetime, timedelta]:
    """A funded history delivered in any order, with expiries, as a log holds it; its
    accounts; and a time before it all and a span beyond it."""
    snapshots, money = funded
    decided = record(data.draw(deliveries(snapshots)))
    expiries = [HoldExpired(authorisation_id=e.authorisation_id, account_id=e.account_id,
                            card_id=e.card_id, amount=e.amount, currency=e.currency,
                            at=e.at + timedelta(days=data.draw(st.integers(1, 40))))
                for e in decided if isinstance(e, HoldPlaced) and data.draw(st.booleans())]
    stored = _stored(data, decided + data.draw(st.permutations([*money, *expiries])))
    accounts = sorted({a for s in stored if (a := account_of(_of(s))) is not None})
    times = sorted({s.recorded_at for s in stored} | {_of(s).at for s in stored})
    return stored, accounts, times[0], times[-1] - times[0] + timedelta(days=40)


def _of(stored: StoredEvent[Event]) -> DomainEvent:
    assert isinstance(stored.payload, DomainEvent)
    return stored.payload


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), funded=funded_histories())
def test_the_kept_lines_print_what_the_log_defines(
        data: st.DataObject, funded: tuple[list[AnySnapshot], list[DomainEvent]]) -> None:
    stored, accounts, first, span = logged_history(data, funded)
    index = StatementIndex(DEFAULT_POLICY)
    for account_id in accounts:
        events = [s for s in stored if account_of(_of(s)) == account_id]
        kept = index.account(account_id)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=3)))
        taken = 0
        for cut in [*cuts, len(events)]:
            kept.take(events[taken:cut])
            taken = max(taken, cut)
            assert kept.position == (events[taken - 1].position if taken else 0)
            _compare(data, kept, events[:taken], first, span)


def _moment(data: st.DataObject, events: list[StoredEvent[Event]], first: datetime,
            span: timedelta) -> datetime:
    """Any time around the history, or exactly an event's (where a line falls)."""
    times = sorted({t for s in events for t in moments_of(_of(s))})
    exact: bool = data.draw(st.booleans())
    if times and exact:
        return data.draw(st.sampled_from(times))
    return first + span * data.draw(_FRACTIONS)


def _compare(data: st.DataObject, kept: AccountLines, events: list[StoredEvent[Event]],
             first: datetime, span: timedelta) -> None:
    last_recorded = max((s.recorded_at for s in events), default=first)
    for currency in ("EUR", "USD"):
        start, end = sorted((_moment(data, events, first, span),
                             _moment(data, events, first, span)))
        asked = [(start, end, last_recorded), (start, end, first + span * data.draw(_FRACTIONS)),
                 (start, first + span * 2, last_recorded)]
        for start, end, known_at in asked:
            known = [s for s in events if s.recorded_at <= known_at]
            expected = statement(kept.account_id, known, currency, start, end, known_at)
            printed = kept.print_from(currency, start, end, known_at)
            closed = min(end, known_at)
            if not any(s.recorded_at > closed and min(moments_of(_of(s))) <= end
                       for s in events):  # nothing recorded late about the period
                assert printed is not None
            if printed is not None:
                assert printed == expected
                assert not any(line.correction for line in printed.lines)


def test_the_budget_forgets_the_least_recently_asked_account() -> None:
    deposit = FundsDeposited(account_id="a1", amount=Decimal(5), currency="EUR",
                             chain_transaction="eip155:1:0x1", at=datetime(2026, 1, 1, tzinfo=UTC))
    index = StatementIndex(DEFAULT_POLICY, budget=1)
    first = index.account("a1")
    first.take([StoredEvent(1, "s", 0, bytes(16), 1, deposit, Metadata(), deposit.at)])
    index.account("a2")
    index.trim()  # a1's event and line are over the budget; a2, asked last, stays
    assert index.account("a1") is not first
