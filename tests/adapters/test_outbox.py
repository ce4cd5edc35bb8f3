"""The outbox's retry rules, against the sandbox's scripted answers: a transient failure is
sent again with the same key after its backoff; only a definite refusal is recorded."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.processor.outbox import RETRY_CAP, Outbox
from adapters.sandbox import Sandbox
from adapters.service.commands import Commands
from ledger import EventStore, open_store
from ledger.clock import ManualClock
from ledger.errors import NotFoundError
from ledger.events import RequestAccepted, RequestRefused
from tests.support.sandbox import client_for, sandbox

pytestmark = pytest.mark.anyio
WALLET = "eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb"


@asynccontextmanager
async def outbox_on(path: Path, box: Sandbox, clock: ManualClock,
                    ) -> AsyncIterator[tuple[EventStore, Outbox]]:
    # A short client deadline: the client's own retries end quickly, and the outbox's
    # backoff (on the test's clock) takes over.
    async with open_store(path) as store, client_for(box, deadline=0.3, base_delay=0.01,
                                                     max_delay=0.05) as client:
        yield store, Outbox(store, client, clock=clock, rng=random.Random(1))


async def outcomes(store: EventStore) -> list[object]:
    return [e.payload async for e in store.read_all(types=["RequestAccepted",
                                                          "RequestRefused"])]


@pytest.mark.parametrize(("status", "times", "retry_after"), [
    (429, 1, "5"), (409, 4, None), (401, 2, None), (503, 40, None), (500, 40, None)])
async def test_a_transient_failure_is_sent_again_with_the_same_key_and_never_refused(
        tmp_path: Path, status: int, times: int, retry_after: str | None) -> None:
    box, clock = sandbox(), ManualClock(datetime.now(UTC))
    async with outbox_on(tmp_path / "l.db", box, clock) as (store, outbox):
        request = await Commands(store).register_customer("ext-1", WALLET)
        box.script.add(status, times=times, retry_after=retry_after)
        assert await outbox.dispatch() == 0
        assert await outcomes(store) == [] and box.world.customers == {}
        waiting = outbox.backoff[request.request_id]
        assert waiting.attempts == 1 and str(status) in waiting.last_error
        if retry_after is not None:
            assert waiting.due >= clock() + timedelta(seconds=float(retry_after))
        assert await outbox.dispatch() == 0  # not due yet: nothing is sent
        box.script.clear()  # the processor recovers
        clock.set(waiting.due)
        assert await outbox.dispatch() == 1
        (outcome,) = await outcomes(store)
        assert isinstance(outcome, RequestAccepted) and outcome.remote_id is not None
        assert list(box.world.customers) == [outcome.remote_id]  # created once
        assert outbox.backoff == {} and await outbox.pending() == []


async def test_the_backoff_doubles_with_jitter_up_to_its_cap(tmp_path: Path) -> None:
    box, clock = sandbox(), ManualClock(datetime.now(UTC))
    async with outbox_on(tmp_path / "l.db", box, clock) as (store, outbox):
        request = await Commands(store).register_customer("ext-1", WALLET)
        waits = []
        for _ in range(12):
            box.script.add(503, times=100)  # more than the client's own retries use
            await outbox.dispatch()
            box.script.clear()
            waiting = outbox.backoff[request.request_id]
            waits.append((waiting.due - clock()).total_seconds())
            clock.set(waiting.due)
        assert outbox.backoff[request.request_id].attempts == 12
        assert all(2 ** n * 0.5 <= w <= 2 ** n for n, w in enumerate(waits[:8]))
        assert max(waits) <= RETRY_CAP and waits[-1] >= RETRY_CAP / 2
        assert await outcomes(store) == [] and box.world.customers == {}


async def test_a_definite_refusal_is_recorded_listed_and_can_be_retried_once(
        tmp_path: Path) -> None:
    box, clock = sandbox(), ManualClock(datetime.now(UTC))
    async with outbox_on(tmp_path / "l.db", box, clock) as (store, outbox):
        request = await Commands(store).register_customer("ext-1", WALLET)
        box.script.add(422, code="declined")
        assert await outbox.dispatch() == 1
        (refused,) = await outcomes(store)
        assert isinstance(refused, RequestRefused) and refused.status == 422
        assert '"declined"' in refused.reason  # the processor's problem body, kept
        (entry,) = await outbox.entries()
        assert (entry.state, entry.status) == ("refused", 422)

        again = await outbox.retry(request.request_id)
        head = await store.head()
        assert await outbox.retry(request.request_id) == again  # twice: one new request
        assert await store.head() == head
        assert await outbox.dispatch() == 1
        first, second = await outbox.entries()
        assert (first.request_id, first.state) == (request.request_id, "retried")
        assert (second.request_id, second.state, second.retry_of) == (
            again, "accepted", request.request_id)
        assert len(box.world.customers) == 1
        with pytest.raises(NotFoundError):
            await outbox.retry(again)  # accepted: nothing to retry


async def test_an_in_flight_409_is_transient_but_an_invalid_transition_is_not(
        tmp_path: Path) -> None:
    box, clock = sandbox(), ManualClock(datetime.now(UTC))
    async with outbox_on(tmp_path / "l.db", box, clock) as (store, outbox):
        await Commands(store).register_customer("ext-1", WALLET)
        box.script.add(409, times=4, code="invalid_transition")
        assert await outbox.dispatch() == 1
        (refused,) = await outcomes(store)
        assert isinstance(refused, RequestRefused) and refused.status == 409


async def test_one_dispatcher_leads_at_a_time(tmp_path: Path) -> None:
    box = sandbox()
    async with open_store(tmp_path / "l.db") as store, client_for(box) as client:
        first = Outbox(store, client, lead=True)
        second = Outbox(store, client, lead=True)
        await Commands(store).register_customer("ext-1", WALLET)
        assert await second.dispatch() == 1 and second.leading
        await Commands(store).register_customer("ext-2", WALLET)
        assert await first.dispatch() == 0 and not first.leading  # a standby sends nothing
        assert len(box.world.customers) == 1
        await second.close()  # the leader stops: the standby takes over
        assert await first.dispatch() == 1 and first.leading
        assert len(box.world.customers) == 2
        await first.close()
