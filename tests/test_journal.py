"""The double-entry journal: every entry balances, the trial balance over any span is zero,
the running totals are the balance model's figures at the end of every day, and Beancount,
summing our entries itself, agrees with every balance we assert (on both backends)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from beancount import loader
from hypothesis import HealthCheck, assume, given, settings

from adapters.cli.beancount import document
from adapters.cli.journal_csv import csv_lines
from adapters.service.card_ledger import CardLedger
from ledger.clock import ManualClock
from ledger.money import EXACT
from ledger.observations import AnySnapshot
from ledger.testing import FundedProgramme, TransferRequest, funded_programmes
from projections.journal import SETTLEMENT, Day, customer_ledger, days
from tests.support.postgres_cluster import new_database

CHECKED = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


async def _journal(url: str, programme: FundedProgramme) -> list[tuple[str, list[Day]]]:
    """Record the programme as a service would (reports and transfers in time order), then
    each account's days."""
    moments: list[tuple[datetime, AnySnapshot | TransferRequest]] = [
        (s.updated_at, s) for s in programme.snapshots]
    moments += [(t.at, t) for t in programme.transfers if t.at is not None]
    moments.sort(key=lambda pair: pair[0])
    clock = ManualClock(moments[0][0])
    async with CardLedger.open(url, clock=clock) as ledger:
        for at, item in moments:
            clock.set(at)
            if isinstance(item, TransferRequest):
                record = (ledger.commands.record_deposit if item.kind == "deposit"
                          else ledger.commands.record_withdrawal)
                await record(item.account_id, item.amount, item.currency,
                             item.chain_transaction)
            else:
                await ledger.record(item)
        clock.advance(timedelta(days=40))
        await ledger.expire_holds()
        await ledger.wait_until_visible()
        found = []
        for account_id in ledger.runner.account_ids():
            book, times = await ledger.runner.history(account_id)
            found.append((account_id, list(days(book, sorted(times)))))
    return found


def _check(accounts: list[tuple[str, list[Day]]]) -> None:
    trial: Counter[str] = Counter()
    for account_id, account_days in accounts:
        running: dict[tuple[str, str], Decimal] = {}
        for day in account_days:
            for entry in day.entries:
                per_currency: dict[str, Decimal] = {}
                for line in entry.lines:
                    per_currency[line.currency] = EXACT.add(
                        per_currency.get(line.currency, Decimal(0)), line.amount)
                    key = (line.ledger_account, line.currency)
                    running[key] = EXACT.add(running.get(key, Decimal(0)), line.amount)
                    trial[line.currency] += line.amount  # type: ignore[assignment]
                assert all(v == 0 for v in per_currency.values()), entry
            for balance in day.closing:
                for part, figure in (("Available", balance.available), ("Held", balance.held)):
                    key = (customer_ledger(account_id, part), balance.currency)
                    assert running.get(key, Decimal(0)) == -figure, (day.day, part)
    assert all(v == 0 for v in trial.values()), trial
    text = "".join(document(accounts))
    _, errors, _ = loader.load_string(text)
    assert errors == [], (errors[:3], text[:2000])


@CHECKED
@given(programme=funded_programmes())
def test_the_journal_balances_and_beancount_agrees_on_sqlite(programme: FundedProgramme) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _check(anyio.run(_journal, str(Path(directory) / "l.db"), programme))


@CHECKED
@given(programme=funded_programmes())
def test_the_journal_balances_and_beancount_agrees_on_postgresql(
        postgres_server: str, programme: FundedProgramme) -> None:
    _check(anyio.run(_journal, new_database(postgres_server), programme))


@CHECKED
@given(programme=funded_programmes(max_accounts=1))
def test_beancount_refuses_a_journal_whose_balance_we_got_wrong(
        programme: FundedProgramme) -> None:
    """The check can fail: one assertion a unit off, and Beancount says so (a cent can be
    within its tolerance, which it infers from how many places the amount is written with)."""
    with tempfile.TemporaryDirectory() as directory:
        accounts = anyio.run(_journal, str(Path(directory) / "l.db"), programme)
    text = "".join(document(accounts))
    marker = " balance Liabilities:Customers:"
    assume(marker in text)  # an account with activity
    line_start = text.index(marker)
    end = text.index("\n", line_start)
    amount, currency = text[line_start:end].rsplit(" ", 2)[-2:]
    wrong = text[:line_start] + text[line_start:end].replace(
        f" {amount} {currency}", f" {Decimal(amount) - 1} {currency}") + text[end:]
    _, errors, _ = loader.load_string(wrong)
    assert any("Balance failed" in str(e.message) for e in errors)


def test_the_csv_journal_has_one_row_per_posting_and_each_entry_sums_to_zero() -> None:
    accounts = anyio.run(_one_programme)
    rows = [line.split(",") for text in csv_lines(accounts) for line in text.splitlines()]
    assert rows[0][:6] == ["entry", "time", "account_id", "ledger_account", "currency",
                           "amount"]
    sums: dict[str, Decimal] = {}
    for row in rows[1:]:
        sums[row[0]] = sums.get(row[0], Decimal(0)) + Decimal(row[5])
    assert sums and all(v == 0 for v in sums.values())
    assert any(row[3] == SETTLEMENT for row in rows[1:])


async def _one_programme() -> list[tuple[str, list[Day]]]:
    from datetime import datetime

    from tests.support.histories import one_hold

    at = datetime(2026, 3, 1, tzinfo=UTC)
    clock = ManualClock(at)
    with tempfile.TemporaryDirectory() as directory:
        async with CardLedger.open(Path(directory) / "l.db", clock=clock) as ledger:
            for snapshot in one_hold(at):
                await ledger.record(snapshot)
            await ledger.wait_until_visible()
            await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
            await ledger.wait_until_visible()
            book, times = await ledger.runner.history("a1")
            return [("a1", list(days(book, sorted(times))))]


def test_bean_check_accepts_the_export_of_a_simulated_programme(tmp_path: Path) -> None:
    from adapters.simulation import seeded, simulate

    assert anyio.run(simulate, seeded(3, 300), tmp_path).ok
    cli = Path(sys.executable).parent
    out = tmp_path / "books.beancount"
    subprocess.run([str(cli / "cardledger"), "export", "--db", str(tmp_path / "ledger.db"),
                    "--format", "beancount", "--output", str(out)], check=True)
    checked = subprocess.run([str(cli / "bean-check"), str(out)], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert out.read_text().count(" balance ") > 10


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
