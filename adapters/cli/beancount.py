"""The journal in Beancount's syntax (``cardledger export --format beancount``), so that
Beancount's own checker (``bean-check``) is a second opinion on every balance: it sums our
entries itself and checks them against a ``balance`` assertion at the end of every day with
activity."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal

from ledger.money import EXACT, format_amount
from projections.journal import SETTLEMENT, Day, JournalEntry, customer_ledger


def header(first: date | None) -> Iterator[str]:
    yield 'option "title" "cardledger journal"\n'
    yield f"\n{first or date(1970, 1, 1)} open {SETTLEMENT}\n"


def account(account_id: str, first: date) -> Iterator[str]:
    for part in ("Available", "Held"):
        yield (f'{first} open {customer_ledger(account_id, part)}\n'
               f'  account-id: "{_quoted(account_id)}"\n')


def entry(item: JournalEntry) -> str:
    lines = "".join(f"  {line.ledger_account}  {format_amount(line.amount)} {line.currency}\n"
                    for line in item.lines)
    return (f'{item.at.date()} * "cardledger" "{item.narration}"\n'
            f'  time: "{item.at.isoformat()}"\n{lines}')


def day(account_id: str, today: Day) -> Iterator[str]:
    """A day's entries, then the next morning's assertions (Beancount checks a ``balance``
    at the start of its date): what is owed, available and held, per currency."""
    for item in today.entries:
        yield entry(item)
    morning = today.day + timedelta(days=1)
    for balance in today.closing:
        for part, amount in (("Available", balance.available), ("Held", balance.held)):
            yield (f"{morning} balance {customer_ledger(account_id, part)}  "
                   f"{format_amount(-amount)} {balance.currency}\n")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def document(accounts: Iterable[tuple[str, list[Day]]]) -> Iterator[str]:
    """A whole file from each account's days, and at its end what Settlement holds: the
    sum of every account's posted balance."""
    chosen = [(a, d) for a, d in accounts if d]
    yield from header(min((d[0].day for _, d in chosen), default=None))
    held_at_processor: dict[str, Decimal] = {}
    for account_id, account_days in chosen:
        yield "\n"
        yield from account(account_id, account_days[0].day)
        for today in account_days:
            yield from day(account_id, today)
        for balance in account_days[-1].closing:
            held_at_processor[balance.currency] = EXACT.add(
                held_at_processor.get(balance.currency, Decimal(0)), balance.posted)
    if chosen:
        after = max(d[-1].day for _, d in chosen) + timedelta(days=1)
        for currency, amount in sorted(held_at_processor.items()):
            yield f"\n{after} balance {SETTLEMENT}  {format_amount(amount)} {currency}\n"
