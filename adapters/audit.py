"""Export of the log, and the audit replay from the database or from an export alone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import click
import msgspec

from adapters import output
from ledger.errors import LedgerError
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


def rows_of_export(lines: Iterator[bytes]) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = msgspec.json.decode(line, type=ExportRow)
            record = base64.b64decode(row.record, validate=True)
            event_id = DOMAIN_REGISTRY.decode_stored(record).event_id.bytes
            digest = bytes.fromhex(row.hash)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise LedgerError(f"line {number} of the export is not a row: {exc}") from None
        yield (row.position, row.stream, row.version, event_id, row.type, row.recorded_at,
               record, digest)


async def audit(db: str, as_of: datetime | None, known_at: datetime | None,
                source: Path | None, as_json: bool) -> int:
    """Recompute, verify, compare; 1 on a broken chain or any drift."""
    problems: list[str] | None = None
    if source is not None:
        with source.open("rb") as lines:
            rows = list(rows_of_export(lines))
        report = verify_rows(DOMAIN_REGISTRY, rows)
        builder = ReplayBuilder(as_of, known_at)
        builder.add(DOMAIN_REGISTRY.decode_record(row[6]) for row in rows)
        recomputed = builder.result()
    else:
        from adapters.cli import ledger

        async with ledger(db) as store:
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

