"""``cardledger statement``'s output: an account's statement (``CardLedger.statement``) as
a table, JSON Lines or CSV."""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, NamedTuple

from adapters.cli import output
from adapters.service.card_ledger import CardLedger
from ledger.money import format_amount
from projections.statement import Figures, StatementLine

COLUMNS = ("at", "recorded_at", "kind", "correction", "known_at", "authorisation_id",
           "transaction_id", "card_id", "chain_transaction", "posted_change", "held_change",
           "available_change", "posted", "held", "available")


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
    """The whole statement as ``form`` (table, json, csv), written as it is made
    (``CardLedger.stream_statement``): csv and json hold no line once written."""
    known, made = await ledger.stream_statement(account, currency, start, end,
                                                known_at=known_at)
    opening = await anext(made)
    assert isinstance(opening, Figures)
    lines = (line async for line in made if isinstance(line, StatementLine))
    head = Head(account, currency, start, end, known, opening)
    await {"csv": _csv, "json": _json, "table": _table}[form](head, lines)


class Head(NamedTuple):
    account_id: str
    currency: str
    start: datetime
    end: datetime
    known_at: datetime
    opening: Figures


def _closing(head: Head, last: StatementLine | None) -> Figures:
    return last.balance if last is not None else head.opening


async def _csv(head: Head, lines: AsyncIterator[StatementLine]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerow(_figures("opening", head.start, head.opening))
    last = None
    async for last in lines:
        writer.writerow(_row(last))
    writer.writerow(_figures("closing", head.end, _closing(head, last)))


async def _json(head: Head, lines: AsyncIterator[StatementLine]) -> None:
    output.emit_json({"accountId": head.account_id, "currency": head.currency,
                      "start": head.start, "end": head.end, "knownAt": head.known_at,
                      "opening": head.opening})
    last = None
    async for last in lines:
        output.emit_json(last)
    output.emit_json({"closing": _closing(head, last)})


async def _table(head: Head, lines: AsyncIterator[StatementLine]) -> None:
    printed = [line async for line in lines]  # a table is drawn whole
    rows = [[f"{head.start:%Y-%m-%d %H:%M}", "opening", "", "", "", "",
             *_amounts(head.opening), ""]]
    rows += [[f"{line.at:%Y-%m-%d %H:%M}", line.kind,
              line.authorisation_id or line.transaction_id or line.chain_transaction or "",
              *_amounts(line.change), *_amounts(line.balance),
              f"{line.known_at:%Y-%m-%d %H:%M}" if line.known_at else ""]
             for line in printed]
    rows.append([f"{head.end:%Y-%m-%d %H:%M}", "closing", "", "", "", "",
                 *_amounts(_closing(head, printed[-1] if printed else None)), ""])
    output.table(f"Statement of {head.account_id} ({head.currency}), as known at "
                 f"{head.known_at:%Y-%m-%d %H:%M}", [
                     "at", "kind", "reference", "Δ posted", "Δ held", "Δ available", "posted",
                     "held", "available", "correction, learnt"], rows)


def _amounts(figures: Figures) -> list[str]:
    return [format_amount(v) for v in (figures.posted, figures.held, figures.available)]
