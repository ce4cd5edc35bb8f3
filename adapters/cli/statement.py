"""``cardledger statement``'s output: an account's statement (``CardLedger.statement``) as
a table, JSON Lines or CSV."""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from adapters.cli import output
from adapters.service.card_ledger import CardLedger
from adapters.service.statements import Statement
from ledger.money import format_amount
from projections.statement import Figures, StatementLine, statement

COLUMNS = ("at", "recorded_at", "kind", "correction", "known_at", "authorisation_id",
           "transaction_id", "card_id", "chain_transaction", "posted_change", "held_change",
           "available_change", "posted", "held", "available")


async def pages(ledger: CardLedger, account: str, currency: str, start: datetime,
                end: datetime, known_at: datetime | None) -> AsyncIterator[Statement]:
    """The statement, in one walk through the account: the first page (which checks the
    request and pins ``known_at``), then, if there is more, every line (paging through the
    cursors would walk the account once a page)."""
    first = await ledger.statement(account, currency, start, end, known_at=known_at, limit=1)
    if first.next_cursor is None:
        yield first
        return
    events = await ledger.runner.account_events(account, first.known_at)
    printed = statement(account, events, currency, start, end, first.known_at,
                        ledger.runner.policy)
    yield msgspec.structs.replace(first, lines=printed.lines, next_cursor=None)


def _row(line: StatementLine) -> list[Any]:
    return [line.at.isoformat(), line.recorded_at.isoformat() if line.recorded_at else "",
            line.kind, "yes" if line.correction else "",
            line.known_at.isoformat() if line.known_at else "", line.authorisation_id or "",
            line.transaction_id or "", line.card_id or "", line.chain_transaction or "",
            *(format_amount(v) for v in (line.change.posted, line.change.held,
                                         line.change.available, line.balance.posted,
                                         line.balance.held, line.balance.available))]


def _figures(label: str, at: datetime, figures: Figures) -> list[Any]:
    return [at.isoformat(), "", label, "", "", "", "", "", "", "", "", "",
            *(format_amount(v) for v in (figures.posted, figures.held, figures.available))]


async def write(ledger: CardLedger, form: str, account: str, currency: str,
                start: datetime, end: datetime, known_at: datetime | None) -> None:
    """The statement, page after page, as ``form`` (table, json, csv)."""
    writers = {"csv": _csv, "json": _json, "table": _table}
    await writers[form](ledger, account, currency, start, end, known_at)


async def _csv(ledger: CardLedger, *args: Any) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    last = None
    async for page in pages(ledger, *args):
        if last is None:
            writer.writerow(_figures("opening", page.start, page.opening))
        writer.writerows(_row(line) for line in page.lines)
        last = page
    assert last is not None
    writer.writerow(_figures("closing", last.end, last.closing))


async def _json(ledger: CardLedger, *args: Any) -> None:
    last = None
    async for page in pages(ledger, *args):
        if last is None:
            output.emit_json({"accountId": page.account_id, "currency": page.currency,
                              "start": page.start, "end": page.end, "knownAt": page.known_at,
                              "opening": page.opening})
        for line in page.lines:
            output.emit_json(line)
        last = page
    assert last is not None
    output.emit_json({"closing": last.closing})


async def _table(ledger: CardLedger, *args: Any) -> None:
    rows, last = [], None
    async for page in pages(ledger, *args):
        if last is None:
            rows.append([f"{page.start:%Y-%m-%d %H:%M}", "opening", "", "", "", "",
                         *_amounts(page.opening), ""])
        rows += [[f"{line.at:%Y-%m-%d %H:%M}", line.kind,
                  line.authorisation_id or line.transaction_id or line.chain_transaction or "",
                  *_amounts(line.change), *_amounts(line.balance),
                  f"{line.known_at:%Y-%m-%d %H:%M}" if line.known_at else ""]
                 for line in page.lines]
        last = page
    assert last is not None
    rows.append([f"{last.end:%Y-%m-%d %H:%M}", "closing", "", "", "", "",
                 *_amounts(last.closing), ""])
    output.table(f"Statement of {last.account_id} ({last.currency}), as known at "
                 f"{last.known_at:%Y-%m-%d %H:%M}", [
                     "at", "kind", "reference", "Δ posted", "Δ held", "Δ available", "posted",
                     "held", "available", "correction, learnt"], rows)


def _amounts(figures: Figures) -> list[str]:
    return [format_amount(v) for v in (figures.posted, figures.held, figures.available)]
