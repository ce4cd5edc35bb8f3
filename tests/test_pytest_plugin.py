"""The pytest plugin's fixtures, as a user's test suite meets them (the plugin is loaded by
its ``pytest11`` entry point, as in any project that installs cardledger)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.service.card_ledger import CardLedger
from adapters.testing.pytest_plugin import Simulate
from adapters.testing.sandboxed import SandboxedProcessor
from ledger.clock import ManualClock
from ledger.observations import Address
from tests.support.histories import one_hold

pytestmark = pytest.mark.anyio
HOME = Address(first_line="1 Test Avenue", city="London", country="GB", post_code="SW1 1AA")


async def test_card_ledger_runs_on_a_clock_the_test_moves(
        card_ledger: CardLedger, ledger_clock: ManualClock) -> None:
    for snapshot in one_hold(ledger_clock() - timedelta(hours=1), "12.50"):
        await card_ledger.record(snapshot)
    await card_ledger.wait_until_visible()
    (held,) = await card_ledger.holds()
    assert held.remaining == Decimal("12.50")
    ledger_clock.advance(timedelta(days=31))
    assert await card_ledger.expire_holds() == 1
    await card_ledger.wait_until_visible()
    assert await card_ledger.holds() == []


async def test_processor_sandbox_takes_requests_and_sends_webhooks_back(
        card_ledger: CardLedger, processor_sandbox: SandboxedProcessor) -> None:
    box = processor_sandbox
    request = await card_ledger.register_customer("cust-1", "eip155:324:0x" + "1" * 40)
    await box.settle()
    (customer_id,) = box.world.customers
    await box.control.verify_customer(customer_id)
    await box.settle()
    await card_ledger.open_account(customer_id, "EUR")
    await box.settle()
    (account_id,) = box.world.accounts
    await box.control.deposit(account_id, Decimal("100"))
    await card_ledger.record_deposit(account_id, Decimal("100"), "EUR", "eip155:324:0xabc")
    await card_ledger.request_card(account_id, HOME)
    await box.settle()
    (card_id,) = box.world.cards
    await box.control.issue_card(card_id)
    await box.control.authorise(card_id, Decimal("30"))
    await box.settle()
    (balance,) = await card_ledger.balances(account_id)
    truth = await box.control.balance(account_id)
    assert (balance.posted, balance.held, balance.available) == (
        Decimal(truth["posted"]), Decimal(truth["held"]), Decimal(truth["available"]))
    assert balance.held == Decimal("30")
    assert request.external_id == "cust-1"


async def test_simulation_runs_a_seed_and_fails_a_test_with_its_replay_token(
        simulation: Simulate) -> None:
    outcome = await simulation(5, steps=120)
    assert outcome.ok and outcome.head_hash
    with pytest.raises(pytest.fail.Exception, match="replay: cardledger simulate --replay cl1"):
        await simulation(0, planted="dedupe-off")
