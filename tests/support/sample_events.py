"""Event types the store tests write: small, with the shapes that matter (amounts, nesting)."""

from __future__ import annotations

from decimal import Decimal

from ledger import Event, EventRegistry


class Fee(Event, frozen=True):
    kind: str
    amount: Decimal


class Deposited(Event, frozen=True):
    account_id: str
    amount: Decimal
    fees: list[Fee] = []


class Noted(Event, frozen=True):
    text: str
    batch: str = ""
    index: int = 0
    size: int = 1


REGISTRY = EventRegistry([Deposited, Noted, Fee])


def note(text: str = "x", **fields: object) -> Noted:
    return Noted(text=text, **fields)  # type: ignore[arg-type]
