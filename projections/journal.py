"""The programme's books, double entry, as its finance team keeps them.

The chart of accounts is the operator's. The programme's money sits at the processor, in
``Assets:Processor:Settlement``: deposits arrive there on chain, and card spending and
withdrawals leave from it. What each customer account holds is what the programme owes its
customer, a liability, kept in two parts: ``Liabilities:Customers:<account>:Available`` and
``...:Held`` (authorised, not yet captured or released). So:

- a deposit moves money into Settlement and into what is owed, available;
- a hold moves what is owed from available to held, and its release or expiry back;
- a debit (a capture) leaves Settlement and what is owed, available; a credit (a refund)
  comes back into both; a reversal undoes its debit.

Every entry is ``projections.postings``'s entry, seen from the operator's side, and sums to
zero per currency. Liabilities carry negative balances (Beancount's convention): an account
with 80 available and 20 held shows -80 and -20, and Settlement +100.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC as _UTC
from datetime import date, datetime
from decimal import Decimal

import msgspec

from ledger.domain.hold import DEFAULT_POLICY, HoldPolicy
from ledger.money import EXACT
from projections.book import AccountBook
from projections.postings import AVAILABLE, CHAIN, HELD, MERCHANTS, Entry
from projections.postings import entry as posting_entry
from projections.running import Running
from projections.views import Balance

SETTLEMENT = "Assets:Processor:Settlement"
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9-]")


def customer_ledger(account_id: str, part: str) -> str:
    """``Liabilities:Customers:<account>:<part>``. An account name's parts start with a
    capital or a digit and hold letters, digits and dashes: the id is upper-cased, any other
    character becomes a dash (the id itself is in each account's ``open`` metadata)."""
    name = _NOT_IN_A_NAME.sub("-", account_id.upper())
    return f"Liabilities:Customers:{name if name[:1].isalnum() else 'X' + name}:{part}"


class Line(msgspec.Struct, frozen=True):
    ledger_account: str
    currency: str
    amount: Decimal
    """Beancount's sign: positive debits an asset or reduces a liability."""


class JournalEntry(msgspec.Struct, frozen=True):
    at: datetime
    account_id: str
    narration: str
    lines: tuple[Line, ...]


def _operator_side(account_id: str, entry: Entry) -> JournalEntry:
    sides = {AVAILABLE: customer_ledger(account_id, "Available"),
             HELD: customer_ledger(account_id, "Held"), CHAIN: SETTLEMENT,
             MERCHANTS: SETTLEMENT}
    summed: dict[tuple[str, str], Decimal] = {}
    for posting in entry.postings:  # the customer's side, negated: what the operator owes
        key = (sides[posting.ledger_account], posting.currency)
        summed[key] = EXACT.subtract(summed.get(key, Decimal(0)), posting.amount)
    return JournalEntry(entry.at, account_id, _narration(entry), tuple(
        Line(account, currency, amount) for (account, currency), amount in summed.items()
        if amount))


def _narration(entry: Entry) -> str:
    moved = {p.ledger_account: p.amount for p in entry.postings}
    words = []
    if moved.get(CHAIN):
        words.append("deposit" if moved[CHAIN] < 0 else "withdrawal")
    if moved.get(MERCHANTS):
        words.append("card debit" if moved[MERCHANTS] > 0 else "credit or reversal")
    if moved.get(HELD):
        words.append("held" if moved[HELD] > 0 else "hold released")
    return ", ".join(words) or "change"


class Day(msgspec.Struct, frozen=True):
    """One day with activity on an account: its entries, and the balances at its end."""

    day: date
    entries: list[JournalEntry]
    closing: list[Balance]


def days(book: AccountBook, times: Sequence[datetime], as_of: datetime | None = None,
         policy: HoldPolicy = DEFAULT_POLICY) -> Iterator[Day]:
    """The account's journal, day by day (UTC) up to ``as_of`` (default: its last report),
    each day with its closing balances: what Beancount's ``balance`` assertions check the
    entries against. One walk through the account (``projections.running``)."""
    cut = as_of if as_of is not None else max(times, default=None)
    if cut is None:
        return
    previous: dict[str, Balance] = {}
    today: date | None = None
    entries: list[JournalEntry] = []
    for moment, balances in Running(book, policy).walk(until=cut):
        day = moment.astimezone(_UTC).date()
        if today is not None and day != today and entries:
            yield Day(today, entries, list(previous.values()))
            entries = []
        today = day
        for balance in balances:
            entry = posting_entry(moment, previous.get(balance.currency), balance)
            if entry is not None:
                entries.append(_operator_side(book.account_id, entry))
            previous[balance.currency] = balance
    if today is not None and entries:
        yield Day(today, entries, list(previous.values()))
