"""Generated programmes turned into the events a ledger records: observations, plus deposits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import strategies as st

from ledger.domain.programme import Programme
from ledger.events import DomainEvent, FundsDeposited, FundsWithdrawn
from ledger.observations import (
    AccountSnapshot,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
)
from ledger.store import account_of
from ledger.testing import ADDRESS, amounts, programme_histories
from projections.book import AccountBook


def record(snapshots: list[AnySnapshot], money: Sequence[DomainEvent] = ()) -> list[DomainEvent]:
    """What a ledger records for these deliveries: decided observations, then money events."""
    programme = Programme()
    events: list[DomainEvent] = []
    for snapshot in snapshots:
        events += programme.observe(snapshot)
    return events + list(money)


@st.composite
def funded_histories(draw: st.DrawFn) -> tuple[list[AnySnapshot], list[DomainEvent]]:
    """A programme's snapshots and the deposits and withdrawals of its account."""
    history = draw(programme_histories())
    account = next(s for s in history if isinstance(s, AccountSnapshot))
    money: list[DomainEvent] = []
    for n in range(draw(st.integers(0, 3))):
        at = account.updated_at + timedelta(hours=draw(st.integers(1, 24 * 60)))
        amount = draw(amounts("1", "900"))
        kind = FundsWithdrawn if n and draw(st.booleans()) else FundsDeposited
        money.append(kind(account_id=account.id, amount=amount, currency="EUR",
                          chain_transaction=f"eip155:324:0x{n:04x}", at=at))
    return history, money


def books(events: list[DomainEvent]) -> dict[str, AccountBook]:
    result: dict[str, AccountBook] = {}
    for event in events:
        account_id = account_of(event)
        if account_id is not None:
            result.setdefault(account_id, AccountBook(account_id)).apply(event)
    return result


def moments(events: list[DomainEvent]) -> list[datetime]:
    """Every business time in the history, and a moment just before and after each."""
    times = {e.at for e in events} | {getattr(e, "observed_at", None) or e.at for e in events}
    return sorted({t + d for t in times for d in (timedelta(0), timedelta(microseconds=-1),
                                                  timedelta(days=31))})


def one_hold(at: datetime, amount: str = "40.00") -> list[AnySnapshot]:
    """Account a1 (EUR), its active card c1 and one pending hold h1 of ``amount``, at ``at``."""
    return [
        AccountSnapshot(id="a1", customer_id="u1", status="active", currencies=["EUR"],
                        created_at=at, updated_at=at),
        CardSnapshot(id="c1", account_id="a1", type="virtual", status="active",
                     billing_address=ADDRESS, masked_pan="530518******9871",
                     created_at=at, updated_at=at),
        AuthorisationSnapshot(id="h1", account_id="a1", card_id="c1", status="pending",
                              amount=amount, currency="EUR", merchant_amount=amount,
                              merchant_currency="EUR", created_at=at, updated_at=at),
    ]
