"""One clock for the whole ledger: a service's test opens it with a ``ManualClock``, moves
time itself, and sees what that time means (holds expire, nothing is late) without sleeping;
and nothing in the ledger reads the wall clock behind its back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
import pytest

from adapters import (
    CardLedger,
    ManualClock,
)
from adapters.sandbox.clock import SandboxClock
from ledger.events import HoldExpired
from tests.support.histories import one_hold
from tests.support.sandbox import active_card, client_for, sandbox

pytestmark = pytest.mark.anyio
START = datetime(2020, 3, 2, 9, 0, tzinfo=UTC)  # years before the wall clock


async def test_moving_a_fake_clock_31_days_expires_a_hold_without_sleeping(
        tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with CardLedger.open(tmp_path / "l.db", clock=clock) as ledger:
        for snapshot in one_hold(START):
            await ledger.record(snapshot)
        await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0x1")
        ((balance,), (hold,)) = await ledger.balances("a1"), await ledger.holds("a1")
        assert (balance.held, balance.available) == (Decimal("40.00"), Decimal("60.00"))
        clock.advance(timedelta(days=31))
        (balance,) = await ledger.balances("a1")  # as of the ledger's now, not the wall's
        assert (balance.held, balance.available) == (Decimal(0), Decimal("100.00"))
        async with anyio.create_task_group() as group:  # the sweeper, on the same clock
            group.start_soon(lambda: ledger.run_background(sweep_every=0.01))
            with anyio.fail_after(10):
                async for change in ledger.changes():
                    if change.type == "HoldExpired":
                        break
            group.cancel_scope.cancel()
        (expired,) = [e async for e in ledger.store.read_all(types=["HoldExpired"])]
        assert isinstance(expired.payload, HoldExpired)
        assert expired.payload.at == hold.expires_at
        assert await ledger.expire_holds() == 0  # once
        await ledger.wait_until_visible()
        assert await ledger.balances("a1") == [balance]


def moments(value: object) -> Iterator[datetime]:
    """Every datetime inside a stored event (its payload and metadata, at any depth)."""
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            yield from moments(getattr(value, field))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from moments(item)


async def test_nothing_reads_the_wall_clock_behind_the_ledger_clock(tmp_path: Path) -> None:
    """The ledger and its processor live in March 2020. Every time the log holds (record
    times, commands', outcomes', the processor's) and every age the ledger measures must be
    in that March; one read of the wall clock (2026 or later) would show."""
    clock, box = ManualClock(START), sandbox(clock=SandboxClock(START))
    async with client_for(box) as client, \
            CardLedger.open(tmp_path / "l.db", processor=client, clock=clock) as ledger:
        _, card_id = await active_card(client)
        await ledger.pull()
        await ledger.wait_until_visible()
        await ledger.freeze_card(card_id)
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: ledger.run_background(
                sweep_every=0.01, dispatch_every=0.01, watch_every=0.01, pull_every=0.01))
            with anyio.fail_after(10):  # each round moves the clock: polling is the point
                while not [e async for e in ledger.store.read_all(
                        types=["RequestAccepted"])]:
                    clock.advance(timedelta(minutes=1))
                    await anyio.sleep(0.01)
            await anyio.sleep(0.1)  # a few rounds of every task
            group.cancel_scope.cancel()
        seen = [m async for e in ledger.store.read_all()
                for m in [e.recorded_at, *moments(e.payload), *moments(e.metadata)]]
        assert seen and all(START - timedelta(days=1) <= m <= clock() for m in seen), \
            sorted(set(seen))[-3:]
        assert ledger.problems() == []  # no age measured against the wall clock
        pulled = ledger.metrics.registry.get_sample_value(
            "cardledger_pull_last_success_timestamp_seconds")
        assert pulled == pytest.approx(clock().timestamp(), abs=600)
