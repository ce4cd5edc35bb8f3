"""What the front door refuses, and how: every bad argument is a typed ``LedgerError`` of the
documented kind, naming what is wrong, and writes nothing (the defects [front] listed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from adapters import (
    AccountSnapshot,
    AuthorisationSnapshot,
    CardLedger,
    CardSnapshot,
    InsufficientFundsError,
    InvalidInputError,
    NotFoundError,
    TransactionSnapshot,
)
from adapters.errors import EXIT_BAD_INPUT
from adapters.processor.outbox import Outbox
from ledger.money import MINOR_UNITS
from ledger.testing import ADDRESS
from tests.support.cli import cli
from tests.support.sandbox import client_for, sandbox

pytestmark = pytest.mark.anyio
T0 = datetime.now(UTC) - timedelta(hours=2)
WALLET = "eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb"


def account(account_id: str = "a1", currency: str = "EUR") -> AccountSnapshot:
    return AccountSnapshot(id=account_id, customer_id="c1", status="active",
                           currencies=[currency], created_at=T0, updated_at=T0)


@pytest.mark.parametrize(("amount", "names"), [
    (Decimal("1E+40"), "below 1,000,000,000,000"),
    (Decimal("NaN"), "not a finite Decimal"),
    (Decimal("Infinity"), "not a finite Decimal"),
    (Decimal("-1"), "not above 0"),
    (Decimal("0"), "not above 0"),
    (Decimal("10.001"), "more decimal places than EUR has (2)"),
    (10.5, "not a finite Decimal"),
    ("10", "not a finite Decimal"),
])
async def test_an_amount_outside_the_currency_rules_is_refused_naming_it(
        tmp_path: Path, amount: Any, names: str) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        await ledger.record(account())
        head = await ledger.store.head()
        for record in (ledger.record_deposit, ledger.record_withdrawal):
            with pytest.raises(InvalidInputError, match="amount") as refused:
                await record("a1", amount, "EUR", "eip155:1:0x1")
            assert names in str(refused.value)
        assert await ledger.store.head() == head


@pytest.mark.parametrize(("currency", "given", "written"), [
    ("EUR", "100", "100.00"), ("EUR", "1E+2", "100.00"), ("EUR", "12.5", "12.50"),
    ("JPY", "100", "100"), ("BHD", "1.5", "1.500"),
])
async def test_amounts_are_written_in_the_currency_canonical_form(
        tmp_path: Path, currency: str, given: str, written: str) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        await ledger.record(account(currency=currency))
        recorded = await ledger.record_deposit("a1", Decimal(given), currency, "eip155:1:0x1")
        assert str(recorded.event.amount) == written
        (balance,) = await ledger.balances("a1")
        assert str(balance.available) == written


async def test_more_places_than_the_currency_has_is_refused_for_each_currency(
        tmp_path: Path) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        for currency in ("JPY", "BHD"):
            await ledger.record(account(f"a-{currency}", currency))
            too_fine = Decimal(1).scaleb(-MINOR_UNITS[currency] - 1)
            with pytest.raises(InvalidInputError, match=f"than {currency} has"):
                await ledger.record_deposit(f"a-{currency}", 1 + too_fine, currency,
                                            "eip155:1:0x1")


async def test_a_naive_or_far_off_moment_is_refused_naming_the_argument(tmp_path: Path) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        await ledger.record(account())
        for bad, says in ((datetime(2026, 1, 1), "no timezone"),
                          (datetime(9999, 1, 1, tzinfo=UTC), "outside"),
                          ("2026-01-01", "not a datetime")):
            for ask in (ledger.balances, ledger.holds, ledger.accounts, ledger.anomalies):
                with pytest.raises(InvalidInputError, match=f"as_of: .*{says}"):
                    await ask(as_of=bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match=f"known_at: .*{says}"):
                await ledger.balances("a1", known_at=bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match=f"as_of: .*{says}"):
                await ledger.journal("a1", as_of=bad)  # type: ignore[arg-type]


async def test_an_unknown_account_or_card_is_not_found_and_the_error_says_what_to_do(
        tmp_path: Path) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        for record in (ledger.record_deposit, ledger.record_withdrawal):
            with pytest.raises(NotFoundError, match=r"no account 'nobody'.*webhook"):
                await record("nobody", Decimal("1"), "EUR", "eip155:1:0x1")
        with pytest.raises(NotFoundError, match="no card 'nocard'"):
            await ledger.commands.card_action("nocard", "terminate")
        with pytest.raises(InvalidInputError, match="unknown card action 'suspend'"):
            await ledger.commands.card_action("nocard", "suspend")  # type: ignore[arg-type]
        assert await ledger.store.head() == 0


async def test_card_commands_without_a_processor_are_refused_not_left_waiting(
        tmp_path: Path) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        for command in (ledger.freeze_card, ledger.unfreeze_card, ledger.terminate_card):
            with pytest.raises(InvalidInputError, match="no processor"):
                await command("c1")
        assert await ledger.store.head() == 0
        assert ledger.problems() == []


async def test_a_withdrawal_beyond_the_available_balance_is_refused_unless_allowed(
        tmp_path: Path) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        await ledger.record(account())
        await ledger.record(AuthorisationSnapshot(
            id="h1", account_id="a1", card_id="c1", status="pending", amount="30.00",
            currency="EUR", merchant_amount="30.00", merchant_currency="EUR",
            created_at=T0, updated_at=T0))
        await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
        head = await ledger.store.head()
        with pytest.raises(InsufficientFundsError, match=r"only 70\.00 EUR is available"):
            await ledger.record_withdrawal("a1", Decimal("70.01"), "EUR", "eip155:1:0x2")
        assert await ledger.store.head() == head  # the held 30 counts: nothing written
        first = await ledger.record_withdrawal("a1", Decimal("70"), "EUR", "eip155:1:0x2")
        again = await ledger.record_withdrawal("a1", Decimal("70"), "EUR", "eip155:1:0x2")
        assert again.duplicate and again.position == first.position  # a retry is no overdraft
        over = await ledger.record_withdrawal("a1", Decimal("5"), "EUR", "eip155:1:0x3",
                                              allow_overdraft=True)
        assert not over.duplicate
        (balance,) = await ledger.balances("a1")
        assert balance.available == Decimal("-5.00")


def test_the_cli_refuses_an_overdraft_unless_asked(tmp_path: Path) -> None:
    db = tmp_path / "l.db"

    async def seed() -> None:
        async with CardLedger.open(db) as ledger:
            await ledger.record(account())
    anyio.run(seed)
    refused = cli("withdraw", "--db", str(db), "--account", "a1", "--amount", "1.00",
                  "--chain-transaction", "eip155:1:0x9")
    assert refused.returncode == EXIT_BAD_INPUT and "only 0.00 EUR is available" in refused.stderr
    allowed = cli("withdraw", "--db", str(db), "--account", "a1", "--amount", "1.00",
                  "--chain-transaction", "eip155:1:0x9", "--allow-overdraft")
    assert allowed.returncode == 0, allowed.stderr
    assert "FundsWithdrawn 1.00 EUR from a1" in allowed.stdout


def test_a_cli_card_command_without_a_processor_says_it_waits_and_is_listed(
        tmp_path: Path) -> None:
    db = tmp_path / "l.db"

    async def seed() -> None:
        async with CardLedger.open(db) as ledger:
            await ledger.record(account())
            await ledger.record(CardSnapshot(id="c1", account_id="a1", type="virtual",
                                             status="active", created_at=T0, updated_at=T0))
    anyio.run(seed)
    asked = cli("card", "deactivate", "--db", str(db), "c1")
    assert asked.returncode == 0, asked.stderr
    assert "waits in the outbox (cardledger outbox list)" in asked.stdout
    listed = cli("outbox", "list", "--db", str(db), "--json")
    assert listed.returncode == 0 and "CardDeactivationRequested" in listed.stdout


async def test_requests_to_the_processor_are_typed_and_need_the_entity_and_a_processor(
        tmp_path: Path) -> None:
    box = sandbox()
    async with CardLedger.open(tmp_path / "none.db") as alone:
        with pytest.raises(InvalidInputError, match="no processor"):
            await alone.register_customer("ext-1", WALLET)
    async with client_for(box) as client, \
            CardLedger.open(tmp_path / "l.db", processor=client) as ledger:
        asked = await ledger.register_customer("ext-1", WALLET)
        assert asked.external_id == "ext-1"
        with pytest.raises(NotFoundError, match="no customer 'nobody'"):
            await ledger.open_account("nobody", "EUR")
        with pytest.raises(NotFoundError, match="no account 'nobody'"):
            await ledger.request_card("nobody", ADDRESS)
        (pending,) = await Outbox(ledger.store, None).pending()  # recorded, to be sent
        assert pending.payload == asked


@pytest.mark.parametrize(("field", "value", "named"), [
    ("status", "bogus", "status"), ("currencies", None, "currencies"),
    ("created_at", datetime(2026, 1, 1), "createdAt"),
    ("created_at", "2026-01-01", "createdAt"), ("id", 5, "id"),
])
async def test_a_snapshot_outside_its_schema_is_refused_naming_the_field(
        tmp_path: Path, field: str, value: Any, named: str) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        with pytest.raises(InvalidInputError, match=f"^{named}: "):
            await ledger.record(msgspec.structs.replace(account(), **{field: value}))
        with pytest.raises(InvalidInputError, match=r"^type: "):
            await ledger.record(CardSnapshot(id="c1", account_id="a1", type="plastic",  # type: ignore[arg-type]
                                             status="active", created_at=T0, updated_at=T0))
        with pytest.raises(InvalidInputError, match=r"^status: "):
            await ledger.record(TransactionSnapshot(
                id="t1", account_id="a1", card_id="c1", direction="debit", status="bogus",  # type: ignore[arg-type]
                amount="1.00", currency="EUR", created_at=T0, updated_at=T0))
        assert await ledger.store.head() == 0
