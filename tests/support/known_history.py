"""A history with known answers: what the processor reports, and the events it decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ledger.domain.programme import Programme
from ledger.events import DomainEvent, FundsDeposited
from ledger.observations import (
    AccountSnapshot,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    TransactionSnapshot,
)

T0 = datetime(2026, 2, 1, 9, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def card(status: str, at: datetime) -> CardSnapshot:
    return CardSnapshot(id="c1", account_id="a1", type="virtual", status=status,  # type: ignore[arg-type]
                        created_at=T0, updated_at=at)


def auth(hold_id: str, status: str, amount: str, created: datetime,
         at: datetime) -> AuthorisationSnapshot:
    return AuthorisationSnapshot(id=hold_id, account_id="a1", card_id="c1", status=status,  # type: ignore[arg-type]
                                 amount=amount, currency="EUR", merchant_amount=amount,
                                 merchant_currency="EUR", created_at=created, updated_at=at)


def tx(tx_id: str, direction: str, status: str, amount: str, at: datetime,
       authorisation_id: str | None = None) -> TransactionSnapshot:
    return TransactionSnapshot(id=tx_id, account_id="a1", card_id="c1",
                               authorisation_id=authorisation_id, status=status,  # type: ignore[arg-type]
                               direction=direction, amount=amount, currency="EUR",  # type: ignore[arg-type]
                               token_amount=amount, token="eip155:1/erc20:0x6b17",
                               created_at=at, updated_at=at)


def known_history_snapshots() -> list[AnySnapshot]:
    """Hold h1 40 (captured 30), h2 25 (pending, then the card terminated), h3 10
    (released); a 5 refund; a 12 debit reversed: what the processor reports."""
    return [
        AccountSnapshot(id="a1", customer_id="u1", status="active", currencies=["EUR"],
                        created_at=T0, updated_at=T0),
        card("active", day(0)),
        auth("h1", "pending", "40.00", day(1), day(1)),
        auth("h2", "pending", "25.00", day(2), day(2)),
        auth("h3", "pending", "10.00", day(3), day(3)),
        auth("h1", "capturing", "40.00", day(1), day(4)),
        tx("h1", "debit", "processing", "30.00", day(4), "h1"),
        auth("h1", "captured", "40.00", day(1), day(4.5)),
        auth("h3", "released", "10.00", day(3), day(5)),
        tx("r1", "credit", "processed", "5.00", day(6)),
        tx("t2", "debit", "processing", "12.00", day(6)),
        tx("t2", "debit", "reversed", "12.00", day(7)),
        card("terminated", day(10)),
    ]


def known_history() -> list[DomainEvent]:
    """Deposit 100, then ``known_history_snapshots``."""
    programme = Programme()
    events: list[DomainEvent] = [FundsDeposited(
        account_id="a1", amount=Decimal("100.00"), currency="EUR",
        chain_transaction="eip155:324:0xaa", at=day(0))]
    for snapshot in known_history_snapshots():
        events += programme.observe(snapshot)
    return events


ACCOUNT = AccountSnapshot(id="a1", customer_id="u1", status="active", currencies=["EUR"],
                          created_at=T0, updated_at=T0)
