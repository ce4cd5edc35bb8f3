"""The ``cardledger`` command line.

Exit codes: 0 success; 1 a check found a problem (a broken chain, drift, a reconciliation
difference); 2 bad usage or bad input; 3 an outage (the database or the processor could not
be reached, or kept failing): try again later; 4 a bug in cardledger. An error's code comes
from its kind (``adapters.errors.ANSWERS``). A one-line reason on stderr, no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import click
import msgspec

from adapters.cli import logs, output
from adapters.cli.locations import check_exists, existing_store
from adapters.cli.simulate import simulate as simulate_command
from adapters.errors import EXIT_BAD_INPUT, EXIT_PROBLEM, answer_for
from adapters.processor import connection as processor_options
from ledger.errors import LedgerError
from ledger.store.location import redacted
from projections.partitions import MAX_WORKERS


class Moment(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time; a date means its midnight, and a time without zone means UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (2026-01-31 or "
                      "2026-01-31T12:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


MOMENT = Moment()
db_option = click.option("--db", envvar="CARDLEDGER_DB", default="cardledger.db",
                         show_default=True, help="sqlite:///PATH, a file path, or "
                         "postgresql://... (also $CARDLEDGER_DB).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


bar = output.progress


def run(main: Callable[..., Awaitable[int | None]], *args: Any) -> None:
    """Run an async command; turn bad input into exit 2, an outage into exit 3, each with a
    one-line reason."""
    try:
        code = anyio.run(main, *args)
    except BaseExceptionGroup as group:  # a task group's, around one error: report that one
        errors = group.exceptions
        if len(errors) == 1 and isinstance(errors[0], _REPORTED):
            _fail(errors[0])
        raise
    except _REPORTED as exc:
        _fail(exc)
    sys.exit(code or 0)


def _fail(exc: BaseException) -> None:
    click.echo(f"error: {exc}".splitlines()[0], err=True)
    sys.exit(_exit_code(exc))


def _exit_code(exc: BaseException) -> int:
    return answer_for(exc).exit_code


_REPORTED = (LedgerError, OSError, ValueError)


_BAR_FROM = 20_000
"""A catch-up of at least this many events shows a progress bar (on a terminal)."""


@asynccontextmanager
async def front_door(db: str, *, must_exist: bool = True) -> AsyncIterator[Any]:
    """The ``CardLedger`` at ``db``, its projections caught up (a progress bar on a terminal
    for a long catch-up or a rebuild; a serving process may lead: then read its state)."""
    from adapters.service.card_ledger import CardLedger

    if must_exist:
        check_exists(db)
    async with CardLedger.open(db) as opened:
        runner = opened.runner
        behind = await opened.store.head() - (0 if runner.outdated else runner.position)
        with output.progress("rebuilding the projections" if runner.outdated else "projecting",
                             behind, behind >= _BAR_FROM) as advance:
            runner.on_commit = advance
            await runner.catch_up(wait=False)
        runner.on_commit = None
        yield opened


@asynccontextmanager
async def projections(db: str, *, must_exist: bool = True) -> AsyncIterator[Any]:
    """The projection runner of ``front_door``."""
    async with front_door(db, must_exist=must_exist) as opened:
        yield opened.runner


def entry() -> None:
    """The console script: bad usage gets a one-line reason and exit 2, not a usage dump."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(EXIT_PROBLEM)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}".splitlines()[0], err=True)
        sys.exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console",
              show_default=True, help="Logs go to stderr; json for machines.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
def main(log_format: str, log_level: str) -> None:
    """cardledger: an event-sourced card ledger.

    Exit codes: 0 success; 1 a check found a problem; 2 bad usage or input; 3 an outage (the
    database or the processor unreachable): try again later."""
    logs.configure(log_format, log_level)


# --- the main job ------------------------------------------------------------------------------


@main.command()
@click.option("--db", default="cardledger-demo.db", show_default=True,
              help="SQLite file for the demo's ledger (replaced if it exists).")
@click.option("--seed", default=7, show_default=True, help="Seed of the whole programme.")
@click.option("--payments", default=2000, show_default=True, type=click.IntRange(1, 100_000),
              help="How many authorisations the programme makes.")
def demo(db: str, seed: int, payments: int) -> None:
    """The main job: a whole programme against the sandbox, then every report and check."""
    from adapters.cli import demo as the_demo

    the_demo.remove_database(db)
    run(the_demo.run, db, seed, payments)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", help="API key clients authenticate with (generated if absent).")
@click.option("--api-secret", help="API secret (generated if absent).")
@click.option("--webhook-secret", help="Standard Webhooks secret, whsec_... (generated).")
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice.")
def sandbox(host: str, port: int, api_key: str | None, api_secret: str | None,
            webhook_secret: str | None, seed: int) -> None:
    """Serve the processor sandbox (the simulated OffBlocks API) until interrupted."""
    import uvicorn

    from adapters.sandbox import Sandbox, SandboxConfig

    if webhook_secret is not None and not webhook_secret.startswith("whsec_"):
        raise click.BadParameter("must start with whsec_", param_hint="--webhook-secret")
    box = Sandbox(SandboxConfig(api_key=api_key, api_secret=api_secret,
                                webhook_secret=webhook_secret, seed=seed))
    click.echo(f"sandbox on http://{host}:{port}  (OpenAPI: /openapi.json)")
    if api_key is None or api_secret is None:
        click.echo(f"api key:        {box.credentials.api_key}")
        click.echo(f"api secret:     {box.credentials.api_secret}")
    if webhook_secret is None:
        click.echo(f"webhook secret: {box.webhooks.secret}")
    sys.stdout.flush()
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8710, show_default=True, type=click.IntRange(0, 65535))
@click.option("--webhook-secret", envvar="CARDLEDGER_WEBHOOK_SECRET",
              help="Verify Standard Webhooks signatures with this whsec_... secret.")
@click.option("--checkpoint-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign checkpoints with this private key: GET /checkpoint serves the latest.")
@click.option("--checkpoint-file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --checkpoint-key: also write one to this file...")
@click.option("--checkpoint-every-minutes", type=click.FloatRange(min=0.01), default=10.0,
              show_default=True, help="...at least this often when the log grew...")
@click.option("--checkpoint-every-events", type=click.IntRange(1), default=10_000,
              show_default=True, help="...or as soon as it grew by this many events.")
@processor_options.options
def serve(db: str, host: str, port: int, webhook_secret: str | None,
          checkpoint_key: Path | None, checkpoint_file: Path | None,
          checkpoint_every_minutes: float, checkpoint_every_events: int,
          **kwargs: Any) -> None:
    """Webhook receiver (POST /webhooks, GET /health, GET /checkpoint), projection runner,
    outbox dispatcher and expiry sweeper in one process; stops gracefully on SIGTERM."""
    from adapters.cli.proofs import signing_key
    from adapters.cli.serve import Checkpoints
    from adapters.cli.serve import serve as serve_forever

    connection = processor_options.connection(kwargs)
    if webhook_secret is not None and (not webhook_secret.startswith("whsec_")
                                       or len(webhook_secret) < len("whsec_") + 16):
        raise click.BadParameter("must be a whsec_... secret (Standard Webhooks), not empty",
                                 param_hint="--webhook-secret")
    if webhook_secret is None and not connection.configured:
        raise click.UsageError("give --webhook-secret, or a processor connection to verify "
                               "deliveries by fetching")
    if checkpoint_file is not None and checkpoint_key is None:
        raise click.UsageError("--checkpoint-file needs --checkpoint-key to sign with")
    try:
        checkpoints = None if checkpoint_key is None else Checkpoints(
            signing_key(checkpoint_key), checkpoint_file, checkpoint_every_minutes * 60,
            checkpoint_every_events)
    except LedgerError as exc:
        raise click.BadParameter(str(exc), param_hint="--checkpoint-key") from None
    run(serve_forever, db, host, port, webhook_secret, connection, checkpoints)


# --- reports ----------------------------------------------------------------------------------


@main.command()
@db_option
@click.option("--account", help="Only this account.")
@click.option("--as-of", type=MOMENT, help="Business time (default: now).")
@click.option("--known-at", type=MOMENT, help="Only what was recorded by then.")
@json_option
def balances(db: str, account: str | None, as_of: datetime | None, known_at: datetime | None,
             as_json: bool) -> None:
    """Balances per account and currency: deposits, debits, credits, posted, held, available."""

    async def show() -> None:
        async with front_door(db) as opened:
            found = await opened.balances(account, as_of=as_of, known_at=known_at)
        output.records("Balances", found, as_json)

    run(show)


@main.command()
@db_option
@click.option("--account", help="Only this account.")
@click.option("--as-of", type=MOMENT, help="Business time (default: now).")
@click.option("--all", "everything", is_flag=True, help="Also closed holds, and why they closed.")
@json_option
def holds(db: str, account: str | None, as_of: datetime | None, everything: bool,
          as_json: bool) -> None:
    """Authorisation holds: remaining amount, expiry, and the card's capture window."""

    async def show() -> None:
        async with front_door(db) as opened:
            found = await opened.holds(account, as_of=as_of, closed=everything)
        columns = ["authorisationId", "accountId", "currency", "amount", "remaining", "status",
                   "expiresAt", "cardStatus"] + (["closed"] if everything else [])
        output.records("Holds", found, as_json, None if as_json else columns)

    run(show)


@main.command()
@db_option
@click.option("--as-of", type=MOMENT, help="Business time (default: now).")
@json_option
def anomalies(db: str, as_of: datetime | None, as_json: bool) -> None:
    """Facts that contradict others: recorded and counted, and listed here."""

    async def show() -> None:
        async with front_door(db) as opened:
            found = await opened.anomalies(as_of=as_of)
        output.records("Anomalies", found, as_json)

    run(show)


@main.command()
@db_option
@json_option
@click.option("--wait-for-swap", type=float, default=60.0, show_default=True,
              help="Seconds to wait for a serving process that leads to swap the rebuild in.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=1, show_default=True,
              help="Processes that fold the log at once, each a range of its accounts.")
@click.option("--in-place", is_flag=True,
              help="Recompute the tables that serve (readers see them fill), with no "
                   "second copy on disk. No process may be serving.")
def rebuild(db: str, as_json: bool, wait_for_swap: float, workers: int,
            in_place: bool) -> None:
    """Recompute the projections from the log beside the ones that serve, then swap them in
    at the head in one transaction. A rebuild stopped half-way resumes where it stopped.
    While a serving process leads the projections, this one builds and that one swaps (it
    looks for a rebuild to finish every few seconds)."""

    async def go() -> int:
        from adapters.service.card_ledger import CardLedger
        from projections.runner import LeadElsewhereError

        check_exists(db)
        async with CardLedger.open(db) as opened:
            runner, head = opened.runner, await opened.store.head()
            with output.progress("rebuilding the projections", head,
                                 head >= _BAR_FROM and not as_json) as advance:
                runner.on_commit = advance
                if in_place:
                    position = await runner.rebuild(workers=workers, wait=False)
                    swapped_by = "in place"
                else:
                    try:
                        position = await runner.rebuild_online(wait=False, workers=workers)
                        swapped_by = "this"
                    except LeadElsewhereError:
                        position = await runner.rebuild_beside(wait=False, workers=workers)
                        swapped_by = "serving"
            with anyio.move_on_after(0 if in_place else wait_for_swap):
                while await runner.rebuild_left_off():  # noqa: ASYNC110 (tables, not an event)
                    await anyio.sleep(0.2)
            swapped = in_place or not await runner.rebuild_left_off()
        if as_json:
            click.echo(msgspec.json.encode({"rebuilt_to": position, "swapped": swapped,
                                            "swapped_by": swapped_by}).decode())
        elif swapped_by == "in place":
            click.echo(f"rebuilt the projections in place from the log's {position:,} events")
        elif swapped:
            by = "this process" if swapped_by == "this" else "the serving process"
            click.echo(f"rebuilt the projections from the log's {position:,} events; "
                       f"swapped in by {by}")
        else:
            click.echo(f"rebuilt the projections to position {position:,}; the serving "
                       "process has not swapped them in yet (it resumes the rebuild when "
                       "it looks next)")
        return 0 if swapped else 1

    run(go)


# --- audit -------------------------------------------------------------------------------------


@main.command()
@db_option
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An export (cardledger export): report it without the database.")
@click.option("--as-of", type=MOMENT, help="Business time (default: now).")
@click.option("--known-at", type=MOMENT, help="Only what was recorded by then.")
@click.option("--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The HTML file to write.")
@processor_options.options
def report(db: str, source: Path | None, as_of: datetime | None, known_at: datetime | None,
           output: Path, **kwargs: Any) -> None:
    """The audit report: one self-contained HTML file (charts inlined, opens offline), with
    the reconciliation when a processor connection is given. Exit 1 when the chain does not
    verify (the report shows where)."""
    from adapters.cli.report import write_report
    from adapters.processor.reconcile import reconcile as differences_of

    connection = processor_options.connection(kwargs)

    async def write() -> int:
        differences = None
        if connection.configured and source is None:
            async with existing_store(db) as store, await connection.open() as client:
                differences = await differences_of(store, client)
        # The command as the report shows it: its options, never a credential or password.
        shown = ["cardledger report", f"--output {output}",
                 f"--from {source}" if source else f"--db {redacted(db)}",
                 f"--as-of {as_of.isoformat()}" if as_of else "",
                 f"--known-at {known_at.isoformat()}" if known_at else "",
                 f"--processor-url {connection.url}" if connection.configured else ""]
        code = await write_report(db, source, as_of, known_at, output,
                                  " ".join(p for p in shown if p), differences)
        click.echo(f"report written to {output}")
        return code

    run(write)


FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.command()
@db_option
@click.option("--against", "checkpoints", multiple=True, type=FILE, metavar="CHECKPOINT",
              help="A signed checkpoint published earlier (repeatable): the database must be "
              "that ledger's log, or an extension of it.")
@click.option("--key", "key_file", type=FILE, help="The ledger's public key (FILE.pub).")
def verify(db: str, checkpoints: tuple[Path, ...], key_file: Path | None) -> None:
    """Walk the hash chain and the Merkle tree: exit 0 when intact, 1 naming the first bad
    position. With --against, also exit 1 unless the database extends each checkpoint: a
    rewritten history, a cut tail or another ledger's database all pass the walk alone."""
    from adapters.cli.proofs import verify_against

    async def check() -> int:
        async with existing_store(db) as store:
            report = await store.verify()
        if not report.ok:
            click.echo(f"chain broken at position {report.first_bad_position}: {report.reason} "
                       f"({report.checked} events before it verify)")
            return EXIT_PROBLEM
        click.echo(f"chain intact: {report.checked} events, head {report.last_hash}, "
                   f"tree root {report.root}")
        problems = await verify_against(db, checkpoints, key_file)
        for problem in problems:
            click.echo(f"NOT AN EXTENSION of {problem}")
        if checkpoints and not problems:
            click.echo(f"extends every checkpoint given ({len(checkpoints)})")
        return EXIT_PROBLEM if problems else 0

    run(check)


@main.command()
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key's file (mode 0600); the public key goes to FILE.pub.")
@db_option
def keygen(output: Path, db: str) -> None:
    """Make an Ed25519 key pair for signing the ledger's checkpoints (C2SP signed-note
    format), named after the ledger's origin: a key signs for one ledger."""
    from adapters.cli import proofs

    run(proofs.keygen, db, output)


@main.command()
@db_option
@click.option("--key", "key_file", required=True, type=FILE, help="The private key.")
@click.option("--size", type=click.IntRange(0), help="Events covered (default: all).")
def checkpoint(db: str, key_file: Path, size: int | None) -> None:
    """Print a signed checkpoint (C2SP tlog-checkpoint): the ledger's origin, its size and
    its Merkle tree root. Keep it outside the database."""
    from adapters.cli import proofs

    run(proofs.checkpoint, db, key_file, size)


@main.command()
@db_option
@click.option("--position", type=click.IntRange(1), help="Prove this event is in the log.")
@click.option("--from-size", type=click.IntRange(1), help="Prove the log extends its tree "
              "of this many events...")
@click.option("--to-size", type=click.IntRange(1), help="...in its tree of this many "
              "(default: all).")
@click.option("--key", "key_file", type=FILE, help="Sign the checkpoint(s) with this key.")
@click.option("--checkpoint", "against", type=FILE,
              help="Prove against this published checkpoint instead of a new one.")
def prove(db: str, position: int | None, from_size: int | None, to_size: int | None,
          key_file: Path | None, against: Path | None) -> None:
    """Print an inclusion proof (--position N) or a consistency proof (--from-size A
    [--to-size B]) as JSON, with the signed checkpoints it is against: check it anywhere with
    check-proof."""
    from adapters.cli import proofs

    if (position is None) == (from_size is None):
        raise click.UsageError("give exactly one of --position and --from-size")
    if from_size is not None and against is not None:
        raise click.UsageError("a consistency proof signs both of its checkpoints: give --key")
    run(proofs.prove, db, position, from_size, to_size, key_file, against)


@main.command("check-proof")
@click.argument("proof_file", metavar="PROOF", type=FILE)
@click.option("--key", "key_file", required=True, type=FILE, help="The ledger's public key.")
@click.option("--event", type=FILE, help="The event's line of cardledger export: it must be "
              "the event the proof is about.")
@click.option("--kept", type=FILE, help="A checkpoint kept earlier: a consistency proof must "
              "start from it.")
def check_proof(proof_file: Path, key_file: Path, event: Path | None,
                kept: Path | None) -> None:
    """Check a proof offline (no database, no network): exit 0 proven, 1 not, 2 not a
    proof or key."""
    from adapters.cli import proofs

    async def check() -> int:
        return proofs.check_proof(proof_file, key_file, event, kept)

    run(check)


@main.command()
@db_option
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False),
              help="File to write (default: standard output).")
@click.option("--format", "form", type=click.Choice(["jsonl", "beancount", "csv"]),
              default="jsonl", show_default=True,
              help="jsonl: the log itself; beancount: the journal, with a balance assertion "
              "after every day with activity (check it with bean-check); csv: journal lines.")
@click.option("--as-of", type=MOMENT, help="Journal up to this business time (default: all).")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="jsonl: sign the export's closing checkpoint with this private key.")
def export(db: str, output: Path | None, form: str, as_of: datetime | None,
           key_file: Path | None) -> None:
    """The log as JSON Lines (positions, hashes, canonical records and readable payloads,
    then the checkpoint of what it holds), or the double-entry journal as Beancount or CSV."""

    async def write() -> None:
        sink = output.open("wb") if output else sys.stdout.buffer
        try:
            if form == "jsonl":
                await _export_log(db, sink, output is not None, key_file)
            else:
                await _export_journal(db, sink, form, as_of)
        finally:
            if output:
                sink.close()

    run(write)


async def _export_log(db: str, sink: Any, progress: bool, key_file: Path | None) -> None:
    from adapters.cli.audit import checkpoint_line, export_line
    from adapters.cli.proofs import signing_key

    key = signing_key(key_file) if key_file else None
    async with existing_store(db) as store:
        exported = 0
        with bar("exporting", await store.head(), progress) as advance:
            async for rows in store.raw_rows():
                sink.write(b"".join(export_line(store.registry, row) for row in rows))
                advance(len(rows))
                exported += len(rows)
        sink.write(await checkpoint_line(store, exported, key))


async def _export_journal(db: str, sink: Any, form: str, as_of: datetime | None) -> None:
    from adapters.cli import beancount
    from adapters.cli.journal_csv import csv_lines
    from projections.journal import days

    async with front_door(db) as ledger:
        await ledger.wait_until_visible()
        runner, as_of = ledger.runner, as_of or ledger.clock()  # never a future expiry

        async def each_account() -> list[tuple[str, list[Any]]]:
            found = []
            for account_id in runner.account_ids():
                book, times = await runner.history(account_id)
                found.append((account_id, list(days(book, sorted(times), as_of,
                                                    runner.policy))))
            return found

        accounts = await each_account()
        lines = beancount.document(accounts) if form == "beancount" else csv_lines(accounts)
        for text in lines:
            sink.write(text.encode())


@main.command()
@db_option
@click.option("--as-of", type=MOMENT, help="Business time to recompute at (default: the log's).")
@click.option("--known-at", type=MOMENT, help="Only what was recorded by then.")
@click.option("--from", "source", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Replay an export file instead of the database.")
@click.option("--key", "key_file", type=FILE, help="With --from: the ledger's public key; the "
              "export's checkpoint must be signed by it.")
@json_option
def replay(db: str, as_of: datetime | None, known_at: datetime | None, source: Path | None,
           key_file: Path | None, as_json: bool) -> None:
    """The audit tool: recompute every balance, hold and anomaly from the log alone, verify
    the chain (and an export's checkpoint), compare with the stored projections; exit 1 on a
    broken chain, a checkpoint the export does not match, or any drift."""
    from adapters.cli.audit import audit

    run(audit, db, as_of, known_at, source, as_json, key_file)


# --- getting facts in --------------------------------------------------------------------------


@main.command()
@db_option
@click.argument("file", type=click.File("rb"))
@click.option("--skip-invalid", is_flag=True, help="Ingest the valid lines, list the others.")
@json_option
def ingest(db: str, file: Any, skip_invalid: bool, as_json: bool) -> None:
    """Archived processor webhook payloads, one JSON object per line (FILE or - for stdin),
    with the receiver's semantics: deduplicated, order-tolerant, anomalies flagged."""

    async def load() -> int:
        from adapters.processor.deliveries import InvalidDelivery
        from adapters.processor.observer import Observer
        from adapters.webhooks.archive import ingest_lines

        async with existing_store(db, must_exist=False) as store:
            try:
                report = await ingest_lines(Observer(store), file, skip_invalid=skip_invalid)
            except InvalidDelivery as exc:  # the reason, then each bad line
                for line in str(exc).splitlines()[1:]:
                    click.echo(f"  {line}", err=True)
                raise InvalidDelivery(str(exc).splitlines()[0]) from None
        if as_json:
            output.emit_json(report)
        else:
            click.echo(f"{report.lines} deliveries: {report.recorded} recorded, "
                       f"{report.duplicates} already known, {len(report.skipped)} skipped"
                       + (f", {len(report.conflicts)} refused" if report.conflicts else ""))
            for conflict in report.conflicts:
                click.echo(f"  refused: {conflict}", err=True)
        return EXIT_PROBLEM if report.conflicts else 0

    run(load)


@main.command()
@db_option
@processor_options.options
@json_option
def sync(db: str, as_json: bool, **kwargs: Any) -> None:
    """Pull what the processor holds and record what changed (then push pending requests)."""
    connection = processor_options.connection(kwargs)

    async def pull_all() -> None:
        from adapters.processor.observer import Observer
        from adapters.processor.outbox import Outbox
        from adapters.processor.sync import pull

        async with projections(db, must_exist=False) as runner, await connection.open() as client:
            sent = await Outbox(runner.store, client).dispatch()
            report = await pull(client, Observer(runner.store),
                                [h.authorisation_id for h in runner.live_holds()])
        if as_json:
            output.emit_json({"fetched": report.fetched, "recorded": report.recorded,
                              "requestsSent": sent})
        else:
            click.echo(f"fetched {report.fetched}, recorded {report.recorded}, "
                       f"sent {sent} pending request(s)")

    run(pull_all)


@main.command()
@db_option
@processor_options.options
@json_option
def reconcile(db: str, as_json: bool, **kwargs: Any) -> None:
    """Compare the ledger with the processor: exit 1 if anything differs."""
    connection = processor_options.connection(kwargs)

    async def compare() -> int:
        from adapters.processor.reconcile import reconcile as differences_of

        async with existing_store(db) as store, await connection.open() as client:
            differences = await differences_of(store, client)
        output.records("Differences", differences, as_json)
        if not as_json:
            click.echo(f"{len(differences)} difference(s)")
        return EXIT_PROBLEM if differences else 0

    run(compare)


def _money_command(kind: str) -> Callable[..., None]:
    @db_option
    @click.option("--account", required=True, help=f"The account of the {kind}.")
    @click.option("--amount", required=True, help="A decimal amount, e.g. 100.00.")
    @click.option("--currency", default="EUR", show_default=True)
    @click.option("--chain-transaction", required=True,
                  help="The on-chain transfer: CAIP-2 chain id and hash (eip155:324:0x...). "
                  "One transfer is recorded once: the same again is a no-op, the same with "
                  "another account, amount or currency is refused.")
    @click.option("--allow-overdraft", is_flag=True, hidden=kind == "deposit",
                  help="Record a withdrawal larger than the available balance all the same.")
    def command(db: str, account: str, amount: str, currency: str,
                chain_transaction: str, allow_overdraft: bool) -> None:
        async def record() -> None:
            from ledger.money import Money, parse_amount

            async with front_door(db) as ledger:
                done = await (
                    ledger.record_deposit(account, parse_amount(amount), currency,
                                          chain_transaction) if kind == "deposit" else
                    ledger.record_withdrawal(account, parse_amount(amount), currency,
                                             chain_transaction,
                                             allow_overdraft=allow_overdraft))
            event = done.event
            what = (f"{type(event).__name__} {Money(event.amount, event.currency)} "
                    f"{'to' if kind == 'deposit' else 'from'} {event.account_id}")
            click.echo(f"already recorded at position {done.position}, nothing written: {what}"
                       if done.duplicate else f"recorded at position {done.position}: {what}")

        run(record)

    command.__doc__ = (f"Record funds {'deposited to' if kind == 'deposit' else 'withdrawn from'}"
                       " an account (an on-chain transfer the back office saw).")
    return command


main.command(name="deposit")(_money_command("deposit"))
main.command(name="withdraw")(_money_command("withdrawal"))


@main.group()
def card() -> None:
    """Card requests, recorded in the log and pushed to the processor through the outbox."""


def _card_command(action: str) -> Callable[..., None]:
    @db_option
    @processor_options.options
    def command(db: str, card_id: str, **kwargs: Any) -> None:
        run(_request, db, processor_options.connection(kwargs),
            lambda commands: commands.card_action(card_id, action), f"for card {card_id}")

    command.__doc__ = f"Ask the processor to {action} CARD_ID."
    return click.argument("card_id")(command)


async def _request(db: str, connection: processor_options.Connection,
                   make: Callable[[Any], Awaitable[Any]], subject: str) -> None:
    """Record a back-office request, and send it now if a processor is configured (otherwise
    ``serve`` sends it)."""
    from adapters.processor.outbox import Outbox
    from adapters.service.commands import Commands

    async with existing_store(db) as store:
        event = await make(Commands(store))
        if connection.configured:
            async with await connection.open() as client:
                await Outbox(store, client).dispatch()
    waiting = "" if connection.configured else (
        "; no processor is configured here: it waits in the outbox (cardledger outbox list) "
        "until cardledger serve, with a processor, sends it")
    click.echo(f"recorded: {type(event).__name__} {subject}{waiting}")


@main.group()
def outbox() -> None:
    """Requests recorded for the processor: those waiting, and those it refused."""


@outbox.command(name="list")
@db_option
@click.option("--all", "everything", is_flag=True, help="Also the accepted and retried ones.")
@json_option
def outbox_list(db: str, everything: bool, as_json: bool) -> None:
    """Pending and refused requests, oldest first (a refusal with the processor's reason).

    A pending request that failed for a passing reason (429, 5xx, a timeout) is sent again
    by ``serve`` after its backoff; a refused one waits for ``outbox retry``."""
    from adapters.processor.outbox import Outbox

    async def show() -> None:
        async with existing_store(db) as store:
            found = [e for e in await Outbox(store, None).entries()
                     if everything or e.state in ("pending", "refused")]
        output.records("Outbox", found, as_json, None if as_json else [
            "requestId", "requestType", "state", "status", "reason", "retryOf"])

    run(show)


@outbox.command(name="retry")
@db_option
@click.argument("request_id", type=click.UUID)
@processor_options.options
def outbox_retry(db: str, request_id: Any, **kwargs: Any) -> None:
    """Send a refused request again, as a new request with a new idempotency key."""
    from adapters.processor.outbox import Outbox

    connection = processor_options.connection(kwargs)

    async def retry() -> None:
        async with existing_store(db) as store:
            new_id = await Outbox(store, None).retry(request_id)
            if connection.configured:
                async with await connection.open() as client:
                    await Outbox(store, client).dispatch()
        click.echo(f"recorded: request {new_id}, retrying {request_id}")

    run(retry)


for _action in ("deactivate", "activate", "terminate"):
    card.command(name=_action)(_card_command(_action))


@card.command(name="create")
@db_option
@click.option("--account", required=True)
@click.option("--first-line", required=True, help="Billing address, first line.")
@click.option("--city", required=True)
@click.option("--post-code", required=True)
@click.option("--country", required=True, help="ISO 3166 alpha-2, e.g. GB.")
@processor_options.options
def create_card(db: str, account: str, first_line: str, city: str, post_code: str,
                country: str, **kwargs: Any) -> None:
    """Ask the processor for a virtual card on ACCOUNT (one live virtual card per account)."""
    from ledger.observations import Address

    address = Address(first_line=first_line, city=city, post_code=post_code, country=country)
    run(_request, db, processor_options.connection(kwargs),
        lambda commands: commands.request_card(account, address), f"for account {account}")


main.add_command(simulate_command)


@main.command()
@db_option
@click.option("--account", required=True)
@click.option("--currency", required=True, help="ISO 4217, e.g. EUR.")
@click.option("--from", "start", type=MOMENT, required=True,
              help="The period starts after this business time...")
@click.option("--to", "end", type=MOMENT, required=True, help="...and ends at this one.")
@click.option("--known-at", type=MOMENT, help="What was recorded by then (default: now).")
@click.option("--format", "form", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True,
              help="json: JSON Lines (the opening, each line, the closing).")
def statement(db: str, account: str, currency: str, start: datetime, end: datetime,
              known_at: datetime | None, form: str) -> None:
    """ACCOUNT's statement for a period: the opening balance, every change with its running
    balance, the closing balance. A report learnt after the period closed is a correction,
    dated when it was learnt: a statement printed again repeats what it printed."""
    from adapters.cli.statement import write

    async def show() -> None:
        async with front_door(db) as ledger:
            await write(ledger, form, account, currency, start, end, known_at)

    run(show)
