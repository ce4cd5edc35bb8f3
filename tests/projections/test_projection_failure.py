"""A projection commit that raises an unexpected error (a bug) must not wedge the read side:
the runner names it in one typed line and writes nothing, ``follow`` retries with a growing
backoff and says why, the log keeps recording, and the CLI exits 4 with one line.

The bug is injected at the one place a bug would be: deriving an account's rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from adapters.cli.main import main
from adapters.errors import EXIT_BUG
from ledger import NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import FundsDeposited
from projections import ProjectionFailedError, ProjectionRunner
from projections.live import LiveAccount
from tests.support.known_history import day

pytestmark = pytest.mark.anyio


def _deposit(n: int) -> FundsDeposited:
    return FundsDeposited(account_id="a1", amount=Decimal(n), currency="EUR",
                          chain_transaction=f"eip155:324:0x{n:04x}", at=day(n))


def _break_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    def refresh(self: LiveAccount, *args: object) -> None:
        raise ArithmeticError("injected")

    monkeypatch.setattr(LiveAccount, "refresh", refresh)


async def test_a_failing_commit_is_one_typed_line_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_store(tmp_path / "l.db") as store:
        await store.append(stream_for(_deposit(1)), [NewEvent(payload=_deposit(1))])
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
            await store.append(stream_for(_deposit(2)), [NewEvent(payload=_deposit(2))])
            with monkeypatch.context() as patched:
                _break_refresh(patched)
                with pytest.raises(ProjectionFailedError) as failed:
                    await runner.catch_up()
            assert "log positions 2-2 (ArithmeticError: injected" in str(failed.value)
            assert "\n" not in str(failed.value)
            assert await runner.backend.checkpoint() == 1  # nothing of the span written
            assert await runner.catch_up() == 2  # the bug gone, everything applies
            (balance,) = (await runner.stored_view("a1")).balances  # type: ignore[union-attr]
            assert balance.deposits == 3


async def test_follow_retries_with_backoff_and_says_why_while_the_log_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_store(tmp_path / "l.db", poll_interval=0.01) as store, \
            ProjectionRunner(store) as runner:
        with monkeypatch.context() as patched:
            _break_refresh(patched)
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: runner.follow(retry_after=0.01, retry_cap=0.04))
                for n in range(1, 4):  # the log records all the same
                    await store.append(stream_for(_deposit(n)), [NewEvent(payload=_deposit(n))])
                while "3 time(s)" not in (runner.failure or ""):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                assert "next try in 0.04 s" in (runner.failure or "")
                patched.undo()  # the bug fixed: the next try applies everything
                with anyio.fail_after(5):
                    await runner.wait_for(3)
                group.cancel_scope.cancel()
        assert runner.failure is None and await store.head() == 3


def test_the_cli_exits_4_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "l.db"

    async def record() -> None:
        async with open_store(db) as store:
            await store.append(stream_for(_deposit(1)), [NewEvent(payload=_deposit(1))])

    anyio.run(record)
    _break_refresh(monkeypatch)
    result = CliRunner().invoke(main, ["balances", "--db", str(db), "--json"])
    assert result.exit_code == EXIT_BUG, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the projections cannot apply log positions 1-1")
