"""The simulated processor: customers, accounts, cards, authorisations, transactions, funds.

It follows the processor's documented state machines (``ledger.domain.lifecycle``), answers
an impossible transition with 409, and keeps each account's funds so that it can decline an
authorisation that exceeds them. Every change is reported to ``on_change`` (the webhook
sender) as the entity's new snapshot. Its own bookkeeping (``balance``) is the truth the
adapter's tests compare the ledger with.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

import msgspec

from adapters.sandbox.clock import BusinessClock
from adapters.sandbox.errors import SandboxError, not_found
from adapters.sandbox.rules import (
    ACCOUNT,
    AUTHORISATION,
    CAPTURE_AFTER_TERMINATION,
    CARD,
    CUSTOMER,
    EXACT,
    HOLD_LIFETIME,
    TRANSACTION,
    Machine,
    amount_text,
    check_currency,
    parse_amount,
)
from ledger.observations import (
    AccountSnapshot,
    Address,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    ChainTransaction,
    CustomerSnapshot,
    Fee,
    Merchant,
    TransactionSnapshot,
)

S = TypeVar("S", bound=AnySnapshot)

# Rates the sandbox converts merchant currencies with (account currency per merchant unit).
FX_RATES = {("USD", "EUR"): Decimal("0.92"), ("GBP", "EUR"): Decimal("1.17"),
            ("EUR", "USD"): Decimal("1.09"), ("EUR", "GBP"): Decimal("0.85")}
TOKEN = "eip155:1/erc20:0x6b175474e89094c44da98b954eedeac495271d0f"
COUNTED = ("processing", "processed", "reversing")


class Balance(msgspec.Struct, frozen=True, rename="camel"):
    """The sandbox's own view of an account's money (sandbox-only endpoint)."""

    account_id: str
    currency: str
    deposits: str
    debits: str
    credits: str
    posted: str
    held: str
    available: str


CENTS = Decimal("0.01")
MAX_CARD_AMOUNT = Decimal(10) ** 12
"""The largest amount a card transaction can carry (the processor's amounts have at most
twelve integer digits)."""


class World:
    def __init__(self, clock: BusinessClock, rng: random.Random,
                 on_change: Callable[[AnySnapshot], None] = lambda _: None) -> None:
        self.clock, self.rng, self.on_change = clock, rng, on_change
        self.customers: dict[str, CustomerSnapshot] = {}
        self.accounts: dict[str, AccountSnapshot] = {}
        self.cards: dict[str, CardSnapshot] = {}
        self.authorisations: dict[str, AuthorisationSnapshot] = {}
        self.transactions: dict[str, TransactionSnapshot] = {}
        self.movements: dict[str, Decimal] = {}
        """Deposits minus withdrawals, per account."""
        self.terminated_at: dict[str, Any] = {}
        self.expired: set[str] = set()
        """Holds released because their capture window closed (``expire``)."""

    # --- helpers ------------------------------------------------------------------------

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _save(self, table: dict[str, S], snapshot: S) -> S:
        table[snapshot.id] = snapshot
        self.on_change(snapshot)
        return snapshot

    def _move(self, table: dict[str, S], snapshot: S, machine: Machine, to: str,
              **changes: Any) -> S:
        current: str = snapshot.status
        if not machine.allows(current, to):
            raise SandboxError(409, "invalid_transition",
                               f"{machine.entity} {snapshot.id} is {current}; cannot become {to}")
        return self._save(table, msgspec.structs.replace(
            snapshot, status=to, updated_at=self.clock.now(), **changes))

    @staticmethod
    def _get(table: dict[str, S], entity: str, entity_id: str) -> S:
        try:
            return table[entity_id]
        except KeyError:
            raise not_found(entity, entity_id) from None

    def customer(self, customer_id: str) -> CustomerSnapshot:
        return self._get(self.customers, "customer", customer_id)

    def account(self, account_id: str) -> AccountSnapshot:
        return self._get(self.accounts, "account", account_id)

    def card(self, card_id: str) -> CardSnapshot:
        return self._get(self.cards, "card", card_id)

    def authorisation(self, authorisation_id: str) -> AuthorisationSnapshot:
        return self._get(self.authorisations, "authorisation", authorisation_id)

    def transaction(self, transaction_id: str) -> TransactionSnapshot:
        return self._get(self.transactions, "transaction", transaction_id)

    # --- customers and accounts ---------------------------------------------------------

    def create_customer(self, external_id: str, chain_id: str | None) -> CustomerSnapshot:
        if any(c.external_id == external_id for c in self.customers.values()):
            raise SandboxError(409, "duplicate", f"customer {external_id!r} exists",
                               "externalId")
        now = self.clock.now()
        customer = self._save(self.customers, CustomerSnapshot(
            id=self._id(), external_id=external_id, chain_id=chain_id, status="initiating",
            challenge=f"cardledger-sandbox:{self.rng.getrandbits(64):016x}", created_at=now,
            updated_at=now))
        # Screening passes at once; verification (the signed challenge, simplified: the
        # simulator's verify or reject) moves it on.
        customer = self._move(self.customers, customer, CUSTOMER, "screening")
        return self._move(self.customers, customer, CUSTOMER, "verifying")

    def set_customer(self, customer_id: str, to: str) -> CustomerSnapshot:
        return self._move(self.customers, self.customer(customer_id), CUSTOMER, to)

    def create_account(self, customer_id: str, currency: str) -> AccountSnapshot:
        customer = self.customer(customer_id)
        if customer.status != "active":
            raise SandboxError(409, "invalid_transition",
                               f"customer {customer_id} is {customer.status}; cannot open an "
                               "account")
        now = self.clock.now()
        account = self._save(self.accounts, AccountSnapshot(
            id=self._id(), customer_id=customer_id, status="initiating", currencies=[currency],
            created_at=now, updated_at=now))
        self.movements[account.id] = Decimal(0)
        account = self._move(self.accounts, account, ACCOUNT, "pending")
        wallet = f"eip155:324:0x{self.rng.getrandbits(160):040x}"
        return self._move(self.accounts, account, ACCOUNT, "active", chain_id=wallet)

    def set_account(self, account_id: str, to: str) -> AccountSnapshot:
        return self._move(self.accounts, self.account(account_id), ACCOUNT, to)

    def deposit(self, account_id: str, amount: Decimal) -> Balance:
        self._require_active_account(account_id)
        self.movements[account_id] = EXACT.add(self.movements[account_id], amount)
        return self.balance(account_id)

    def withdraw(self, account_id: str, amount: Decimal) -> Balance:
        self._require_active_account(account_id)
        available = self._available(account_id)
        if amount > available:
            raise SandboxError(409, "insufficient_funds",
                               f"account {account_id} has {available} available", "amount")
        self.movements[account_id] = EXACT.subtract(self.movements[account_id], amount)
        return self.balance(account_id)

    def _require_active_account(self, account_id: str) -> AccountSnapshot:
        account = self.account(account_id)
        if account.status != "active":
            raise SandboxError(409, "invalid_transition",
                               f"account {account_id} is {account.status}")
        return account

    # --- cards --------------------------------------------------------------------------

    def create_card(self, account_id: str, card_type: str, billing: Address,
                    shipping: Address | None) -> CardSnapshot:
        self._require_active_account(account_id)
        if card_type != "virtual":
            raise SandboxError(400, "invalid_request", "physical cards are not offered yet",
                               "type")
        live = [c for c in self.cards.values() if c.account_id == account_id
                and c.type == card_type and not CARD.is_final(c.status)]
        if live:
            raise SandboxError(409, "duplicate",
                               f"account {account_id} already has virtual card {live[0].id}")
        now = self.clock.now()
        return self._save(self.cards, CardSnapshot(
            id=self._id(), account_id=account_id, type="virtual", billing_address=billing,
            shipping_address=shipping, status="issuing", created_at=now, updated_at=now))

    def set_card(self, card_id: str, to: str) -> CardSnapshot:
        card = self.card(card_id)
        changes: dict[str, Any] = {}
        if to == "active" and card.status == "issuing":
            changes = {"name": "Sandbox Holder", "network": "visa",
                       "masked_pan": f"530518******{self.rng.randrange(10_000):04d}",
                       "expiration_date": f"{self.clock.now().month:02d}/"
                                          f"{self.clock.now().year + 4}"}
        card = self._move(self.cards, card, CARD, to, **changes)
        if to == "terminated":
            self.terminated_at[card_id] = card.updated_at
        return card

    # --- authorisations and transactions ------------------------------------------------

    def authorise(self, card_id: str, amount: Decimal, currency: str,
                  merchant: Merchant) -> AuthorisationSnapshot:
        card = self.card(card_id)
        if card.status != "active":
            raise SandboxError(422, "declined", f"card {card_id} is {card.status}: declined")
        account = self.account(card.account_id)
        account_currency = account.currencies[0] if account.currencies else "EUR"
        rate = Decimal(1) if currency == account_currency else FX_RATES.get(
            (check_currency(currency), account_currency))
        if rate is None:
            raise SandboxError(400, "invalid_request", f"no rate from {currency}", "currency")
        # The processor's conversion rounds to cents; the ledger records both amounts.
        in_account = (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        if in_account > self._available(account.id):
            raise SandboxError(422, "declined", "insufficient funds: declined", "amount")
        now = self.clock.now()
        return self._save(self.authorisations, AuthorisationSnapshot(
            id=self._id(), account_id=account.id, card_id=card_id, status="pending",
            amount=amount_text(in_account), currency=account_currency,
            merchant_amount=amount_text(amount),
            merchant_currency=currency, exchange_rate=str(rate), merchant=merchant,
            created_at=now, updated_at=now))

    def capture(self, authorisation_id: str, amount: Decimal | None = None,
                ) -> AuthorisationSnapshot:
        hold = self.authorisation(authorisation_id)
        terminated = self.terminated_at.get(hold.card_id)
        if terminated is not None and self.clock.now() >= terminated + CAPTURE_AFTER_TERMINATION:
            raise SandboxError(409, "invalid_transition",
                               f"the capture window of card {hold.card_id} closed")
        captured = parse_amount(hold.amount) if amount is None else amount
        if hold.status == "pending":
            hold = self._move(self.authorisations, hold, AUTHORISATION, "capturing")
        hold = self._move(self.authorisations, hold, AUTHORISATION, "captured")
        self._post(hold.account_id, hold.card_id, hold.id, hold.id, "debit", captured, hold)
        return hold

    def amend(self, authorisation_id: str, amount: Decimal) -> AuthorisationSnapshot:
        """An incremental authorisation (or a partial reversal): a pending hold's amount
        becomes ``amount``, if the account can cover the increase."""
        hold = self.authorisation(authorisation_id)
        if hold.status != "pending":
            raise SandboxError(409, "invalid_transition",
                               f"authorisation {authorisation_id} is {hold.status}")
        increase = EXACT.subtract(amount, parse_amount(hold.amount))
        if increase > self._available(hold.account_id):
            raise SandboxError(422, "declined", "insufficient funds: declined", "amount")
        return self._save(self.authorisations, msgspec.structs.replace(
            hold, amount=amount_text(amount), updated_at=self.clock.now()))

    def force_post(self, card_id: str, amount: Decimal) -> TransactionSnapshot:
        """A merchant's debit with no authorisation (a force post): taken whatever the
        card's status or the account's funds."""
        card = self.card(card_id)
        if not 0 < amount < MAX_CARD_AMOUNT or amount != amount.quantize(CENTS):
            raise SandboxError(400, "invalid_request", f"a card debit is a positive amount in "
                               f"cents below {MAX_CARD_AMOUNT}", "amount")
        return self._post(card.account_id, card_id, self._id(), None, "debit", amount, None)

    def present_late(self, authorisation_id: str) -> TransactionSnapshot:
        """A merchant presents a hold for capture after it expired (a late presentment):
        the debit is posted against the authorisation all the same, which stays released."""
        hold = self.authorisation(authorisation_id)
        if authorisation_id not in self.expired:
            raise SandboxError(409, "invalid_transition",
                               f"authorisation {authorisation_id} has not expired")
        return self._post(hold.account_id, hold.card_id, self._id(), hold.id, "debit",
                          parse_amount(hold.amount), hold)

    def release(self, authorisation_id: str) -> AuthorisationSnapshot:
        hold = self._move(self.authorisations, self.authorisation(authorisation_id),
                          AUTHORISATION, "releasing")
        return self._move(self.authorisations, hold, AUTHORISATION, "released")

    def refund(self, transaction_id: str, amount: Decimal) -> TransactionSnapshot:
        original = self.transaction(transaction_id)
        if original.direction != "debit" or amount > parse_amount(original.amount):
            raise SandboxError(409, "invalid_transition",
                               "a refund returns at most the amount of a debit", "amount")
        return self._post(original.account_id, original.card_id, self._id(), None, "credit",
                          amount, None)

    def _post(self, account_id: str, card_id: str | None, transaction_id: str,
              authorisation_id: str | None, direction: str, amount: Decimal,
              hold: AuthorisationSnapshot | None) -> TransactionSnapshot:
        now = self.clock.now()
        fee = (amount * Decimal("0.01")).quantize(Decimal("0.000001"))
        return self._save(self.transactions, TransactionSnapshot(
            id=transaction_id, account_id=account_id, card_id=card_id,
            authorisation_id=authorisation_id, status="processing",
            direction="debit" if direction == "debit" else "credit",
            amount=amount_text(amount),
            currency=hold.currency if hold else self._currency(account_id),
            merchant_amount=hold.merchant_amount if hold else amount_text(amount),
            merchant_currency=hold.merchant_currency if hold else self._currency(account_id),
            exchange_rate=hold.exchange_rate if hold else "1",
            merchant=hold.merchant if hold else Merchant(), token_amount=amount_text(amount),
            token=TOKEN,
            fees=[Fee(type="network", token_amount=str(fee))],
            chain_transactions=[ChainTransaction(
                chain_id=f"eip155:324:0x{self.rng.getrandbits(256):064x}", created_at=now)],
            created_at=now, updated_at=now))

    def set_transaction(self, transaction_id: str, to: str) -> TransactionSnapshot:
        transaction = self.transaction(transaction_id)
        if to == "reversed" and transaction.status == "processed":
            transaction = self._move(self.transactions, transaction, TRANSACTION, "reversing")
        return self._move(self.transactions, transaction, TRANSACTION, to)

    # --- time ---------------------------------------------------------------------------

    def expire(self) -> list[AuthorisationSnapshot]:
        """Release the holds whose capture window has closed (30 days, or 30 days from the
        card's termination for holds live at that moment)."""
        now, released = self.clock.now(), []
        for hold in list(self.authorisations.values()):
            if hold.status != "pending":
                continue
            terminated = self.terminated_at.get(hold.card_id)
            expires = hold.created_at + HOLD_LIFETIME
            if terminated is not None and hold.created_at <= terminated < expires:
                expires = terminated + CAPTURE_AFTER_TERMINATION
            if now >= expires:
                released.append(self.release(hold.id))
                self.expired.add(hold.id)
        return released

    # --- the sandbox's own bookkeeping --------------------------------------------------

    def _currency(self, account_id: str) -> str:
        currencies = self.account(account_id).currencies
        return currencies[0] if currencies else "EUR"

    def _available(self, account_id: str) -> Decimal:
        b = self.balance(account_id)
        return Decimal(b.available)

    def balance(self, account_id: str) -> Balance:
        self.account(account_id)
        zero = Decimal(0)
        debits = credits = held = zero
        linked: dict[str, Decimal] = {}
        for t in self.transactions.values():
            if t.account_id != account_id or t.status not in COUNTED:
                continue
            amount = parse_amount(t.amount)
            if t.direction == "debit":
                debits = EXACT.add(debits, amount)
                if t.authorisation_id:
                    linked[t.authorisation_id] = EXACT.add(linked.get(t.authorisation_id, zero),
                                                           amount)
            else:
                credits = EXACT.add(credits, amount)
        for h in self.authorisations.values():
            if h.account_id == account_id and h.status in ("pending", "capturing", "releasing"):
                held = EXACT.add(held, max(zero, EXACT.subtract(parse_amount(h.amount),
                                                                linked.get(h.id, zero))))
        deposits = self.movements.get(account_id, zero)
        posted = EXACT.add(EXACT.subtract(deposits, debits), credits)
        money = amount_text
        return Balance(account_id, self._currency(account_id), money(deposits), money(debits),
                       money(credits), money(posted), money(held),
                       money(EXACT.subtract(posted, held)))

