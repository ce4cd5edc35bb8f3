"""Properties of real traffic, on a real SQLite file: every path a report can take, in any
interleaving, counts it once; a retried transfer is recorded once, a conflicting one never."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adapters.processor.observer import Observer
from adapters.service.commands import Commands
from adapters.webhooks.archive import ingest_lines
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store
from ledger.errors import DomainError
from ledger.money import EXACT
from ledger.observations import AccountSnapshot, AnySnapshot
from ledger.testing import TransferRequest, paths, programme_histories, transfer_requests
from projections import ProjectionRunner, view
from projections.tables import rows_of
from tests.support.histories import books, moments, record
from tests.support.known_history import ACCOUNT as ACTIVE
from tests.support.webhooks import SECRET, signed

STORED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def ledger_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "ledger.db"


@STORED
@given(history=programme_histories(), data=st.data())
def test_receiver_archive_and_pull_in_any_interleaving_count_each_fact_once(
        history: list[AnySnapshot], data: st.DataObject) -> None:
    delivered = data.draw(paths(history))
    in_order = record(history)
    expected = books(in_order)
    times = [*moments(in_order), None]

    async def check(path: Path) -> None:
        async with open_store(path) as store:
            observer = Observer(store)
            receiver = WebhookReceiver(observer, secret=SECRET)
            transport = httpx.ASGITransport(app=receiver.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://l") as client:
                for way, snapshot, body in delivered:
                    if way == "receiver":
                        answer = await client.post("/webhooks", content=body,
                                                   headers=signed(body))
                        assert answer.status_code == 200, answer.text
                    elif way == "archive":  # another process, ingesting one line
                        report = await ingest_lines(Observer(store), [body])
                        assert report.conflicts == [] and report.skipped == []
                    else:  # pull sync: a fetch, no eventId
                        await Observer(store).record(snapshot, correlation_id="pull-sync")
            async with ProjectionRunner(store) as runner:
                await runner.catch_up()
                assert runner.account_ids() == sorted(expected)
                for account_id, book in expected.items():
                    stored = await runner.stored_view(account_id)
                    assert stored is not None  # rows: the same, in whatever order
                    assert rows_of(stored) == rows_of(view(book, None))
                    for moment in times:
                        found = await runner.view_as_of(account_id, moment)
                        assert found.balances == view(book, moment).balances, moment

    with ledger_file() as path:
        anyio.run(check, path)


@STORED
@given(requests=transfer_requests(["a1", "a2"]))
def test_a_retried_transfer_is_recorded_once_and_a_conflicting_one_changes_nothing(
        requests: list[TransferRequest]) -> None:
    async def check(path: Path) -> None:
        async with open_store(path) as store:
            for account_id in ("a1", "a2"):
                await Observer(store).record(_account(account_id))
            commands = Commands(store)
            first: dict[tuple[str, str], TransferRequest] = {}
            for request in requests:
                method = (commands.record_deposit if request.kind == "deposit"
                          else commands.record_withdrawal)
                key = (request.kind, request.chain_transaction)
                recorded = first.get(key)
                head = await store.head()
                if recorded is not None and _differs(recorded, request):
                    try:
                        await method(request.account_id, request.amount, request.currency,
                                     request.chain_transaction)
                    except DomainError:
                        assert await store.head() == head
                        continue
                    raise AssertionError(f"{request} was not refused")
                done = await method(request.account_id, request.amount, request.currency,
                                    request.chain_transaction)
                assert done.duplicate == (recorded is not None)
                assert await store.head() == head + (recorded is None)
                first.setdefault(key, request)
            async with ProjectionRunner(store) as runner:
                await runner.catch_up()
                for account_id in ("a1", "a2"):
                    expected = Decimal(0)
                    for r in first.values():
                        if r.account_id == account_id:
                            signed_amount = r.amount if r.kind == "deposit" else -r.amount
                            expected = EXACT.add(expected, signed_amount)
                    found = await runner.stored_view(account_id)
                    deposits = found.balances[0].deposits if found and found.balances else 0
                    assert deposits == expected

    with ledger_file() as path:
        anyio.run(check, path)


def _differs(recorded: TransferRequest, request: TransferRequest) -> bool:
    return (recorded.account_id, recorded.amount, recorded.currency) != (
        request.account_id, request.amount, request.currency)


def _account(account_id: str) -> AccountSnapshot:
    return replace(ACTIVE, id=account_id)
