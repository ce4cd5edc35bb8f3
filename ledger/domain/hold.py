"""Authorisation holds: funds reserved for a card payment, and the 30-day rule.

A hold expires ``window`` (30 days by default) after it was created. If its card is terminated
while the hold is still live (pending or capturing, and not yet expired), the capture window
runs until ``window`` after the termination instead: the processor honours such captures for
30 days from the termination date. A termination after the hold expired does not revive it:
its expiry is already in the log, and no processor sends an "un-expire".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from ledger.domain.anomalies import authorisation_anomalies
from ledger.domain.card import CardState
from ledger.domain.lifecycle import AUTHORISATION, Standing, Verdict, judge, sighting
from ledger.errors import InvalidTransitionError
from ledger.events import (
    HOLD_STATUS_EVENTS,
    HOLD_STATUS_OF,
    Anomaly,
    HoldAmended,
    HoldCaptured,
    HoldCaptureStarted,
    HoldExpired,
    HoldObserved,
    HoldPlaced,
    HoldReleased,
    HoldReleaseStarted,
)
from ledger.money import check_amount, check_currency, parse_amount
from ledger.observations import AuthorisationSnapshot, Merchant

HOLD_WINDOW = timedelta(days=30)


class HoldPolicy(msgspec.Struct, frozen=True):
    window: timedelta = HOLD_WINDOW


DEFAULT_POLICY = HoldPolicy()


class HoldState(msgspec.Struct, frozen=True):
    authorisation_id: str
    account_id: str
    card_id: str
    currency: str
    created_at: datetime
    standing: Standing = Standing()
    expired_at: datetime | None = None

    @property
    def status(self) -> str:
        return self.standing.status

    @property
    def amount(self) -> Decimal:
        current = self.standing.current
        return Decimal(current.detail[0]) if current is not None else Decimal(0)

    def expires_at(self, card: CardState | None, policy: HoldPolicy = DEFAULT_POLICY) -> datetime:
        final = self.standing.final
        return expiry(self.created_at, card.terminated_at if card is not None else None,
                      final.at if final is not None else None, policy)


def expiry(created_at: datetime, terminated_at: datetime | None, closed_at: datetime | None,
           policy: HoldPolicy = DEFAULT_POLICY) -> datetime:
    """When a hold created at ``created_at`` expires, given its card's termination (if any)
    and when the hold reached a final state (if it did)."""
    expires = created_at + policy.window
    if terminated_at is not None and created_at <= terminated_at < expires and (
            closed_at is None or closed_at > terminated_at):
        return terminated_at + policy.window
    return expires


class ObserveAuthorisation(msgspec.Struct, frozen=True):
    snapshot: AuthorisationSnapshot
    card: CardState | None = None
    policy: HoldPolicy = DEFAULT_POLICY


class PlaceHold(msgspec.Struct, frozen=True, kw_only=True):
    """Approve an authorisation (the sandbox, tests): the card must take payments."""

    authorisation_id: str
    card: CardState
    amount: Decimal
    currency: str
    merchant_amount: Decimal
    merchant_currency: str
    exchange_rate: Decimal = Decimal(1)
    merchant: Merchant = Merchant()
    at: datetime


class AmendHold(msgspec.Struct, frozen=True):
    amount: Decimal
    at: datetime


class CaptureHold(msgspec.Struct, frozen=True):
    at: datetime
    card: CardState | None = None
    policy: HoldPolicy = DEFAULT_POLICY


class ReleaseHold(msgspec.Struct, frozen=True):
    at: datetime


class ExpireHold(msgspec.Struct, frozen=True):
    """The ledger's sweeper: record that the hold reached ``expiresAt`` uncaptured."""

    now: datetime
    card: CardState | None = None
    policy: HoldPolicy = DEFAULT_POLICY


HoldCommand = ObserveAuthorisation | PlaceHold | AmendHold | CaptureHold | ReleaseHold | ExpireHold
HoldEvent = HoldObserved | HoldExpired


def decide(command: HoldCommand, state: HoldState | None) -> list[HoldEvent]:
    if isinstance(command, ObserveAuthorisation):
        return list(_observe(command, state))
    if isinstance(command, PlaceHold):
        return [_place(command, state)]
    if state is None:
        raise InvalidTransitionError("authorisation", "?", "unknown", _verb(command),
                                     "no such authorisation")
    if isinstance(command, ExpireHold):
        expires = state.expires_at(command.card, command.policy)
        if state.status not in ("pending", "capturing") or state.expired_at is not None:
            return []
        return [] if command.now < expires else [HoldExpired(
            authorisation_id=state.authorisation_id, account_id=state.account_id,
            card_id=state.card_id, amount=state.amount, currency=state.currency, at=expires)]
    return _advance(command, state)


def _place(command: PlaceHold, state: HoldState | None) -> HoldPlaced:
    card = command.card
    if state is not None:
        raise InvalidTransitionError("authorisation", command.authorisation_id, state.status,
                                     "place", "it exists already")
    if card.status != "active":
        raise InvalidTransitionError("card", card.card_id, card.status, "authorise a payment",
                                     "only an active card takes new authorisations")
    return HoldPlaced(
        authorisation_id=command.authorisation_id, account_id=card.account_id,
        card_id=card.card_id, amount=check_amount(command.amount),
        currency=check_currency(command.currency),
        merchant_amount=check_amount(command.merchant_amount),
        merchant_currency=check_currency(command.merchant_currency),
        exchange_rate=check_amount(command.exchange_rate), merchant=command.merchant,
        at=command.at)


def _advance(command: AmendHold | CaptureHold | ReleaseHold, state: HoldState) -> list[HoldEvent]:
    verb = _verb(command)
    common: dict[str, Any] = {
        "authorisation_id": state.authorisation_id, "account_id": state.account_id,
        "card_id": state.card_id, "currency": state.currency, "at": command.at}
    if isinstance(command, AmendHold):
        _require(state, verb, "pending")
        return [HoldAmended(amount=check_amount(command.amount), **common)]
    if isinstance(command, ReleaseHold):
        _require(state, verb, "pending", "releasing")
        released: list[HoldEvent] = [HoldReleased(amount=state.amount, **common)]
        if state.status == "pending":
            released.insert(0, HoldReleaseStarted(amount=state.amount, **common))
        return released
    _require(state, verb, "pending", "capturing")
    terminated = command.card.terminated_at if command.card else None
    if terminated is not None and command.at >= terminated + command.policy.window:
        raise InvalidTransitionError("authorisation", state.authorisation_id, state.status, verb,
                                     f"its card was terminated on {terminated:%Y-%m-%d} and "
                                     "the 30-day capture window has closed")
    captured: list[HoldEvent] = [HoldCaptured(amount=state.amount, **common)]
    if state.status == "pending":
        captured.insert(0, HoldCaptureStarted(amount=state.amount, **common))
    return captured


def _require(state: HoldState, verb: str, *statuses: str) -> None:
    if state.status not in statuses:
        raise InvalidTransitionError("authorisation", state.authorisation_id, state.status, verb)


_VERBS: dict[type, str] = {AmendHold: "amend", CaptureHold: "capture", ReleaseHold: "release",
                           ExpireHold: "expire"}


def _verb(command: object) -> str:
    return _VERBS.get(type(command), "change")


def _observe(command: ObserveAuthorisation, state: HoldState | None) -> list[HoldObserved]:
    snapshot, card = command.snapshot, command.card
    amount = parse_amount(snapshot.amount)
    standing = state.standing if state else Standing()
    verdict = judge(AUTHORISATION, standing,
                    sighting(AUTHORISATION, snapshot.status, snapshot.updated_at, amount))
    if verdict in (Verdict.DUPLICATE, Verdict.UNCHANGED):
        return []
    common: dict[str, Any] = {"authorisation_id": snapshot.id, "account_id": snapshot.account_id,
              "card_id": snapshot.card_id, "amount": amount,
              "currency": check_currency(snapshot.currency)}
    events: list[HoldObserved] = []
    if verdict is Verdict.NEW:
        placed_anomalies = tuple(authorisation_anomalies(
            snapshot.created_at, card.terminated_at if card else None))
        # Every hold is placed pending at its createdAt, which starts its expiry clock. Seen
        # first in a later state, it is taken to have had the amount now reported.
        events.append(HoldPlaced(
            merchant_amount=parse_amount(snapshot.merchant_amount),
            merchant_currency=check_currency(snapshot.merchant_currency),
            exchange_rate=parse_amount(snapshot.exchange_rate), merchant=snapshot.merchant,
            at=snapshot.created_at, observed_at=snapshot.updated_at, anomalies=placed_anomalies,
            **common))
        if snapshot.status == "pending":
            return events  # a later updatedAt with the same amount says nothing more
        state = HoldState(snapshot.id, snapshot.account_id, snapshot.card_id, snapshot.currency,
                          snapshot.created_at)
    assert state is not None
    anomalies: list[Anomaly] = []
    if verdict is Verdict.CONTRADICTS_FINAL:
        anomalies.append(Anomaly.FINAL_STATE_CHANGED)
    if snapshot.status in ("capturing", "captured") and (
            snapshot.updated_at >= state.expires_at(card, command.policy)):
        anomalies.append(Anomaly.CAPTURE_AFTER_EXPIRY)
    event_type = HOLD_STATUS_EVENTS[snapshot.status]
    extra: dict[str, Any] = {}
    if event_type is HoldAmended:
        extra = {"merchant_amount": parse_amount(snapshot.merchant_amount),
                 "exchange_rate": parse_amount(snapshot.exchange_rate)}
    events.append(event_type(at=snapshot.updated_at, stale=verdict is Verdict.STALE,
                             anomalies=tuple(anomalies), **common, **extra))
    return events



def evolve(state: HoldState | None, event: HoldEvent) -> HoldState:
    if isinstance(event, HoldExpired):
        assert state is not None, "a hold expires only after it was placed"
        return msgspec.structs.replace(state, expired_at=event.at)
    if state is None:
        assert isinstance(event, HoldPlaced), "a hold's history starts with HoldPlaced"
        state = HoldState(event.authorisation_id, event.account_id, event.card_id,
                          event.currency, event.at)
    status = HOLD_STATUS_OF[type(event)]
    standing = state.standing.add(
        AUTHORISATION, sighting(AUTHORISATION, status, event.reported_at, event.amount))
    created = min(state.created_at, event.at) if isinstance(event, HoldPlaced) else (
        state.created_at)
    return msgspec.structs.replace(state, standing=standing, created_at=created)
