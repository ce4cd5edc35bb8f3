"""Export of the log, and the audit replay from the database or from an export alone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import click
import msgspec

from adapters.cli import output
from adapters.cli.locations import existing_store
from ledger.errors import InvalidInputError
from ledger.events import DOMAIN_REGISTRY
from ledger.store import Event, EventRegistry, StoredEvent, VerifyReport
from ledger.store.chain import verify_rows
from ledger.store.planner import Row
from projections import ProjectionRunner
from projections.backends import Snapshot
from projections.replay import Replay, ReplayBuilder, drift, replay


def export_line(registry: EventRegistry, row: Row) -> bytes:
    """One row as JSON: position, hash and canonical record, plus readable payload."""
    position, stream, version, _, wire, recorded_us, record, digest = row
    event = registry.decode_stored(record)
    return msgspec.json.encode({
        "position": position, "stream": stream, "version": version,
        "eventId": str(event.event_id), "type": wire, "recordedAt": recorded_us,
        "hash": digest.hex(), "record": base64.b64encode(record).decode(),
        "payload": msgspec.to_builtins(event.payload),
        "metadata": msgspec.to_builtins(event.metadata)}) + b"\n"


class ExportRow(msgspec.Struct, rename="camel"):
    position: int
    stream: str
    version: int
    type: str
    recorded_at: int
    hash: str
    record: str


class ExportDisagreement(msgspec.Struct, frozen=True):
    """A line whose readable fields say something else than its hashed record."""

    line: int
    position: int
    fields: list[str]

    def reason(self) -> str:
        return (f"line {self.line} of the export: {', '.join(self.fields)} disagree(s) with "
                "the hashed record")


def rows_of_export(lines: Iterator[bytes]) -> tuple[list[Row], ExportDisagreement | None]:
    """The export's rows, and the first line whose readable copy (``payload``, ``metadata``,
    ``eventId``...) is not exactly what its hashed record holds: an auditor reads those."""
    rows: list[Row] = []
    disagreement: ExportDisagreement | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found = msgspec.json.decode(line, type=ExportRow)
            record = base64.b64decode(found.record, validate=True)
            event_id = DOMAIN_REGISTRY.decode_stored(record).event_id.bytes
            row = Row(found.position, found.stream, found.version, event_id, found.type,
                   found.recorded_at, record, bytes.fromhex(found.hash))
            shown, derived = msgspec.json.decode(line), msgspec.json.decode(
                export_line(DOMAIN_REGISTRY, row))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise InvalidInputError(f"line {number} of the export is not a row: {exc}") from None
        if disagreement is None and shown != derived:
            fields = sorted(k for k in shown.keys() | derived.keys()
                            if shown.get(k) != derived.get(k))
            disagreement = ExportDisagreement(number, found.position, fields)
        rows.append(row)
    return rows, disagreement


def verified_export(source: Path) -> tuple[list[Row], VerifyReport]:
    """An export's rows, and its chain verified: broken at the first bad row, or at the first
    line whose readable fields disagree with its hashed record, whichever comes first."""
    with source.open("rb") as lines:
        rows, disagreement = rows_of_export(lines)
    report = verify_rows(DOMAIN_REGISTRY, rows)
    if disagreement is not None and (report.ok or disagreement.position
                                     < (report.first_bad_position or 0)):
        report = VerifyReport(False, disagreement.position - 1, disagreement.position,
                              disagreement.reason())
    return rows, report


async def audit(db: str, as_of: datetime | None, known_at: datetime | None,
                source: Path | None, as_json: bool) -> int:
    """Recompute, verify, compare; 1 on a broken chain or any drift."""
    problems: list[str] | None = None
    if source is not None:
        rows, report = verified_export(source)
        builder = ReplayBuilder(as_of, known_at)
        builder.add(DOMAIN_REGISTRY.decode_record(row.record) for row in rows)
        recomputed = builder.result()
    else:
        async with existing_store(db) as store:
            report = await store.verify()
            stored: Snapshot | None = None
            if as_of is None and known_at is None:  # the stored views are "as of the log"
                async with ProjectionRunner(store) as runner:
                    await runner.catch_up(wait=False)  # a serving runner may be leading
                    stored = await runner.backend.snapshot()
            # Replay exactly what the stored views have seen, so that they compare.
            upto = stored.position if stored is not None else await store.head()
            with output.progress("replaying", upto, not as_json) as advance:

                async def counted() -> AsyncIterator[list[StoredEvent[Event]]]:
                    async for batch in store.read_batches():
                        advance(len(batch))
                        yield batch

                recomputed = await replay(counted(), as_of, known_at, upto)
            if stored is not None:
                problems = drift(recomputed, stored)
    _show(report, recomputed, problems, source, as_json)
    return 1 if not report.ok or problems else 0


def _show(report: VerifyReport, recomputed: Replay, problems: list[str] | None,
          source: Path | None, as_json: bool) -> None:
    balances = [b for v in recomputed.views.values() for b in v.balances]
    if as_json:
        output.emit_json({"chain": report, "events": recomputed.events, "balances": balances,
                          "holds": [h for v in recomputed.views.values() for h in v.holds],
                          "anomalies": [a for v in recomputed.views.values()
                                        for a in v.anomalies],
                          "drift": problems})
        return
    output.records("Balances recomputed from the log", balances, False)
    chain = (f"intact over {report.checked} events, head {report.last_hash}" if report.ok
             else f"BROKEN at position {report.first_bad_position}: {report.reason}")
    click.echo(f"chain: {chain}")
    click.echo(f"replayed {recomputed.events} events into {len(recomputed.views)} accounts"
               + (f" from {source}" if source else ""))
    if problems is None:
        click.echo("projections: not compared (no database, or a point-in-time replay)")
    elif problems:
        click.echo(f"projections: {len(problems)} row(s) DRIFT from the replay")
        for problem in problems[:20]:
            click.echo(f"  {problem}")
    else:
        click.echo("projections: identical to the replay")

