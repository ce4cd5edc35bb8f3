"""A short demonstration of the event store and the domain, until the full programme demo.

It records deposits from many concurrent tasks (group commit), retries an append
(idempotency), trips a version check, feeds the domain a processor report out of order, reads
the log back and walks the hash chain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio

from ledger import NewEvent, StreamState, open_store
from ledger.domain.programme import Programme, stream_for
from ledger.errors import WrongExpectedVersionError
from ledger.events import FundsDeposited
from ledger.observations import CardSnapshot

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def remove_database(db: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)


def deposit(account: int, n: int) -> NewEvent[FundsDeposited]:
    return NewEvent(payload=FundsDeposited(
        account_id=f"acc{account}", amount=Decimal(f"{n}.25"), currency="EUR",
        chain_transaction=f"eip155:324:0x{account:04x}{n:04x}", at=T0 + timedelta(minutes=n)))


async def run(db: str, tasks: int = 200, appends_per_task: int = 50) -> bool:
    async with open_store(db) as store:
        started = anyio.current_time()

        async def record_deposits(task: int) -> None:
            for n in range(appends_per_task):
                await store.append(f"account-acc{task}", [deposit(task, n)])

        async with anyio.create_task_group() as group:
            for task in range(tasks):
                group.start_soon(record_deposits, task)
        elapsed = anyio.current_time() - started
        count = tasks * appends_per_task
        print(f"{count} durable single-event appends from {tasks} concurrent tasks "
              f"in {elapsed:.2f}s ({count / elapsed:,.0f} events/s)")

        retry = deposit(0, 99)
        first = await store.append("account-acc0", [retry])
        again = await store.append("account-acc0", [retry])
        print(f"retrying an append returns the original position: {first.positions} -> "
              f"{again.positions} (duplicate={again.duplicate})")
        try:
            await store.append("account-acc0", [deposit(0, 100)], expected=StreamState.NO_STREAM)
        except WrongExpectedVersionError as exc:
            print(f"a stale expected version is refused: {exc}")

        # The processor's reports arrive out of order: the domain records both, and the
        # older one does not move the card back.
        programme = Programme()
        for status, minutes in (("inactive", 30), ("active", 10)):
            snapshot = CardSnapshot(id="card1", account_id="acc0", type="virtual",
                                    status=status, created_at=T0,  # type: ignore[arg-type]
                                    updated_at=T0 + timedelta(minutes=minutes))
            for observed in programme.observe(snapshot):
                await store.append(stream_for(observed), [NewEvent(payload=observed)])
        print(f"card reports delivered out of order: card is {programme.cards['card1'].status}")

        total = Decimal(0)
        async for event in store.read_all(types=["FundsDeposited"]):
            assert isinstance(event.payload, FundsDeposited)
            total += event.payload.amount
        print(f"read back {await store.head()} events; deposits total {total} EUR")
        report = await store.verify()
        print(f"hash chain: {'intact' if report.ok else 'BROKEN'} over {report.checked} events, "
              f"head {report.last_hash}")
        return report.ok
