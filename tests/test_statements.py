"""Statements: the running balance after the last line is the balance as of the period's
end, for every history and every arrival order, on both backends; pages are pinned, so new
events never move them; a late report is a correction, never a rewrite; bad input is
refused, cursors included."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.service.card_ledger import CardLedger
from adapters.service.statements import Statement
from ledger.clock import ManualClock
from ledger.errors import InvalidInputError, NotFoundError
from ledger.observations import AccountSnapshot, AnySnapshot
from ledger.testing import FundedProgramme, deliveries, funded_programmes
from projections.statement import Figures, StatementLine
from projections.views import Balance
from tests.support.histories import one_hold
from tests.support.postgres_cluster import new_database

CHECKED = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


async def _record(ledger: CardLedger, clock: ManualClock, delivered: list[AnySnapshot],
                  programme: FundedProgramme) -> None:
    """Each report recorded when it arrives (the clock never goes back), then the money."""
    for snapshot in delivered:
        clock.set(snapshot.updated_at)
        await ledger.record(snapshot)
    await ledger.wait_until_visible()
    for transfer in programme.transfers:
        clock.set(transfer.at or clock())
        record = (ledger.commands.record_deposit if transfer.kind == "deposit"
                  else ledger.commands.record_withdrawal)
        await record(transfer.account_id, transfer.amount, transfer.currency,
                     transfer.chain_transaction)


async def _all_lines(ledger: CardLedger, account_id: str, currency: str, start: datetime,
                     end: datetime, limit: int) -> tuple[Statement, list[StatementLine]]:
    page = await ledger.statement(account_id, currency, start, end, limit=limit)
    first, lines = page, list(page.lines)
    while page.next_cursor is not None:
        page = await ledger.statement(account_id, currency, start, end, limit=limit,
                                      cursor=page.next_cursor)
        assert page.known_at == first.known_at and page.opening == first.opening
        lines += page.lines
    return first, lines


def _figures(balances: list[Balance], currency: str) -> Figures:
    for b in balances:
        if b.currency == currency:
            return Figures(b.posted, b.held, b.available)
    return Figures(Decimal(0), Decimal(0), Decimal(0))


async def _property(url: str, programme: FundedProgramme, delivered: list[AnySnapshot],
                    cut: tuple[float, float], limit: int) -> None:
    times = sorted(s.updated_at for s in programme.snapshots)
    span = times[-1] - times[0] + timedelta(days=40)
    start = times[0] + span * min(cut)
    end = times[0] + span * max(cut)
    clock = ManualClock(times[0])
    async with CardLedger.open(url, clock=clock) as ledger:
        await _record(ledger, clock, delivered, programme)
        clock.advance(timedelta(days=45))
        await ledger.wait_until_visible()
        accounts = {s.id: s for s in programme.snapshots if isinstance(s, AccountSnapshot)}
        for account_id in ledger.runner.account_ids():
            for currency in accounts[account_id].currencies if account_id in accounts else []:
                first, lines = await _all_lines(ledger, account_id, currency, start, end,
                                                limit)
                whole = await ledger.whole_statement(account_id, currency, start, end,
                                                     known_at=first.known_at)
                assert (whole.opening, whole.lines, whole.closing, whole.next_cursor) == (
                    first.opening, lines, first.closing, None)
                _, streamed = await ledger.stream_statement(  # read from the log's index
                    account_id, currency, start, end, known_at=first.known_at)
                assert [item async for item in streamed] == [first.opening, *lines]
                known = min(end, first.known_at)
                assert first.opening == _figures(await ledger.balances(
                    account_id, as_of=start, known_at=known), currency)
                running = first.opening
                for line in lines:
                    assert line.balance == Figures(running.posted + line.change.posted,
                                                   running.held + line.change.held,
                                                   running.available + line.change.available)
                    assert line.balance.available == line.balance.posted - line.balance.held
                    running = line.balance
                assert running == first.closing == _figures(
                    await ledger.balances(account_id, as_of=end), currency)
                regular = [line.at for line in lines if not line.correction]
                assert regular == sorted(regular)
                assert all(start < at <= end for at in regular)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[FundedProgramme, list[AnySnapshot], tuple[float, float],
                                     int]:
    programme = draw(funded_programmes())
    return (programme, draw(deliveries(programme.snapshots)),
            (draw(st.floats(0, 1)), draw(st.floats(0, 1))), draw(st.integers(1, 5)))


@CHECKED
@given(case=_cases())
def test_the_last_running_balance_is_the_balance_at_the_end_on_sqlite(
        case: tuple[FundedProgramme, list[AnySnapshot], tuple[float, float], int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(_property, str(Path(directory) / "l.db"), *case)


@CHECKED
@given(case=_cases())
def test_the_last_running_balance_is_the_balance_at_the_end_on_postgresql(
        postgres_server: str,
        case: tuple[FundedProgramme, list[AnySnapshot], tuple[float, float], int]) -> None:
    anyio.run(_property, new_database(postgres_server), *case)


START = datetime(2026, 3, 1, tzinfo=UTC)
pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


async def test_pages_are_pinned_and_a_late_report_is_a_correction(
        tmp_path: Path, clock: ManualClock) -> None:
    async with CardLedger.open(tmp_path / "l.db", clock=clock) as ledger:
        for snapshot in one_hold(START, "40.00"):
            await ledger.record(snapshot)
        await ledger.wait_until_visible()
        for n in range(3):
            clock.advance(timedelta(hours=1))
            await ledger.record_deposit("a1", Decimal(10 + n), "EUR", f"eip155:1:0x{n}")
        end = START + timedelta(days=1)
        first = await ledger.statement("a1", "EUR", START - timedelta(days=1), end, limit=2)
        assert [line.kind for line in first.lines] == ["hold placed", "deposit"]
        clock.set(end + timedelta(days=2))  # the period closed; a late report about it
        (_, _, hold) = one_hold(START, "40.00")
        await ledger.record(msgspec.structs.replace(hold, status="released",
                                                    updated_at=START + timedelta(hours=5)))
        rest = await ledger.statement("a1", "EUR", START - timedelta(days=1), end, limit=2,
                                      cursor=first.next_cursor)
        assert [line.kind for line in rest.lines] == ["deposit", "deposit"]
        assert rest.closing == first.closing and rest.next_cursor is None
        again = await ledger.statement("a1", "EUR", START - timedelta(days=1), end)
        assert again.lines[:4] == [*first.lines, *rest.lines]  # nothing printed is rewritten
        (correction,) = again.lines[4:]
        assert correction.correction and correction.kind == "released"
        assert correction.known_at == end + timedelta(days=2)
        assert correction.change.held == Decimal("-40.00")
        assert again.closing.held == 0
        reprint = await ledger.statement("a1", "EUR", START - timedelta(days=1), end,
                                         known_at=first.known_at)
        assert reprint.lines == [*first.lines, *rest.lines]


async def test_bad_input_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    async with CardLedger.open(tmp_path / "l.db", clock=clock) as ledger:
        for snapshot in one_hold(START):
            await ledger.record(snapshot)
        day = timedelta(days=1)
        with pytest.raises(NotFoundError):
            await ledger.statement("nobody", "EUR", START, START + day)
        for bad in [{"start": START + day, "end": START},
                    {"start": START.replace(tzinfo=None), "end": START + day}]:
            with pytest.raises(InvalidInputError):
                await ledger.statement("a1", "EUR", **bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="currency"):
            await ledger.statement("a1", "ABC", START, START + day)
        with pytest.raises(InvalidInputError, match="limit"):
            await ledger.statement("a1", "EUR", START, START + day, limit=0)
        await ledger.wait_until_visible()
        clock.advance(timedelta(hours=1))
        await ledger.record_deposit("a1", Decimal(5), "EUR", "eip155:1:0x5")
        page = await ledger.statement("a1", "EUR", START - day, START + day, limit=1)
        assert page.next_cursor is not None
        for cursor in ("", "x" * 3000, page.next_cursor[:-2], page.next_cursor[:-1] + "A",
                       "AAAA" + page.next_cursor[4:]):
            with pytest.raises(InvalidInputError, match="cursor"):
                await ledger.statement("a1", "EUR", START - day, START + day, cursor=cursor)
        with pytest.raises(InvalidInputError, match="another statement"):
            await ledger.statement("a1", "EUR", START - 2 * day, START + day,
                                   cursor=page.next_cursor)


def test_the_command_line_streams_a_statement_as_csv_json_and_a_table(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    async def seed() -> None:
        clock = ManualClock(START)
        async with CardLedger.open(tmp_path / "l.db", clock=clock) as ledger:
            for snapshot in one_hold(START, "12.50"):
                await ledger.record(snapshot)
            await ledger.wait_until_visible()
            for n in range(1_500):  # more than a page
                clock.advance(timedelta(seconds=30))
                await ledger.record_deposit("a1", Decimal(1), "EUR", f"eip155:1:0x{n:x}")

    anyio.run(seed)
    cli = [str(Path(sys.executable).parent / "cardledger"), "statement", "--db",
           str(tmp_path / "l.db"), "--account", "a1", "--currency", "EUR",
           "--from", "2026-02-01", "--to", "2026-03-15"]
    rows = subprocess.run([*cli, "--format", "csv"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert rows[1].split(",")[2] == "opening" and rows[-1].split(",")[2] == "closing"
    assert len(rows) == 1 + 1 + 1_501 + 1
    closing = [Decimal(v) for v in rows[-1].split(",")[-3:]]
    assert closing == [1500, Decimal("12.5"), Decimal("1487.5")]
    lines = [json.loads(x) for x in subprocess.run(
        [*cli, "--format", "json"], capture_output=True, text=True, check=True).stdout.splitlines()]
    assert Decimal(lines[0]["opening"]["posted"]) == 0
    assert Decimal(lines[-1]["closing"]["available"]) == Decimal("1487.50")
    assert len(lines) == 1_503
    table = subprocess.run([*cli, "--format", "table"], capture_output=True, text=True,
                           check=True).stdout
    assert "closing" in table and "hold placed" in table
    bad = subprocess.run([*cli[:-2], "--to", "2026-01-01"], capture_output=True, text=True)
    assert bad.returncode == 2 and "after end" in bad.stderr
