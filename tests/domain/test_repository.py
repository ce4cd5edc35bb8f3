"""The one load-decide-append loop (``ledger.repository.decide_and_append``), on a real SQLite
file: a decision is appended at the version it was made on; when another writer moved the
stream meanwhile, it is made again on the new state; a wrong guess costs one read; a stream
that keeps moving ends in a typed conflict, with nothing written by the loop."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import NewEvent, open_store
from ledger.errors import WrongExpectedVersionError
from ledger.events import FundsDeposited
from ledger.repository import MAX_ATTEMPTS, UNSEEN, decide_and_append, load

pytestmark = pytest.mark.anyio
STREAM = "account-a1"
AT = datetime(2026, 3, 1, tzinfo=UTC)


def deposit(n: int) -> NewEvent[FundsDeposited]:
    return NewEvent(payload=FundsDeposited(account_id="a1", amount=Decimal(n), currency="EUR",
                                           chain_transaction=f"eip155:1:0x{n:064x}", at=AT))


async def test_a_decision_made_on_a_moved_stream_is_made_again(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        await store.append(STREAM, [deposit(1)])
        seen: list[int | None] = []

        async def decide(state: Any) -> list[NewEvent[Any]]:
            seen.append((await load(store, STREAM)).version)
            if len(seen) == 1:  # another writer lands between our read and our append
                await store.append(STREAM, [deposit(2)])
            return [deposit(3)]

        decided = await decide_and_append(store, STREAM, decide)
        assert seen == [0, 1]  # versions count from 0
        assert decided.loaded.version == 1 and decided.result is not None
        assert [e.version for e in await store.read_stream(STREAM)] == [0, 1, 2]


async def test_a_wrong_guess_is_checked_by_the_append_and_read_again(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        await store.append(STREAM, [deposit(1)])
        calls: list[object] = []

        def decide(state: Any) -> list[NewEvent[Any]]:
            calls.append(state)
            return [deposit(2)]

        decided = await decide_and_append(store, STREAM, decide, guess=UNSEEN)
        assert len(calls) == 2  # on the guess (a new stream), then on the log as read
        assert decided.loaded.version == 0


async def test_nothing_decided_appends_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        decided = await decide_and_append(store, STREAM, lambda state: [])
        assert decided.result is None and await store.head() == 0


async def test_a_stream_that_never_stops_moving_ends_in_a_conflict(tmp_path: Path) -> None:
    async with open_store(tmp_path / "ledger.db") as store:
        calls = 0

        async def decide(state: Any) -> list[NewEvent[Any]]:
            nonlocal calls
            calls += 1
            await store.append(STREAM, [deposit(1000 + calls)])  # always one step ahead
            return [deposit(calls)]

        with pytest.raises(WrongExpectedVersionError):
            await decide_and_append(store, STREAM, decide)
        assert calls == MAX_ATTEMPTS
        assert await store.head() == MAX_ATTEMPTS  # only the other writer's events
