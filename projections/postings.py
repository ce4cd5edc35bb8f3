"""Double entry: every change in an account's balances as a balanced set of postings.

Between two business times, the changes of an account's figures become one journal entry per
currency, whose lines move money between the customer's ``available`` and ``held`` funds and
the outside world: ``chain`` (deposits and withdrawals) and ``merchants`` (debits and credits).
Every entry sums to zero, and the running totals of ``available`` + ``held`` reproduce
``posted`` and ``held`` at every time, which ties the point-in-time model to its own history.
``CardLedger.journal`` gives an account's journal; a property checks it for every history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.interop import JSONReady
from ledger.money import EXACT
from projections.book import AccountBook
from projections.running import Running
from projections.views import Balance

AVAILABLE, HELD, CHAIN, MERCHANTS = "available", "held", "chain", "merchants"


class Posting(msgspec.Struct, JSONReady, frozen=True):
    ledger_account: str
    currency: str
    amount: Decimal
    """Positive: money into ``ledger_account``."""


class Entry(msgspec.Struct, JSONReady, frozen=True):
    at: datetime
    postings: tuple[Posting, ...]


def entry(at: datetime, before: Balance | None, after: Balance) -> Entry | None:
    """The entry that takes one currency's figures from ``before`` to ``after``."""
    zero = Decimal(0)
    b_dep, b_deb, b_cre, b_held = ((before.deposits, before.debits, before.credits, before.held)
                                   if before else (zero, zero, zero, zero))
    moves = {
        (AVAILABLE, CHAIN): EXACT.subtract(after.deposits, b_dep),
        (MERCHANTS, AVAILABLE): EXACT.subtract(after.debits, b_deb),
        (AVAILABLE, MERCHANTS): EXACT.subtract(after.credits, b_cre),
        (HELD, AVAILABLE): EXACT.subtract(after.held, b_held),
    }
    postings = []
    for (into, out_of), amount in moves.items():
        if amount:
            postings += [Posting(into, after.currency, amount),
                         Posting(out_of, after.currency, EXACT.minus(amount))]
    return Entry(at, tuple(postings)) if postings else None


def journal(book: AccountBook, times: Sequence[datetime],
            policy: HoldPolicy = DEFAULT_POLICY) -> list[Entry]:
    """The entries that take the account from nothing to its state at the last of
    ``times``: one at each moment its figures changed (a report, a movement, a hold's
    expiry), walked forward once (``projections.running``)."""
    entries: list[Entry] = []
    if not times:
        return entries
    previous: dict[str, Balance] = {}
    for moment, balances in Running(book, policy).walk(until=max(times)):
        for balance in balances:
            made = entry(moment, previous.get(balance.currency), balance)
            if made is not None:
                entries.append(made)
            previous[balance.currency] = balance
    return entries


def totals(entries: Sequence[Entry]) -> dict[tuple[str, str], Decimal]:
    """Each (ledger account, currency)'s running total over the entries."""
    result: dict[tuple[str, str], Decimal] = {}
    for entry in entries:
        for p in entry.postings:
            key = (p.ledger_account, p.currency)
            result[key] = EXACT.add(result.get(key, Decimal(0)), p.amount)
    return result
