"""What real traffic does to the books, each case as a user meets it: amounts amended between
reports, retried deposits, archives that overlap live webhooks, forged exports, currencies."""

from __future__ import annotations

import decimal
import json
import signal
import subprocess
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from msgspec.structs import replace

from adapters.processor.deliveries import parse_delivery
from adapters.processor.observer import Observer
from adapters.service.commands import Commands
from adapters.testing.servers import free_port
from adapters.webhooks.archive import ingest_lines
from ledger import open_store
from ledger.errors import TransferConflictError
from ledger.events import FundsWithdrawn
from ledger.money import format_amount, parse_amount
from ledger.observations import AnySnapshot, TransactionSnapshot
from ledger.testing import webhook_payload
from projections import ProjectionRunner, view
from projections.book import AccountBook
from projections.views import Balance
from tests.support.cli import CARDLEDGER, cli, get_json
from tests.support.known_history import ACCOUNT, T0, auth, day, known_history_snapshots, tx


async def _balances_at(path: Path, snapshots: list[AnySnapshot],
                       moments: list[timedelta]) -> list[tuple[str, str, str]]:
    """(debits, credits, held) as of each moment, from the stored projection's log."""
    async with open_store(path) as store, ProjectionRunner(store) as runner:
        observer = Observer(store)
        for snapshot in snapshots:
            await observer.record(snapshot)
        await runner.catch_up()
        found = []
        for moment in moments:
            (balance,) = (await runner.view_as_of("a1", T0 + moment)).balances
            found.append((str(balance.debits), str(balance.credits), str(balance.held)))
        assert await runner.stored_view("a1") == await runner.view_as_of("a1")
        return found


def _cleared(status: str, amount: str, at: float, direction: str = "debit") -> TransactionSnapshot:
    """A transaction created on day 1, reported at ``at``: a clearing can change the amount."""
    snapshot = tx("t1", direction, status, amount, day(at), "h1" if direction == "debit" else None)
    return replace(snapshot, created_at=day(1))


@pytest.mark.anyio
@pytest.mark.parametrize("order", ["in order", "latest first"])
async def test_a_clearing_amount_counts_from_the_clearing_on(tmp_path: Path, order: str) -> None:
    reports: list[AnySnapshot] = [_cleared("processing", "10.00", 1),
                                  _cleared("processed", "12.40", 2)]
    history: list[AnySnapshot] = [ACCOUNT, auth("h1", "pending", "10.00", day(0), day(0)), *(
        reports if order == "in order" else reports[::-1])]
    at_1, at_2 = timedelta(days=1, hours=12), timedelta(days=2, hours=12)
    assert await _balances_at(tmp_path / "l.db", history, [at_1, at_2]) == [
        ("10.00", "0", "0"), ("12.40", "0", "0")]


@pytest.mark.anyio
@pytest.mark.parametrize("order", ["in order", "latest first"])
async def test_an_incremental_authorisation_holds_the_raised_amount_from_then_on(
        tmp_path: Path, order: str) -> None:
    raised = [auth("h1", "pending", "30.00", day(0), day(0)),
              auth("h1", "pending", "45.00", day(0), day(1))]
    history: list[AnySnapshot] = [ACCOUNT, *(raised if order == "in order" else raised[::-1])]
    assert await _balances_at(tmp_path / "l.db", history,
                              [timedelta(hours=12), timedelta(days=1, hours=12)]) == [
        ("0", "0", "30.00"), ("0", "0", "45.00")]


@pytest.mark.anyio
async def test_a_refund_re_reported_with_its_final_amount_credits_that(tmp_path: Path) -> None:
    history: list[AnySnapshot] = [ACCOUNT, _cleared("processing", "8.00", 1, "credit"),
               _cleared("processed", "7.50", 2, "credit")]
    assert await _balances_at(tmp_path / "l.db", history[::-1],
                              [timedelta(days=1, hours=1), timedelta(days=3)]) == [
        ("0", "8.00", "0"), ("0", "7.50", "0")]


@pytest.mark.anyio
async def test_a_debit_in_another_currency_never_nets_the_hold(tmp_path: Path) -> None:
    usd = replace(_cleared("processing", "10.00", 1), currency="USD")
    async with open_store(tmp_path / "l.db") as store, ProjectionRunner(store) as runner:
        for snapshot in (ACCOUNT, auth("h1", "pending", "30.00", day(0), day(0)), usd):
            await Observer(store).record(snapshot)
        await runner.catch_up()
        balances = {b.currency: b for b in (await runner.view_as_of("a1", day(2))).balances}
    assert (balances["EUR"].held, balances["USD"].debits) == (Decimal("30.00"), Decimal("10.00"))


def _plain_decimals(text: str) -> bool:
    return "E" not in text and parse_amount(text) == Decimal(text)


def test_money_text_reads_back_to_the_same_amount() -> None:
    for text in ("0.000000000000000001", "1000", "100000000000000000000000000000",
                 "0.000000000000000000000000000001", "12.340"):
        amount = parse_amount(text)
        assert format_amount(amount) == text and _plain_decimals(format_amount(amount))


def test_the_balances_do_not_depend_on_the_ambient_decimal_context() -> None:
    from tests.support.histories import books, record

    history: list[AnySnapshot] = [
        ACCOUNT, auth("h1", "pending", "123456789.123456789", day(0), day(0)),
               tx("t1", "debit", "processing", "0.000000000000000001", day(1), "h1")]
    withdrawal = FundsWithdrawn(account_id="a1", amount=Decimal("0.123456789123456789"),
                                currency="EUR", chain_transaction="eip155:1:0x1", at=day(1))
    events = record(history, [withdrawal])
    (expected,) = [_view(b) for b in books(events).values()]
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        (narrow,) = [_view(b) for b in books(events).values()]
    assert narrow == expected
    assert expected[0].held == Decimal("123456789.123456788999999999")
    assert expected[0].available == Decimal("-123456789.246913578123456789")


def _view(book: AccountBook) -> list[Balance]:
    return view(book, day(2)).balances


# --- deposits: one on-chain transfer is one deposit ---------------------------------------


def _ledger_with_an_active_account(tmp_path: Path) -> Path:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(webhook_payload(ACCOUNT, uuid.UUID(int=1)) + b"\n")
    db = tmp_path / "ledger.db"
    assert cli("ingest", "--db", str(db), str(archive)).returncode == 0
    return db


def test_a_retried_deposit_counts_once_and_a_conflicting_one_is_refused(tmp_path: Path) -> None:
    db = str(_ledger_with_an_active_account(tmp_path))
    deposit = ["deposit", "--db", db, "--account", "a1", "--chain-transaction",
               "eip155:324:0xfeed"]
    first = cli(*deposit, "--amount", "100.00")
    again = cli(*deposit, "--amount", "100.00")
    other = cli(*deposit, "--amount", "90.00")
    assert first.returncode == 0 and first.stdout.startswith("recorded at position")
    assert again.returncode == 0 and "already recorded" in again.stdout, again
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "already recorded as a deposit of 100.00 EUR to account a1" in other.stderr
    (row,) = json.loads(cli("balances", "--db", db, "--json").stdout)
    assert row["deposits"] == "100.00"
    withdraw = ["withdraw", "--db", db, "--account", "a1", "--chain-transaction",
                "eip155:324:0xbeef"]
    assert cli(*withdraw, "--amount", "30.00").returncode == 0
    assert cli(*withdraw, "--amount", "30.00").returncode == 0
    assert cli(*withdraw, "--amount", "30.01").returncode == 2
    (row,) = json.loads(cli("balances", "--db", db, "--json").stdout)
    assert row["deposits"] == "70.00"


@pytest.mark.anyio
async def test_the_library_says_a_retry_is_a_duplicate_and_writes_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "l.db") as store:
        await Observer(store).record(ACCOUNT)
        await Observer(store).record(replace(ACCOUNT, id="a2"))
        commands = Commands(store)
        first = await commands.record_deposit("a1", Decimal("5.00"), "EUR", "eip155:1:0xab")
        again = await commands.record_deposit("a1", Decimal("5.0"), "EUR", "eip155:1:0xab")
        assert (first.duplicate, again.duplicate, again.position) == (False, True, first.position)
        head = await store.head()
        for account_id, amount in (("a1", "6.00"), ("a2", "5.00")):
            with pytest.raises(TransferConflictError, match="already recorded as a deposit"):
                await commands.record_deposit(account_id, Decimal(amount), "EUR",
                                              "eip155:1:0xab")
        assert await store.head() == head  # nothing written
        # The same transfer out of an account is another fact than into it.
        out = await commands.record_withdrawal("a2", Decimal("5.00"), "EUR", "eip155:1:0xab")
        assert not out.duplicate


# --- one webhook, whichever path brought it ---------------------------------------------------


def _archive(snapshots: list[AnySnapshot]) -> list[bytes]:
    return [webhook_payload(s, uuid.UUID(int=n + 1)) for n, s in enumerate(snapshots)]


def test_an_archive_overlapping_what_serve_received_records_only_the_new(tmp_path: Path) -> None:
    from adapters.sandbox.webhooks import new_secret
    from tests.support.webhooks import signed

    bodies = _archive(known_history_snapshots())
    port, secret, db = free_port(), new_secret(), str(tmp_path / "l.db")
    with subprocess.Popen([CARDLEDGER, "serve", "--db", db, "--port", str(port),
                           "--webhook-secret", secret]) as process:
        try:
            get_json(f"http://127.0.0.1:{port}/health")
            for body in bodies[:6]:
                answer = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body,
                                    headers=signed(body, secret=secret))
                assert answer.status_code == 200, answer.text
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(b"\n".join(bodies) + b"\n")
    first = cli("ingest", "--db", db, str(archive))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{len(bodies)} deliveries: {len(bodies) - 6} recorded, "
                                   "6 already known")
    again = cli("ingest", "--db", db, str(archive))
    assert again.stdout.startswith(f"{len(bodies)} deliveries: 0 recorded, "
                                   f"{len(bodies)} already known"), again.stdout
    fresh = str(tmp_path / "fresh.db")
    assert cli("ingest", "--db", fresh, str(archive)).returncode == 0
    for report in ("balances", "holds", "anomalies"):
        assert cli(report, "--db", db, "--json").stdout == cli(
            report, "--db", fresh, "--json").stdout


@pytest.mark.anyio
async def test_what_pull_fetched_is_already_known_to_an_archive(tmp_path: Path) -> None:
    snapshots = known_history_snapshots()
    bodies = _archive(snapshots)
    async with open_store(tmp_path / "l.db") as store:
        observer = Observer(store)
        for snapshot in snapshots[:8]:  # as pull sync records them: no delivery
            await observer.record(snapshot, correlation_id="pull-sync")
        facts = await store.head()
        report = await ingest_lines(Observer(store), bodies)
        assert (report.recorded, report.duplicates) == (len(bodies) - 8, 8)
        again = await ingest_lines(Observer(store), bodies)
        assert (again.recorded, again.duplicates, again.conflicts) == (0, len(bodies), [])
        assert await store.head() > facts


@pytest.mark.anyio
async def test_a_reused_event_id_with_other_content_is_refused(tmp_path: Path) -> None:
    from adapters.processor.deliveries import DeliveryConflictError

    first, second = known_history_snapshots()[1:3]
    async with open_store(tmp_path / "l.db") as store:
        observer = Observer(store)
        reused = uuid.UUID(int=7)
        original = parse_delivery(webhook_payload(first, reused))
        await observer.record(original.snapshot, delivery=original)
        head = await store.head()
        other = parse_delivery(webhook_payload(second, reused))
        with pytest.raises(DeliveryConflictError, match="recorded before with other content"):
            await observer.record(other.snapshot, delivery=other)
        with pytest.raises(DeliveryConflictError):  # a fresh process, knowing nothing
            await Observer(store).record(other.snapshot, delivery=other)
        assert await store.head() == head


# --- the audit ------------------------------------------------------------------------------


def test_a_forged_readable_payload_fails_the_replay(tmp_path: Path) -> None:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"\n".join(_archive(known_history_snapshots())) + b"\n")
    db = str(tmp_path / "l.db")
    assert cli("ingest", "--db", db, str(archive)).returncode == 0
    exported = tmp_path / "log.jsonl"
    assert cli("export", "--db", db, "--output", str(exported)).returncode == 0
    lines = exported.read_text().splitlines()
    (number, line), *_ = [(n, line) for n, line in enumerate(lines, start=1)
                          if '"amount":"40.00"' in line]
    lines[number - 1] = line.replace('"amount":"40.00"', '"amount":"4.000"')
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join(lines) + "\n")
    assert cli("replay", "--from", str(exported)).returncode == 0
    result = cli("replay", "--from", str(forged))
    assert result.returncode == 1, result.stdout
    assert f"line {number} of the export: payload disagree" in result.stdout


def test_a_second_final_state_changed_of_one_entity_is_no_drift(tmp_path: Path) -> None:
    changed = [auth("h9", "released", "5.00", day(0), day(1)),
               auth("h9", "captured", "5.00", day(0), day(2)),
               auth("h9", "pending", "5.00", day(0), day(3))]
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"\n".join(_archive([ACCOUNT, *changed])) + b"\n")
    db = str(tmp_path / "l.db")
    assert cli("ingest", "--db", db, str(archive)).returncode == 0
    anomalies = json.loads(cli("anomalies", "--db", db, "--json").stdout)
    assert [a["kind"] for a in anomalies] == ["final_state_changed"]
    audited = cli("replay", "--db", db, "--json")
    assert audited.returncode == 0 and json.loads(audited.stdout)["drift"] == [], audited.stdout


@pytest.mark.anyio
async def test_a_late_processing_report_keeps_the_token_and_fees(tmp_path: Path) -> None:
    """Found by the interleaving property: a stale "processing" report, arriving after the
    "processed" one, used to wipe the transaction's token, so the token totals vanished."""
    reports: list[AnySnapshot] = [_cleared("processed", "10.00", 2),
                                  _cleared("processing", "10.00", 1)]
    totals = []
    for n, history in enumerate((reports, reports[::-1])):
        async with open_store(tmp_path / f"{n}.db") as store, ProjectionRunner(store) as runner:
            for snapshot in [ACCOUNT, auth("h1", "pending", "10.00", day(0), day(0)), *history]:
                await Observer(store).record(snapshot)
            await runner.catch_up()
            found = await runner.stored_view("a1")
            assert found is not None
            totals.append([(t.kind, t.token_amount) for t in found.tokens])
    assert totals[0] == totals[1] == [("debit", Decimal("10.00"))]
