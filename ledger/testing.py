"""Hypothesis strategies and a state machine for property-testing code built on cardledger.

- ``programme_histories()``: a whole programme as the processor would report it, in time
  order: a customer, one or more accounts (in one or two currencies), cards, holds (raised,
  lowered, captured, released, or left pending), transactions (full, partial and
  over-captures, a clearing amount other than the first report's, refunds re-reported,
  reversals, now and then a debit in another currency than its hold), captures after the
  card's termination (within its 30 days) and after a hold's expiry, debits with no
  authorisation (force posts), each a snapshot in the processor's shape, following the
  processor's state machines. It ends near now unless given a ``start``.
- ``funded_programmes()``: the same, with the deposits and withdrawals of its accounts.
- ``deliveries(history)``: the same snapshots as a webhook consumer receives them: some
  delivered twice, in another order.
- ``webhook_payloads(snapshots)``: the JSON bodies the processor posts (entity fields,
  ``webhookType``, ``eventId``); a repeated delivery reuses its ``eventId``.

Every id (entities' and deliveries' ``eventId``) is drawn, and none repeats within one test
case, however many histories it draws: two histories sent to one service never collide.
- ``paths(history)``: each delivery with the path that brought it: the webhook receiver, an
  archive ingest or a pull (a fetch, with no ``eventId``), in any interleaving, with repeats.
- ``transfer_requests(account_ids)``: deposits and withdrawals as the back office records them:
  some retried as they were, some retried with another amount, currency or account.
- ``ProgrammeMachine``: a rule-based state machine that delivers observations and issues local
  commands against a ``Programme``; subclass it and override ``record`` to drive your own code.

Requires hypothesis (``pip install cardledger[testing]``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.clock import utc_now
from ledger.domain import card as card_rules
from ledger.domain.lifecycle import (
    ACCOUNT,
    AUTHORISATION,
    CARD,
    CUSTOMER,
    TRANSACTION,
    Lifecycle,
)
from ledger.domain.programme import Programme
from ledger.errors import InvalidTransitionError
from ledger.events import DomainEvent
from ledger.money import EXACT, format_amount
from ledger.observations import (
    AccountSnapshot,
    Address,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    Merchant,
    TransactionSnapshot,
    webhook_type,
)

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
ADDRESS = Address(first_line="1 Test Avenue", city="London", country="GB", post_code="SW1 1AA")


def amounts(low: str = "0.01", high: str = "500", places: int = 2,
            ) -> st.SearchStrategy[Decimal]:
    """Positive amounts with at most ``places`` decimals, in every form senders write them:
    ``100``, ``100.0``, ``100.00``, ``0.5`` (``written``). Sums of terms with different
    exponents are where exact arithmetic goes wrong, so the forms are mixed on purpose."""
    def of(needed: int) -> st.SearchStrategy[Decimal]:  # values that need ``needed`` places
        return st.builds(written, st.decimals(Decimal(low), Decimal(high), places=needed,
                                              allow_nan=False, allow_infinity=False),
                         st.integers(0, places))

    # Whole amounts (deposits of "100") are common, so draw how many places a value needs.
    return st.integers(0, places).flatmap(of)


def token_amounts() -> st.SearchStrategy[Decimal]:
    """On-chain token amounts: up to 18 decimals (``ledger.money.TOKEN_DECIMALS``)."""
    return amounts("0.000000000000000001", "500", places=18)


def written(value: Decimal, places: int) -> Decimal:
    """``value`` written with ``places`` decimals, or with as few as it needs if it needs more:
    the same amount as another sender (or a later report of the same payment) would write it,
    ``10`` as ``10.00`` or ``10.50`` as ``10.5``."""
    exponent = value.normalize(EXACT).as_tuple().exponent
    assert isinstance(exponent, int), "amounts are finite"
    return value.quantize(Decimal(1).scaleb(-max(places, -exponent)), context=EXACT)


def rewritten(draw: st.DrawFn, value: Decimal) -> Decimal:
    """The same amount re-reported, perhaps with other trailing zeros."""
    return written(value, draw(st.integers(0, 3)))


CURRENCIES = ("EUR", "USD")


class _DrawnIds:
    """Every id drawn in one test case (hypothesis shares one per case: ``st.shared``)."""

    def __init__(self) -> None:
        self.used: set[uuid.UUID] = set()


_DRAWN = st.shared(st.builds(_DrawnIds), key="ledger.testing.ids")


def new_id(draw: st.DrawFn) -> str:
    """A drawn UUID no other draw in this test case has had. Hypothesis draws the same value
    twice now and then, and shrinks towards small ones; a repeat is moved on
    deterministically, so a shrunk case replays with the same ids."""
    drawn = draw(_DRAWN)
    value = draw(st.uuids(version=4))
    while value in drawn.used:
        value = uuid.uuid5(value, "next")
    drawn.used.add(value)
    return str(value)


@st.composite
def unique_ids(draw: st.DrawFn) -> str:
    """``new_id`` as a strategy: a UUID no other draw in this test case has had."""
    return new_id(draw)


def _default_end() -> datetime:
    """Where a history without a ``start`` ends: this hour (held "as of now" means something,
    and a shrink that replays within the hour draws the same times)."""
    return utc_now().replace(minute=0, second=0, microsecond=0)


class _Clock:
    """Strictly increasing business times within one generated history."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], start: datetime) -> None:
        self._draw, self.now = draw, start

    def tick(self, max_minutes: int = 600) -> datetime:
        self.now += timedelta(minutes=self._draw(st.integers(1, max_minutes)))
        return self.now


def _walk(draw: Callable[[st.SearchStrategy[Any]], Any], machine: Lifecycle, start: str,
          max_steps: int) -> list[str]:
    """A path through ``machine`` from ``start``: every step a documented transition."""
    path = [start]
    for _ in range(draw(st.integers(0, max_steps))):
        targets = sorted(machine.transitions[path[-1]] - {path[-1]})
        if not targets:
            break
        path.append(draw(st.sampled_from(targets)))
    return path


@st.composite
def programme_histories(draw: st.DrawFn, max_cards: int = 2, max_holds: int = 4,
                        max_accounts: int = 2, start: datetime | None = None,
                        ) -> list[AnySnapshot]:
    """Snapshots of one customer's programme, in the order the processor produced them. It
    starts at ``start``; by default it ends within three days before now."""
    clock = _Clock(draw, start or EPOCH + timedelta(days=draw(st.integers(0, 300))))
    history: list[AnySnapshot] = []
    customer_id = new_id(draw)
    created = clock.tick()
    history += [CustomerSnapshot(id=customer_id, external_id=f"ext-{customer_id[:8]}",
                                 status=status, created_at=created, updated_at=clock.tick())
                for status in ("initiating", "screening", "verifying", "active")]
    for _ in range(draw(st.integers(1, max_accounts))):
        account_id, account_created = new_id(draw), clock.tick()
        currencies = list(CURRENCIES[:draw(st.integers(1, len(CURRENCIES)))])
        history += [AccountSnapshot(id=account_id, customer_id=customer_id, status=status,
                                    currencies=currencies, created_at=account_created,
                                    updated_at=clock.tick())
                    for status in ("initiating", "pending", "active")]
        for _ in range(draw(st.integers(1, max_cards))):
            history += draw(_card_life(clock, account_id, currencies, max_holds))
    history.sort(key=lambda s: s.updated_at)
    if start is None:
        history = _ending_at(history, _default_end() - timedelta(
            minutes=draw(st.integers(0, 3 * 24 * 60))))
    return history


def _ending_at(history: list[AnySnapshot], end: datetime) -> list[AnySnapshot]:
    """``history`` moved in time so its last report is at ``end``."""
    shift = end - history[-1].updated_at
    return [msgspec.structs.replace(s, created_at=s.created_at + shift,
                                    updated_at=s.updated_at + shift) for s in history]


class FundedProgramme(msgspec.Struct, frozen=True):
    """A generated programme: the processor's snapshots and the back office's transfers."""

    snapshots: list[AnySnapshot]
    transfers: list[TransferRequest]


@st.composite
def funded_programmes(draw: st.DrawFn, /, start: datetime | None = None,
                      **options: Any) -> FundedProgramme:
    """``programme_histories(**options)`` with deposits (and some withdrawals) recorded on
    its accounts, each once, dated between the account's opening and the history's end."""
    history = draw(programme_histories(start=start, **options))
    accounts = [s for s in history if isinstance(s, AccountSnapshot) and s.status == "active"]
    end = history[-1].updated_at
    transfers = []
    for account in accounts:
        for n in range(draw(st.integers(0, 3))):
            transfers.append(TransferRequest(
                "withdrawal" if n and draw(st.booleans()) else "deposit", account.id,
                draw(amounts("1", "900")), account.currencies[0], _chain_id(draw),
                at=account.updated_at + (end - account.updated_at) * draw(
                    st.floats(0, 1, allow_nan=False))))
    return FundedProgramme(history, sorted(transfers, key=lambda t: t.at or end))


def _chain_id(draw: st.DrawFn) -> str:
    """A CAIP-style on-chain transaction id, drawn, unique in the test case."""
    return f"eip155:324:0x{new_id(draw).replace('-', '')}"


@st.composite
def _card_life(draw: st.DrawFn, clock: _Clock, account_id: str, currencies: list[str],
               max_holds: int) -> list[AnySnapshot]:
    card_id, created = new_id(draw), clock.tick()
    statuses: list[Any] = ["issuing", "active", *_walk(draw, CARD, "active", 3)[1:]]
    if draw(st.booleans()):
        statuses = ["issuing", "issue_failed"]
    history: list[AnySnapshot] = []
    holds: list[list[AnySnapshot]] = []
    for status in statuses:
        history.append(CardSnapshot(
            id=card_id, account_id=account_id, type="virtual", status=status,
            billing_address=ADDRESS, masked_pan="530518******9871" if status != "issuing"
            else None, created_at=created, updated_at=clock.tick()))
        if status == "active":  # payments happen while the card is active
            for _ in range(draw(st.integers(0, max_holds))):
                holds.append(draw(_hold_life(clock, account_id, card_id,
                                             draw(st.sampled_from(currencies)))))
        if status == "terminated":  # its pending holds stay capturable for 30 days
            for life in holds:
                if life[-1].status == "pending" and draw(st.booleans()):
                    life += draw(_late_capture(clock, life[-1]))
    if statuses[-1] != "issue_failed" and draw(st.integers(0, 4)) == 0:  # a force post
        holds.append(draw(_transaction_life(clock, account_id, card_id, None, "debit",
                                            draw(amounts()), currencies[0])))
    # A terminated card's pending holds may still be captured: interleave by time.
    return sorted(history + [s for life in holds for s in life], key=lambda s: s.updated_at)


@st.composite
def _late_capture(draw: st.DrawFn, clock: _Clock, pending: AnySnapshot) -> list[AnySnapshot]:
    """A pending hold captured after its card's termination: within the 30 days, or, now
    and then, after the hold expired (the processor's debit arrives all the same)."""
    assert isinstance(pending, AuthorisationSnapshot)
    if draw(st.booleans()):
        clock.now = max(clock.now, pending.created_at + timedelta(days=30))
    at = clock.tick(60 * 24 * 5)
    captured = [msgspec.structs.replace(pending, status=status, updated_at=at + timedelta(
        seconds=n)) for n, status in enumerate(("capturing", "captured"))]
    clock.now = at + timedelta(seconds=2)
    return [*captured, *draw(_transaction_life(clock, pending.account_id, pending.card_id,
                                               pending.id, "debit", Decimal(pending.amount),
                                               pending.currency))]


@st.composite
def _hold_life(draw: st.DrawFn, clock: _Clock, account_id: str, card_id: str,
               currency: str) -> list[AnySnapshot]:
    hold_id, created = new_id(draw), clock.tick(30)
    amount = draw(amounts())
    merchant = Merchant(id="m-1", name="Corner Cafe", mcc=5814, country="GB", city="London")

    def snapshot(status: str, value: Decimal) -> AuthorisationSnapshot:
        text = format_amount(rewritten(draw, value))
        return AuthorisationSnapshot(
            id=hold_id, account_id=account_id, card_id=card_id, status=status,  # type: ignore[arg-type]
            amount=text, currency=currency, merchant_amount=text,
            merchant_currency=currency, exchange_rate="1", merchant=merchant,
            created_at=created, updated_at=clock.tick(60 * 24 * 3))

    history: list[AnySnapshot] = [snapshot("pending", amount)]
    for _ in range(draw(st.integers(0, 2))):  # incremental authorisations, up or down
        amount = draw(amounts())
        history.append(snapshot("pending", amount))
    ending = draw(st.sampled_from(["capture", "release", "pending"]))
    if ending == "release":
        history += [snapshot("releasing", amount), snapshot("released", amount)]
    elif ending == "capture":
        history += [snapshot("capturing", amount), snapshot("captured", amount)]
        # Partial, exact and over-captures (tips) all happen.
        factor = draw(st.sampled_from([Decimal("0.5"), Decimal(1), Decimal("1.2")]))
        captured = (amount * factor).quantize(Decimal("0.01")) or Decimal("0.01")
        captured = rewritten(draw, captured)
        # Now and then the processor reports the debit in another currency than its hold.
        other = [c for c in CURRENCIES if c != currency]
        debit_currency = draw(st.sampled_from([currency] * 9 + other))
        history += draw(_transaction_life(clock, account_id, card_id, hold_id, "debit",
                                          captured, debit_currency))
        if draw(st.booleans()):  # a refund
            history += draw(_transaction_life(clock, account_id, card_id, None, "credit",
                                              captured, currency))
    return history


@st.composite
def _transaction_life(draw: st.DrawFn, clock: _Clock, account_id: str, card_id: str,
                      authorisation_id: str | None, direction: str, amount: Decimal,
                      currency: str) -> list[AnySnapshot]:
    # In the documented capture flow the transaction id equals the authorisation id.
    transaction_id = authorisation_id or new_id(draw)
    created = clock.tick(60)
    statuses = draw(st.sampled_from([["processing"], ["processing", "processed"],
                                     ["processing", "processed", "reversing", "reversed"]]))
    history: list[AnySnapshot] = []
    for status in statuses:
        if status == "processed" and draw(st.booleans()):  # cleared at another amount
            amount = draw(amounts())
        text = format_amount(rewritten(draw, amount))
        # Stablecoins settle one for one, often written with all 18 decimals; other tokens
        # at a rate.
        tokens = draw(st.one_of(st.builds(written, st.just(amount), st.integers(0, 18)),
                                token_amounts()))
        history.append(TransactionSnapshot(
            id=transaction_id, account_id=account_id, card_id=card_id,
            authorisation_id=authorisation_id, status=status, direction=direction,  # type: ignore[arg-type]
            amount=text, currency=currency, merchant_amount=text,
            merchant_currency=currency, exchange_rate="1", token_amount=format_amount(tokens),
            token="eip155:1/erc20:0x6b175474e89094c44da98b954eedeac495271d0f",
            created_at=created, updated_at=clock.tick(60 * 24)))
    return history


def deliveries(history: list[AnySnapshot]) -> st.SearchStrategy[list[AnySnapshot]]:
    """``history`` as delivered: every snapshot at least once, some twice, in any order."""
    return st.lists(st.sampled_from(history), max_size=len(history)).flatmap(
        lambda extra: st.permutations([*history, *extra]))


def webhook_payload(snapshot: AnySnapshot, event_id: uuid.UUID) -> bytes:
    """The body the processor posts: the entity's fields plus ``webhookType`` and ``eventId``."""
    fields = msgspec.to_builtins(snapshot)
    fields |= {"webhookType": webhook_type(snapshot), "eventId": str(event_id)}
    return msgspec.json.encode(fields)


@st.composite
def webhook_payloads(draw: st.DrawFn, history: list[AnySnapshot]) -> list[bytes]:
    """Deliveries of ``history`` as JSON bodies; a redelivered snapshot keeps its eventId,
    and every eventId is drawn (unique in the test case)."""
    ids = _event_ids(draw, history)
    return [webhook_payload(s, ids[id(s)]) for s in draw(deliveries(history))]


def _event_ids(draw: st.DrawFn, history: Sequence[AnySnapshot]) -> dict[int, uuid.UUID]:
    return {id(s): uuid.UUID(new_id(draw)) for s in history}


PATHS = ("receiver", "archive", "pull")


@st.composite
def paths(draw: st.DrawFn,
          history: list[AnySnapshot]) -> list[tuple[str, AnySnapshot, bytes]]:
    """``history`` as it reaches a ledger by every path at once: each delivery as (path,
    snapshot, webhook body), in any order and with repeats on any path. A snapshot keeps its
    ``eventId`` whichever path brings it; a pull's body is unused (a fetch carries none)."""
    ids = _event_ids(draw, history)
    delivered = draw(deliveries(history))
    chosen = draw(st.lists(st.sampled_from(PATHS), min_size=len(delivered),
                           max_size=len(delivered)))
    return [(path, s, webhook_payload(s, ids[id(s)]))
            for path, s in zip(chosen, delivered, strict=True)]


class TransferRequest(msgspec.Struct, frozen=True):
    """One call to record a deposit or a withdrawal."""

    kind: str
    """``deposit`` or ``withdrawal``."""
    account_id: str
    amount: Decimal
    currency: str
    chain_transaction: str
    at: datetime | None = None
    """When it happened on chain, if the generator says (``funded_programmes``)."""


@st.composite
def transfer_requests(draw: st.DrawFn, account_ids: list[str],
                      currency: str = "EUR") -> list[TransferRequest]:
    """Deposits and withdrawals, some retried exactly, some retried with another amount,
    currency or account (a conflict the ledger must refuse)."""
    requests: list[TransferRequest] = []
    for _ in range(draw(st.integers(1, 6))):
        if requests and draw(st.integers(0, 2)) == 0:
            earlier = draw(st.sampled_from(requests))
            change = draw(st.sampled_from(["none", "amount", "currency", "account"]))
            if change == "amount":
                earlier = msgspec.structs.replace(earlier, amount=earlier.amount + 1)
            elif change == "currency":
                earlier = msgspec.structs.replace(earlier, currency="GBP")
            elif change == "account":
                earlier = msgspec.structs.replace(earlier, account_id=draw(
                    st.sampled_from(account_ids)))
            requests.append(earlier)
            continue
        requests.append(TransferRequest(
            draw(st.sampled_from(["deposit", "withdrawal"])), draw(st.sampled_from(account_ids)),
            draw(amounts("1", "900")), currency, _chain_id(draw)))
    return requests


class ProgrammeMachine(RuleBasedStateMachine):
    """Delivers a generated programme's observations in any order, with duplicates, and tries
    local commands along the way. Override ``record`` to send the events to your own code, and
    add rules and invariants of your own; the built-in invariants check that the programme's
    state equals a replay of everything recorded, and that final states stay final."""

    def __init__(self) -> None:
        super().__init__()
        self.programme = Programme()
        self.recorded: list[DomainEvent] = []
        self.pending: list[AnySnapshot] = []
        self.finals: dict[str, str] = {}

    def record(self, events: list[DomainEvent]) -> None:
        """Called with every batch of new events. Subclasses hook their code in here."""
        self.recorded += events

    @rule(history=programme_histories(), data=st.data())
    def receive_a_programme(self, history: list[AnySnapshot], data: st.DataObject) -> None:
        self.pending += data.draw(deliveries(history))

    @precondition(lambda self: bool(self.pending))
    @rule(count=st.integers(1, 8))
    def deliver(self, count: int) -> None:
        for snapshot in self.pending[:count]:
            self.record(self.programme.observe(snapshot))
        del self.pending[:count]

    @precondition(lambda self: bool(self.programme.cards))
    @rule(data=st.data(), verb=st.sampled_from(["deactivate", "activate", "terminate"]))
    def request(self, data: st.DataObject, verb: str) -> None:
        card_id = data.draw(st.sampled_from(sorted(self.programme.cards)))
        state = self.programme.cards[card_id]
        requests: dict[str, type[card_rules.CardCommand]] = {
            "deactivate": card_rules.DeactivateCard, "activate": card_rules.ActivateCard,
            "terminate": card_rules.TerminateCard}
        command = requests[verb](at=EPOCH)  # type: ignore[call-arg]
        try:
            events = card_rules.decide(command, state)
        except InvalidTransitionError:
            return  # refused, and nothing was decided
        self.programme.apply_all(events)
        self.record(list(events))

    @invariant()
    def replay_equals_live(self) -> None:
        replayed = Programme()
        replayed.apply_all(self.recorded)
        assert replayed.summary() == self.programme.summary()

    @invariant()
    def final_states_stay_final(self) -> None:
        """A final entity never becomes non-final again (an *earlier* final report may still
        replace a later one: the earliest final wins, whatever the delivery order)."""
        for kind, machine, states in self._entities():
            for entity_id, status in states.items():
                key = f"{kind}:{entity_id}"
                if key in self.finals:
                    assert machine.is_final(status), f"{key} left its final state {status}"
                elif machine.is_final(status):
                    self.finals[key] = status

    def _entities(self) -> list[tuple[str, Lifecycle, dict[str, str]]]:
        p = self.programme
        return [
            ("customer", CUSTOMER, {k: v.status for k, v in p.customers.items()}),
            ("account", ACCOUNT, {k: v.status for k, v in p.accounts.items()}),
            ("card", CARD, {k: v.status for k, v in p.cards.items()}),
            ("authorisation", AUTHORISATION, {k: v.status for k, v in p.holds.items()}),
            ("transaction", TRANSACTION, {k: v.status for k, v in p.transactions.items()}),
        ]
