"""``LedgerMachine``: a hypothesis state machine that drives a real ``CardLedger`` on a
temporary SQLite file with what a service receives: signed webhook bodies through the
ledger's own receiver (in process), each delivered in any order and some twice; the back
office's deposits and withdrawals; and a clock that moves on. Subclass it to add rules and
invariants about your own code; its own invariants check what the ledger promises."""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from standardwebhooks import Webhook

from adapters.sandbox.webhooks import new_secret
from adapters.service.card_ledger import CardLedger
from ledger.clock import ManualClock
from ledger.errors import InvalidTransitionError, NotFoundError
from ledger.events import ObservationReceived
from ledger.observations import AnySnapshot
from ledger.testing import (
    FundedProgramme,
    TransferRequest,
    deliveries,
    funded_programmes,
    unique_ids,
)
from ledger.testing import webhook_payload as body_of
from projections.replay import stored_drift

START = datetime(2026, 1, 5, tzinfo=UTC)


class LedgerMachine(RuleBasedStateMachine):
    """Rules: receive a programme, deliver some of its webhooks, record a transfer, let
    time pass (and sweep expiries). Invariants: every delivery answered 2xx is in the log
    once; the stored projection equals a replay; the chain verifies; available is posted
    minus held. ``self.ledger`` is the ledger, ``self.call(fn, *args)`` runs a coroutine
    function on its event loop."""

    def __init__(self) -> None:
        super().__init__()
        self._exit = ExitStack()
        self.portal: BlockingPortal = self._exit.enter_context(start_blocking_portal())
        directory = Path(self._exit.enter_context(tempfile.TemporaryDirectory()))
        self.clock = ManualClock(START)
        self.ledger: CardLedger = self._exit.enter_context(self.portal.wrap_async_context_manager(
            CardLedger.open(directory / "ledger.db", clock=self.clock)))
        self.secret = new_secret()
        self._signer = Webhook(self.secret)
        self._http = self._exit.enter_context(self.portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=httpx.ASGITransport(
                app=self.ledger.webhook_app(self.secret)), base_url="http://ledger.test")))
        self.pending: list[tuple[AnySnapshot, bytes, str]] = []
        self.transfers: list[TransferRequest] = []
        self.acknowledged: Counter[str] = Counter()

    def call(self, function: Any, *args: Any) -> Any:
        return self.portal.call(function, *args)

    def teardown(self) -> None:
        self._exit.close()

    @rule(programme=funded_programmes(start=START, max_accounts=1), data=st.data())
    def receive_a_programme(self, programme: FundedProgramme, data: st.DataObject) -> None:
        ids = {id(s): data.draw(unique_ids()) for s in programme.snapshots}
        for snapshot in data.draw(deliveries(programme.snapshots)):
            event_id = ids[id(snapshot)]
            self.pending.append((snapshot, body_of(snapshot, uuid.UUID(event_id)), event_id))
        self.transfers += programme.transfers

    @precondition(lambda self: bool(self.pending))
    @rule(count=st.integers(1, 8))
    def deliver(self, count: int) -> None:
        for snapshot, body, event_id in self.pending[:count]:
            self.clock.set(snapshot.updated_at)  # a report arrives after it happened
            response = self.call(self._post, body, event_id)
            assert response.status_code == 200, response.text
            self.acknowledged[event_id] += 1
        del self.pending[:count]

    @precondition(lambda self: bool(self.transfers))
    @rule()
    def record_a_transfer(self) -> None:
        transfer = self.transfers.pop(0)
        if transfer.account_id not in self.call(self._known_accounts):
            self.transfers.append(transfer)  # its account's report has not arrived yet
            return
        self.clock.set(transfer.at or self.clock())
        record = (self.ledger.record_deposit if transfer.kind == "deposit" else
                  lambda *a: self.ledger.record_withdrawal(*a, allow_overdraft=True))
        try:
            self.call(record, transfer.account_id, transfer.amount, transfer.currency,
                      transfer.chain_transaction)
        except (NotFoundError, InvalidTransitionError):  # its account is not active yet
            self.transfers.append(transfer)

    async def _post(self, body: bytes, event_id: str) -> httpx.Response:
        now = datetime.now(UTC)  # signatures are judged on the real clock
        return await self._http.post("/webhooks", content=body, headers={
            "content-type": "application/json", "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(event_id, now, body.decode())})

    async def _known_accounts(self) -> list[str]:
        await self.ledger.wait_until_visible()
        return self.ledger.runner.account_ids()

    @rule(hours=st.integers(1, 24 * 40))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))
        self.call(self.ledger.expire_holds)

    @invariant()
    def every_acknowledged_delivery_is_recorded_once(self) -> None:
        async def markers() -> Counter[str]:
            found: Counter[str] = Counter()
            async for stored in self.ledger.store.read_all(types=["ObservationReceived"]):
                assert isinstance(stored.payload, ObservationReceived)
                found[stored.payload.event_id] += 1
            return found
        found = self.call(markers)
        assert all(found[event_id] == 1 for event_id in self.acknowledged), found

    @invariant()
    def the_projection_equals_a_replay(self) -> None:
        assert self.call(stored_drift, self.ledger.store, self.ledger.runner) == []

    @invariant()
    def the_chain_verifies_and_available_is_posted_minus_held(self) -> None:
        assert self.call(self.ledger.verify).ok
        for balance in self.call(self.ledger.balances):
            assert balance.available == balance.posted - balance.held
