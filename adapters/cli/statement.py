"""``cardledger statement``'s output: an account's statement (``CardLedger.statement``) as
a table, JSON Lines or CSV."""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from typing import Any

from adapters.cli import output
from adapters.service.card_ledger import CardLedger
from adapters.service.statements import Statement
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
    """The whole statement, from one walk through the account (paging through the cursors
    would walk it once a page), as ``form`` (table, json, csv)."""
    whole = await ledger.whole_statement(account, currency, start, end, known_at=known_at)
    {"csv": _csv, "json": _json, "table": _table}[form](whole)


def _csv(whole: Statement) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerow(_figures("opening", whole.start, whole.opening))
    writer.writerows(_row(line) for line in whole.lines)
    writer.writerow(_figures("closing", whole.end, whole.closing))


def _json(whole: Statement) -> None:
    output.emit_json({"accountId": whole.account_id, "currency": whole.currency,
                      "start": whole.start, "end": whole.end, "knownAt": whole.known_at,
                      "opening": whole.opening})
    for line in whole.lines:
        output.emit_json(line)
    output.emit_json({"closing": whole.closing})


def _table(whole: Statement) -> None:
    rows = [[f"{whole.start:%Y-%m-%d %H:%M}", "opening", "", "", "", "",
             *_amounts(whole.opening), ""]]
    rows += [[f"{line.at:%Y-%m-%d %H:%M}", line.kind,
              line.authorisation_id or line.transaction_id or line.chain_transaction or "",
              *_amounts(line.change), *_amounts(line.balance),
              f"{line.known_at:%Y-%m-%d %H:%M}" if line.known_at else ""]
             for line in whole.lines]
    rows.append([f"{whole.end:%Y-%m-%d %H:%M}", "closing", "", "", "", "",
                 *_amounts(whole.closing), ""])
    output.table(f"Statement of {whole.account_id} ({whole.currency}), as known at "
                 f"{whole.known_at:%Y-%m-%d %H:%M}", [
                     "at", "kind", "reference", "Δ posted", "Δ held", "Δ available", "posted",
                     "held", "available", "correction, learnt"], rows)


def _amounts(figures: Figures) -> list[str]:
    return [format_amount(v) for v in (figures.posted, figures.held, figures.available)]
