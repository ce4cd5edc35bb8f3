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
from ledger.repository import (
    MAX_ATTEMPTS,
    UNSEEN,
    decide_and_append,
    decide_and_append_many,
    load,
)

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


async def test_a_decision_over_two_streams_is_appended_whole_or_made_again(
        tmp_path: Path) -> None:
    """A transfer-like decision writes two accounts' streams at once; when the second moved
    between the read and the append, nothing of the first was written, and the decision is
    made again on both new states."""
    other = "account-a2"
    async with open_store(tmp_path / "ledger.db") as store:
        await store.append(STREAM, [deposit(1)])
        await store.append(other, [deposit(2)])
        attempts: list[dict[str, Any]] = []

        async def decide(states: dict[str, Any]) -> dict[str, list[NewEvent[Any]]]:
            attempts.append(states)
            if len(attempts) == 1:
                await store.append(other, [deposit(3)])  # another writer moves the second
            return {STREAM: [deposit(10 + len(attempts))], other: [deposit(20 + len(attempts))]}

        decided = await decide_and_append_many(store, [STREAM, other], decide)
        assert len(attempts) == 2
        assert [r.stream for r in decided.results] == [STREAM, other]
        assert await _amounts(store, STREAM) == [1, 12]  # the first attempt wrote nothing
        assert await _amounts(store, other) == [2, 3, 22]
        nothing = await decide_and_append_many(store, [STREAM], lambda states: {})
        assert nothing.results == [] and nothing.loaded[STREAM].version == 1


async def _amounts(store: Any, stream: str) -> list[Decimal]:
    return [e.payload.amount for e in await store.read_stream(stream)]
