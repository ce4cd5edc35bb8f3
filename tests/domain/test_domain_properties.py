"""Properties of the domain rules, for every history hypothesis can find."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.domain import card, hold, transaction
from ledger.domain.lifecycle import AUTHORISATION, CARD, TRANSACTION, Lifecycle
from ledger.domain.programme import Programme
from ledger.errors import InvalidTransitionError
from ledger.events import DomainEvent
from ledger.observations import BY_WEBHOOK_TYPE, AnySnapshot, CardSnapshot
from ledger.testing import (
    EPOCH,
    ProgrammeMachine,
    deliveries,
    programme_histories,
    webhook_payloads,
)

TestProgrammeMachine = ProgrammeMachine.TestCase
TestProgrammeMachine.settings = settings(max_examples=40, stateful_step_count=20, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=programme_histories(), data=st.data())
def test_any_duplication_and_reordering_converges_to_the_in_order_state(
    history: list[AnySnapshot], data: st.DataObject
) -> None:
    in_order = Programme()
    for snapshot in history:
        in_order.observe(snapshot)
    shuffled = Programme()
    for snapshot in data.draw(deliveries(history)):
        shuffled.observe(snapshot)
    assert shuffled.summary() == in_order.summary()


@settings(max_examples=60, deadline=None)
@given(history=programme_histories())
def test_in_order_histories_record_no_stale_event_and_no_anomaly_but_real_ones(
    history: list[AnySnapshot],
) -> None:
    programme = Programme()
    for snapshot in history:
        for event in programme.observe(snapshot):
            assert not getattr(event, "stale", False), event


@settings(max_examples=60, deadline=None)
@given(history=programme_histories(), data=st.data())
def test_webhook_payloads_decode_back_into_the_snapshots(
    history: list[AnySnapshot], data: st.DataObject
) -> None:
    decoded = []
    for body in data.draw(webhook_payloads(history)):
        kind = msgspec.json.decode(body)["webhookType"]
        decoded.append(msgspec.json.decode(body, type=BY_WEBHOOK_TYPE[kind]))
    assert {msgspec.json.encode(s) for s in decoded} == {msgspec.json.encode(s) for s in history}


class CommandMachine(RuleBasedStateMachine):
    """Local commands in any order: each either decides events the machines allow, or is
    refused and decides nothing; replaying what was decided gives the live state."""

    def __init__(self) -> None:
        super().__init__()
        self.programme = Programme()
        self.events: list[DomainEvent] = []
        self.clock = EPOCH
        self.counter = 0
        self._apply(self.programme.observe(CardSnapshot(
            id="c1", account_id="a1", type="virtual", status="active", created_at=EPOCH,
            updated_at=EPOCH)))

    def _now(self, days: float = 0.5) -> Any:
        self.clock += timedelta(days=days)
        return self.clock

    def _apply(self, events: list[Any]) -> None:
        for event in events:  # each event is one step of a machine
            before = self._statuses()
            self.programme.apply(event)
            self.events.append(event)
            for key, status in self._statuses().items():
                machine, previous = _MACHINES[key[0]], before.get(key)
                if previous is not None and previous != status:
                    assert machine.allows(previous, status), f"{key}: {previous} -> {status}"

    def _statuses(self) -> dict[tuple[str, str], str]:
        p = self.programme
        return {**{("card", k): v.status for k, v in p.cards.items()},
                **{("hold", k): v.status for k, v in p.holds.items()},
                **{("transaction", k): v.status for k, v in p.transactions.items()}}

    def _try(self, decide: Any, command: Any, state: Any) -> None:
        try:
            events = decide(command, state)
        except InvalidTransitionError:
            return  # refused: nothing was decided, so nothing is applied
        self._apply(events)

    @rule(amount=st.integers(1, 500))
    def authorise(self, amount: int) -> None:
        self.counter += 1
        self._try(hold.decide, hold.PlaceHold(
            authorisation_id=f"h{self.counter}", card=self.programme.cards["c1"],
            amount=Decimal(amount), currency="EUR", merchant_amount=Decimal(amount),
            merchant_currency="EUR", at=self._now()), None)

    @precondition(lambda self: bool(self.programme.holds))
    @rule(data=st.data(), verb=st.sampled_from(["amend", "capture", "release", "expire"]),
          days=st.floats(0.1, 40))
    def act_on_a_hold(self, data: st.DataObject, verb: str, days: float) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.programme.holds)))
        state, at = self.programme.holds[hold_id], self._now(days)
        the_card = self.programme.cards["c1"]
        commands: dict[str, hold.HoldCommand] = {
            "amend": hold.AmendHold(Decimal(7), at), "capture": hold.CaptureHold(at, the_card),
            "release": hold.ReleaseHold(at), "expire": hold.ExpireHold(at, the_card)}
        command = commands[verb]
        self._try(hold.decide, command, state)
        if verb == "capture" and self.programme.holds[hold_id].status == "captured" and (
                hold_id not in self.programme.transactions):
            self._try(transaction.decide, transaction.PostTransaction(
                transaction_id=hold_id, account_id="a1", card_id="c1",
                authorisation_id=hold_id, direction="debit", amount=state.amount,
                currency="EUR", at=at), None)

    @precondition(lambda self: bool(self.programme.transactions))
    @rule(data=st.data(), to=st.sampled_from(["processed", "reversing", "reversed"]))
    def advance_a_transaction(self, data: st.DataObject, to: str) -> None:
        transaction_id = data.draw(st.sampled_from(sorted(self.programme.transactions)))
        self._try(transaction.decide, transaction.AdvanceTransaction(to, self._now()),  # type: ignore[arg-type]
                  self.programme.transactions[transaction_id])

    @rule(status=st.sampled_from(sorted(CARD.rank)))
    def processor_moves_the_card(self, status: str) -> None:
        current = self.programme.cards["c1"].status
        if CARD.allows(current, status):  # the processor only reports documented moves
            self._apply(self.programme.observe(CardSnapshot(
                id="c1", account_id="a1", type="virtual", status=status,  # type: ignore[arg-type]
                created_at=EPOCH, updated_at=self._now())))

    @rule(verb=st.sampled_from([card.DeactivateCard, card.ActivateCard, card.TerminateCard]))
    def request_a_card_change(self, verb: Any) -> None:
        self._try(card.decide, verb(at=self._now()), self.programme.cards["c1"])

    @invariant()
    def replay_equals_live(self) -> None:
        replayed = Programme()
        replayed.apply_all(self.events)
        assert replayed.summary() == self.programme.summary()

    @invariant()
    def terminated_cards_take_no_new_holds(self) -> None:
        terminated = self.programme.cards["c1"].terminated_at
        if terminated is not None:
            assert all(h.created_at < terminated for h in self.programme.holds.values())


_MACHINES: dict[str, Lifecycle] = {"card": CARD, "hold": AUTHORISATION,
                                   "transaction": TRANSACTION}

TestCommandMachine = CommandMachine.TestCase
TestCommandMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
