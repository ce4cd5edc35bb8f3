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
from adapters.cli.proofs import verifier_key
from ledger.errors import InvalidInputError
from ledger.events import DOMAIN_REGISTRY
from ledger.store import Event, EventRegistry, EventStore, StoredEvent, VerifyReport
from ledger.store.chain import verify_rows
from ledger.store.planner import Row
from ledger.transparency import prover
from ledger.transparency.checkpoint import Checkpoint, open_checkpoint
from ledger.transparency.note import SigningKey, VerifierKey, unverified_text
from projections import ProjectionRunner
from projections.backends import Snapshot
from projections.replay import Replay, ReplayBuilder, drift, replay


def export_line(registry: EventRegistry, row: Row) -> bytes:
    """One row as JSON: position, hash and canonical record, plus readable payload."""
    position, stream, version, _, wire, recorded_us, record, digest, _ = row
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


async def checkpoint_line(store: EventStore, size: int, key: SigningKey | None) -> bytes:
    """An export's last line: the checkpoint of the rows before it, signed with ``key``."""
    checkpoint = await prover.checkpoint(store, size)
    return msgspec.json.encode({"checkpoint": checkpoint.signed(key) if key
                                else checkpoint.text()}) + b"\n"


class _CheckpointLine(msgspec.Struct, forbid_unknown_fields=True):
    checkpoint: str


class Export(msgspec.Struct):
    rows: list[Row]
    disagreement: ExportDisagreement | None
    """The first line whose readable copy is not what its hashed record holds."""
    checkpoint: str | None
    """Its last line's checkpoint (a signed note, or a checkpoint's bare text)."""


def rows_of_export(lines: Iterator[bytes]) -> Export:
    """The export's rows, the first line whose readable copy (``payload``, ``metadata``,
    ``eventId``...) is not exactly what its hashed record holds (an auditor reads those), and
    its checkpoint."""
    rows: list[Row] = []
    disagreement: ExportDisagreement | None = None
    checkpoint: str | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if checkpoint is not None:
            raise InvalidInputError(f"line {number} of the export follows its checkpoint")
        if line.startswith(b'{"checkpoint":'):
            try:
                checkpoint = msgspec.json.decode(line, type=_CheckpointLine).checkpoint
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise InvalidInputError(f"line {number} of the export is not a checkpoint: "
                                        f"{exc}") from None
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
    return Export(rows, disagreement, checkpoint)


def verified_export(source: Path, key: VerifierKey | None = None) -> tuple[list[Row],
                                                                           VerifyReport]:
    """An export's rows, and its chain verified: broken at the first bad row, or at the first
    line whose readable fields disagree with its hashed record, whichever comes first; then
    its rows must make the tree of its checkpoint, signed by ``key`` when one is given."""
    with source.open("rb") as lines:
        export = rows_of_export(lines)
    rows, disagreement = export.rows, export.disagreement
    report = verify_rows(DOMAIN_REGISTRY, rows)
    if disagreement is not None and (report.ok or disagreement.position
                                     < (report.first_bad_position or 0)):
        report = VerifyReport(False, disagreement.position - 1, disagreement.position,
                              disagreement.reason())
    if report.ok:
        problem = _checkpoint_problem(export, report, key)
        if problem is not None:
            report = VerifyReport(False, len(rows), None, problem, report.last_hash)
    return rows, report


def _checkpoint_problem(export: Export, report: VerifyReport,
                        key: VerifierKey | None) -> str | None:
    """Why the export's rows are not what its checkpoint says (None: they are)."""
    if export.checkpoint is None:
        return ("the export carries no checkpoint, so nothing vouches for it" if key else None)
    text = export.checkpoint
    if key is not None:
        checkpoint = open_checkpoint(text, key)
    else:
        checkpoint = Checkpoint.parse(unverified_text(text) if "\n\n" in text else text)
    if checkpoint.size != len(export.rows):
        return (f"the export holds {len(export.rows)} events, its checkpoint "
                f"{checkpoint.size}: it was cut or extended")
    if report.root != checkpoint.root.hex():
        return "the export's events are not the ones its checkpoint signed"
    return None


async def audit(db: str, as_of: datetime | None, known_at: datetime | None,
                source: Path | None, as_json: bool, key_file: Path | None = None) -> int:
    """Recompute, verify, compare; 1 on a broken chain, an export its checkpoint does not
    vouch for, or any drift."""
    problems: list[str] | None = None
    if source is not None:
        rows, report = verified_export(source, verifier_key(key_file) if key_file else None)
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
             else f"BROKEN at position {report.first_bad_position}: {report.reason}"
             if report.first_bad_position else f"BROKEN: {report.reason}")
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

