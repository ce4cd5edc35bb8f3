"""The journal as CSV lines, for spreadsheets: one row per posting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from ledger.money import format_amount
from projections.journal import Day

COLUMNS = ("entry", "time", "account_id", "ledger_account", "currency", "amount", "narration")


def csv_lines(accounts: Iterable[tuple[str, list[Day]]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    number = 0
    for account_id, account_days in accounts:
        for today in account_days:
            for entry in today.entries:
                number += 1
                for line in entry.lines:
                    writer.writerow((number, entry.at.isoformat(), account_id,
                                     line.ledger_account, line.currency,
                                     format_amount(line.amount), entry.narration))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
