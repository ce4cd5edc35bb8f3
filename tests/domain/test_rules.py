"""The domain's rules, one example each: observations, anomalies, the 30-day window, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain import account, card, hold, transaction
from ledger.domain.programme import Programme
from ledger.errors import CurrencyMismatchError, InvalidTransitionError
from ledger.events import (
    AccountStatusChanged,
    Anomaly,
    CardActivated,
    CardIssuanceStarted,
    CardIssued,
    CardTerminationRequested,
    DomainEvent,
    FundsDeposited,
    HoldAmended,
    HoldCaptured,
    HoldCaptureStarted,
    HoldExpired,
    HoldPlaced,
    Observed,
    TransactionPosted,
)
from ledger.observations import (
    AccountSnapshot,
    Address,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    TransactionSnapshot,
)

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
ADDRESS = Address(first_line="1 Test Avenue", city="London", country="GB", post_code="SW1 1AA")


def observed(event: DomainEvent) -> Observed:
    assert isinstance(event, Observed)
    return event


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def card_at(status: str, at: datetime, card_id: str = "c1") -> CardSnapshot:
    return CardSnapshot(id=card_id, account_id="a1", type="virtual", status=status,  # type: ignore[arg-type]
                        created_at=T0, updated_at=at)


def hold_at(status: str, at: datetime, amount: str = "10.00", created: datetime = T0,
            hold_id: str = "h1") -> AuthorisationSnapshot:
    return AuthorisationSnapshot(id=hold_id, account_id="a1", card_id="c1", status=status,  # type: ignore[arg-type]
                                 amount=amount, currency="EUR", merchant_amount=amount,
                                 merchant_currency="EUR", created_at=created, updated_at=at)


def debit(amount: str, at: datetime, authorisation_id: str | None = "h1",
          **fields: Any) -> TransactionSnapshot:
    return TransactionSnapshot(id=authorisation_id or "t9", account_id="a1", card_id="c1",
                               authorisation_id=authorisation_id, direction="debit",
                               amount=amount, currency="EUR", created_at=at, updated_at=at,
                               status=fields.pop("status", "processing"), **fields)


def active_programme() -> Programme:
    programme = Programme()
    programme.observe(card_at("issuing", T0))
    programme.observe(card_at("active", days(0.1)))
    return programme


def test_a_card_first_seen_active_was_issued_at_its_creation() -> None:
    events = Programme().observe(card_at("active", days(1)))
    assert [type(e) for e in events] == [CardIssuanceStarted, CardIssued]
    assert [e.at for e in events] == [T0, days(1)]


def test_a_repeated_observation_records_nothing() -> None:
    programme = active_programme()
    assert programme.observe(card_at("active", days(0.1))) == []
    assert programme.observe(hold_at("pending", days(1))) != []
    assert programme.observe(hold_at("pending", days(1))) == []


def test_a_stale_observation_is_recorded_but_does_not_move_the_state() -> None:
    programme = active_programme()
    programme.observe(card_at("inactive", days(3)))
    (event,) = programme.observe(card_at("active", days(2)))
    assert isinstance(event, CardActivated) and event.stale
    assert programme.cards["c1"].status == "inactive"


def test_a_final_state_stays_final_and_a_contradiction_is_flagged() -> None:
    programme = active_programme()
    programme.observe(card_at("terminated", days(5)))
    (event,) = programme.observe(card_at("active", days(6)))
    assert Anomaly.FINAL_STATE_CHANGED in observed(event).anomalies
    assert programme.cards["c1"].status == "terminated"


def test_an_earlier_final_report_wins_whatever_the_delivery_order() -> None:
    in_order, reversed_order = active_programme(), active_programme()
    for snapshot in (card_at("terminated", days(5)), card_at("active", days(6))):
        in_order.observe(snapshot)
    for snapshot in (card_at("active", days(6)), card_at("terminated", days(5))):
        reversed_order.observe(snapshot)
    assert in_order.summary() == reversed_order.summary()
    assert reversed_order.cards["c1"].status == "terminated"


def test_amending_a_pending_hold_changes_its_amount() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1)))
    (event,) = programme.observe(hold_at("pending", days(1.5), amount="12.50"))
    assert isinstance(event, HoldAmended)
    assert programme.holds["h1"].amount == Decimal("12.50")
    assert programme.holds["h1"].status == "pending"


def test_capture_after_expiry_is_recorded_with_an_anomaly() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1), created=days(1)))
    (started,) = programme.observe(hold_at("capturing", days(31.5), created=days(1)))
    assert isinstance(started, HoldCaptureStarted)
    assert observed(started).anomalies == (Anomaly.CAPTURE_AFTER_EXPIRY,)
    (posted,) = programme.observe(debit("10.00", days(31.6)))
    assert Anomaly.CAPTURE_AFTER_EXPIRY in observed(posted).anomalies


def test_capture_above_the_hold_and_unknown_authorisations_are_anomalies() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1)))
    (over,) = programme.observe(debit("12.00", days(2)))
    assert observed(over).anomalies == (Anomaly.CAPTURE_ABOVE_HOLD,)
    (forced,) = programme.observe(debit("3.00", days(2), authorisation_id=None))
    assert observed(forced).anomalies == (Anomaly.UNKNOWN_AUTHORISATION,)
    assert isinstance(forced, TransactionPosted)


def test_an_authorisation_after_termination_is_recorded_with_an_anomaly() -> None:
    programme = active_programme()
    programme.observe(card_at("terminated", days(2)))
    (placed,) = programme.observe(hold_at("pending", days(3), created=days(3)))
    assert isinstance(placed, HoldPlaced)
    assert observed(placed).anomalies == (Anomaly.AUTHORISATION_AFTER_TERMINATION,)


def test_the_capture_window_of_a_pending_hold_extends_to_30_days_after_termination() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1), created=days(1)))
    state = programme.holds["h1"]
    assert state.expires_at(programme.cards["c1"]) == days(31)
    programme.observe(card_at("terminated", days(20)))
    assert state.expires_at(programme.cards["c1"]) == days(50)
    # A hold already captured before the termination keeps its own window.
    programme.observe(hold_at("captured", days(10), created=days(1), hold_id="h2"))
    assert programme.holds["h2"].expires_at(programme.cards["c1"]) == days(31)


def test_captures_on_a_terminated_card_are_honoured_for_30_days() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1)))
    programme.observe(card_at("terminated", days(2)))
    state, terminated = programme.holds["h1"], programme.cards["c1"]
    events = hold.decide(hold.CaptureHold(at=days(31.9), card=terminated), state)
    assert [type(e) for e in events] == [HoldCaptureStarted, HoldCaptured]
    with pytest.raises(InvalidTransitionError, match="30-day capture window has closed"):
        hold.decide(hold.CaptureHold(at=days(32), card=terminated), state)


def test_a_terminated_card_takes_no_new_authorisation() -> None:
    programme = active_programme()
    programme.observe(card_at("terminated", days(2)))
    with pytest.raises(InvalidTransitionError) as refused:
        hold.decide(hold.PlaceHold(authorisation_id="h9", card=programme.cards["c1"],
                                   amount=Decimal(5), currency="EUR",
                                   merchant_amount=Decimal(5), merchant_currency="EUR",
                                   at=days(3)), None)
    assert (refused.value.entity, refused.value.state) == ("card", "terminated")


def test_the_sweeper_expires_a_hold_once_and_at_its_expiry() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1), created=days(1)))
    command = hold.ExpireHold(now=days(40), card=programme.cards["c1"])
    assert hold.decide(hold.ExpireHold(now=days(30), card=programme.cards["c1"]),
                       programme.holds["h1"]) == []
    (expired,) = hold.decide(command, programme.holds["h1"])
    assert isinstance(expired, HoldExpired) and expired.at == days(31)
    programme.apply(expired)
    assert hold.decide(command, programme.holds["h1"]) == []


def test_local_commands_are_validated_and_name_the_entity_state_and_command() -> None:
    programme = active_programme()
    state = programme.cards["c1"]
    with pytest.raises(InvalidTransitionError) as refused:
        card.decide(card.ActivateCard(at=days(1)), state)
    assert str(refused.value) == "card c1 is active; cannot activate"
    (request,) = card.decide(card.TerminateCard(at=days(1)), state)
    assert isinstance(request, CardTerminationRequested)
    programme.apply(request)
    with pytest.raises(InvalidTransitionError, match="already requested"):
        card.decide(card.TerminateCard(at=days(1)), programme.cards["c1"])
    programme.observe(card_at("terminated", days(2)))
    assert programme.cards["c1"].requested == frozenset()
    with pytest.raises(InvalidTransitionError, match="terminated; cannot terminate"):
        card.decide(card.TerminateCard(at=days(3)), programme.cards["c1"])


def test_deposits_need_an_active_account_in_its_own_currency() -> None:
    programme = Programme()
    programme.observe(AccountSnapshot(id="a1", customer_id="u1", status="active",
                                      currencies=["EUR"], created_at=T0, updated_at=T0))
    state = programme.accounts["a1"]
    tx = "eip155:324:0x4593aa"
    (deposit,) = account.decide(account.RecordDeposit(Decimal("100"), "EUR", tx, T0), state)
    assert isinstance(deposit, FundsDeposited) and deposit.amount == Decimal(100)
    with pytest.raises(CurrencyMismatchError):
        account.decide(account.RecordDeposit(Decimal("1"), "USD", tx, T0), state)
    programme.observe(AccountSnapshot(id="a1", customer_id="u1", status="closed",
                                      currencies=["EUR"], created_at=T0, updated_at=days(1)))
    with pytest.raises(InvalidTransitionError, match="closed"):
        account.decide(account.RecordDeposit(Decimal("1"), "EUR", tx, T0),
                       programme.accounts["a1"])
    assert isinstance(programme.observe(AccountSnapshot(
        id="a1", customer_id="u1", status="active", currencies=["EUR"], created_at=T0,
        updated_at=days(2)))[0], AccountStatusChanged)


def test_one_live_virtual_card_per_account() -> None:
    programme = active_programme()
    programme.observe(AccountSnapshot(id="a1", customer_id="u1", status="active",
                                      currencies=["EUR"], created_at=T0, updated_at=T0))
    live = [programme.cards["c1"]]
    with pytest.raises(InvalidTransitionError, match="one virtual card per account"):
        account.decide(account.RequestCard(at=T0, billing_address=ADDRESS, existing_cards=live),
                       programme.accounts["a1"])
    programme.observe(card_at("terminated", days(1)))
    assert account.decide(account.RequestCard(at=T0, billing_address=ADDRESS,
                                              existing_cards=[programme.cards["c1"]]),
                          programme.accounts["a1"])


def test_transactions_follow_their_machine() -> None:
    (posted,) = transaction.decide(transaction.PostTransaction(
        transaction_id="t1", account_id="a1", card_id="c1", authorisation_id="h1",
        direction="debit", amount=Decimal(5), currency="EUR", at=T0), None)
    state = transaction.evolve(None, posted)
    with pytest.raises(InvalidTransitionError, match="processing; cannot move to reversed"):
        transaction.decide(transaction.AdvanceTransaction("reversed", days(1)), state)
    (processed,) = transaction.decide(transaction.AdvanceTransaction("processed", days(1)), state)
    assert transaction.evolve(state, processed).status == "processed"


def test_a_termination_after_a_hold_expired_does_not_revive_it() -> None:
    programme = active_programme()
    programme.observe(hold_at("pending", days(1), created=days(1)))
    programme.observe(card_at("terminated", days(35)))
    assert programme.holds["h1"].expires_at(programme.cards["c1"]) == days(31)


def test_a_redelivered_first_report_records_nothing_for_every_entity() -> None:
    programme = active_programme()
    first_reports: list[AnySnapshot] = [card_at("active", days(0.2), card_id="c2"),
                     hold_at("pending", days(1.5), created=days(1)),
                     debit("4.00", days(2), status="processed")]
    for report in first_reports:
        assert programme.observe(report)
        assert programme.observe(report) == [], type(report).__name__
