"""A short demonstration of the event store, until the full programme demo exists.

It appends from many concurrent tasks (group commit), retries an append (idempotency), trips a
version check, reads the log back and walks the hash chain.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import anyio

from ledger import Event, EventRegistry, NewEvent, StreamState, open_store
from ledger.errors import WrongExpectedVersionError


class FundsDeposited(Event, frozen=True):
    account_id: str
    amount: Decimal
    currency: str


REGISTRY = EventRegistry([FundsDeposited])


def remove_database(db: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)


async def run(db: str, tasks: int = 200, appends_per_task: int = 50) -> bool:
    async with open_store(db, registry=REGISTRY) as store:
        started = time.perf_counter()

        async def deposit(task: int) -> None:
            for n in range(appends_per_task):
                event = FundsDeposited(account_id=f"acc{task}", amount=Decimal(f"{n}.25"),
                                       currency="EUR")
                await store.append(f"account-acc{task}", [NewEvent(payload=event)])

        async with anyio.create_task_group() as group:
            for task in range(tasks):
                group.start_soon(deposit, task)
        elapsed = time.perf_counter() - started
        count = tasks * appends_per_task
        print(f"{count} durable single-event appends from {tasks} concurrent tasks "
              f"in {elapsed:.2f}s ({count / elapsed:,.0f} events/s)")

        retry = NewEvent(payload=FundsDeposited(account_id="acc0", amount=Decimal("1.00"),
                                                currency="EUR"))
        first = await store.append("account-acc0", [retry])
        again = await store.append("account-acc0", [retry])
        print(f"retrying an append returns the original position: {first.positions} -> "
              f"{again.positions} (duplicate={again.duplicate})")
        try:
            await store.append("account-acc0", [NewEvent(payload=retry.payload)],
                               expected=StreamState.NO_STREAM)
        except WrongExpectedVersionError as exc:
            print(f"a stale expected version is refused: {exc}")

        total = Decimal(0)
        async for event in store.read_all(categories=["account"]):
            assert isinstance(event.payload, FundsDeposited)
            total += event.payload.amount
        print(f"read back {await store.head()} events; deposits total {total} EUR")
        report = await store.verify()
        print(f"hash chain: {'intact' if report.ok else 'BROKEN'} over {report.checked} events, "
              f"head {report.last_hash}")
        return report.ok
