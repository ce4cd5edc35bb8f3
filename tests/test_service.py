"""The front door (``adapters.CardLedger``) as a service uses it: on a real SQLite file (and a
real PostgreSQL server where a backend matters), through its public names only."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from adapters import (
    AccountSnapshot,
    AuthorisationSnapshot,
    CardLedger,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StoreUnavailableError,
)
from adapters.testing.servers import free_port

pytestmark = pytest.mark.anyio
T0 = datetime.now(UTC) - timedelta(hours=2)


def account(at: datetime = T0) -> AccountSnapshot:
    return AccountSnapshot(id="a1", customer_id="c1", status="active", currencies=["EUR"],
                           created_at=at, updated_at=at)


def hold(hold_id: str, amount: str, at: datetime = T0) -> AuthorisationSnapshot:
    return AuthorisationSnapshot(id=hold_id, account_id="a1", card_id="card1",
                                 status="pending", amount=amount, currency="EUR",
                                 merchant_amount=amount, merchant_currency="EUR",
                                 created_at=at, updated_at=at)


def test_importing_the_front_door_imports_neither_the_sandbox_nor_the_cli() -> None:
    code = ("import sys, adapters; print(sorted(m for m in sys.modules "
            "if m.startswith(('adapters.sandbox', 'adapters.cli', 'adapters.testing'))))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"


async def test_balances_holds_and_known_at_through_the_front_door(tmp_path: Path) -> None:
    async with CardLedger.open(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        await ledger.record(account())
        deposited = await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
        again = await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
        assert again.duplicate and again.position == deposited.position
        before_hold = datetime.now(UTC)
        position = await ledger.record(hold("h1", "30.00"))
        assert position is not None and await ledger.record(hold("h1", "30.00")) is None
        (balance,) = await ledger.balances("a1")
        assert (balance.posted, balance.held, balance.available) == (
            Decimal("100"), Decimal("30.00"), Decimal("70.00"))
        (known,) = await ledger.balances("a1", known_at=before_hold)
        assert known.held == 0  # the hold was not recorded yet
        assert [h.authorisation_id for h in await ledger.holds()] == ["h1"]
        await ledger.wait_until_visible(position)
        assert ledger.runner.position >= position


async def test_every_error_is_one_a_caller_can_act_on(tmp_path: Path) -> None:
    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        await ledger.record(account())
        head = await ledger.store.head()
        with pytest.raises(InvalidInputError):
            await ledger.record(hold("h 1", "1.00"))  # not an id
        with pytest.raises(InvalidInputError):
            await ledger.record_deposit("a1", Decimal("-1"), "EUR", "eip155:1:0x2")
        assert await ledger.store.head() == head  # nothing written
        await ledger.record_deposit("a1", Decimal("5"), "EUR", "eip155:1:0x3")
        with pytest.raises(ConflictError):
            await ledger.record_deposit("a1", Decimal("6"), "EUR", "eip155:1:0x3")
        with pytest.raises(NotFoundError):
            await ledger.balances("nobody")
    with pytest.raises(StoreUnavailableError):
        async with CardLedger.open(f"postgresql://127.0.0.1:{free_port()}/x"):
            pass


async def test_the_journal_through_the_front_door_balances_and_ties_to_the_balances(
        tmp_path: Path) -> None:
    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        await ledger.record(account())
        await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
        await ledger.record(hold("h1", "30.00", T0 + timedelta(minutes=1)))
        entries = await ledger.journal("a1")
        assert entries and all(sum(p.amount for p in e.postings) == 0 for e in entries)
        totals: dict[str, Decimal] = {}
        for entry in entries:
            for p in entry.postings:
                totals[p.ledger_account] = totals.get(p.ledger_account, Decimal(0)) + p.amount
        (balance,) = await ledger.balances("a1")
        assert totals["held"] == balance.held == Decimal("30.00")
        assert totals["available"] == balance.available == Decimal("70.00")
        assert await ledger.journal("a1", as_of=T0 - timedelta(days=1)) == []
        with pytest.raises(NotFoundError):
            await ledger.journal("nobody")


async def test_changes_stream_history_then_live(tmp_path: Path) -> None:
    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        await ledger.record(account())
        first = await ledger.record(hold("h1", "1.00"))
        seen: list[tuple[int, str]] = []
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                async for change in ledger.changes():
                    seen.append((change.position, change.type))
                    if change.type == "HoldPlaced" and len(seen) > 2:
                        group.cancel_scope.cancel()

            group.start_soon(watch)
            await ledger.record(hold("h2", "2.00", T0 + timedelta(minutes=1)))
        positions = [p for p, _ in seen]
        assert positions == sorted(positions) and first in positions
        assert [t for _, t in seen].count("HoldPlaced") == 2


async def test_the_background_work_has_one_leader_per_task(tmp_path: Path) -> None:
    url = str(tmp_path / "l.db")
    async with CardLedger.open(url) as first, CardLedger.open(url) as second, \
            anyio.create_task_group() as group:
        group.start_soon(first.run_background)
        await anyio.sleep(0.3)
        group.start_soon(second.run_background)
        position = await second.record(account())
        assert position is not None
        await second.wait_until_visible(position)  # projected by the leader, `first`
        assert first.runner.leading and not second.runner.leading
        assert first.problems() == [] and second.problems() == []
        group.cancel_scope.cancel()


async def test_the_webhook_app_mounts_and_answers_health(tmp_path: Path) -> None:
    async with CardLedger.open(str(tmp_path / "l.db")) as ledger:
        app = ledger.webhook_app(secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://service") as http:
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["position"] == 0
            unsigned = await http.post("/webhooks", content=b"{}")
            assert unsigned.status_code == 401 and unsigned.json()["error"] == "not_authorised"
