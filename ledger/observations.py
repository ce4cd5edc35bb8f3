"""What the processor reports: entity snapshots, in the processor's own JSON shape.

A webhook body or a fetched entity decodes straight into one of these (``rename="camel"``
maps ``updated_at`` to ``updatedAt``). They are facts to record, never to refuse, but they must
be well-formed: amounts are decimal *strings* (a JSON number is refused, never read as a
float), timestamps carry a timezone, states are the documented ones.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from ledger.money import parse_amount, parse_token_amount

DecimalText = Annotated[str, msgspec.Meta(pattern=r"^(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?$")]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]

CustomerStatus = Literal["initiating", "screening", "verifying", "active", "inactive", "rejected"]
AccountStatus = Literal["initiating", "pending", "active", "inactive", "failed", "closed"]
CardStatus = Literal["issuing", "active", "issue_failed", "inactive", "suspended", "blocked",
                     "terminated"]
AuthorisationStatus = Literal["pending", "capturing", "captured", "releasing", "released"]
TransactionStatus = Literal["processing", "processed", "reversing", "reversed"]
Direction = Literal["debit", "credit"]
FeeType = Literal["partner", "service", "network"]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """Fields every processor entity has."""

    id: str
    created_at: Timestamp
    updated_at: Timestamp


class CustomerSnapshot(Snapshot, frozen=True, kw_only=True):
    external_id: str | None = None
    chain_id: str | None = None
    status: CustomerStatus
    challenge: str | None = None
    """What the customer must sign to prove they hold ``chainId`` (the verification step)."""


class AccountSnapshot(Snapshot, frozen=True, kw_only=True):
    customer_id: str
    chain_id: str | None = None
    status: AccountStatus
    type: str = "card_account"
    currencies: list[CurrencyCode] = []


class Address(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    first_line: str
    second_line: str | None = None
    city: str
    state: str | None = None
    country: str
    post_code: str


class CardSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: str
    type: Literal["virtual", "physical"]
    name: str | None = None
    network: str | None = None
    masked_pan: str | None = None
    expiration_date: str | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    status: CardStatus


class Merchant(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str | None = None
    name: str | None = None
    mcc: int | None = None
    country: str | None = None
    city: str | None = None


class AuthorisationSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: str
    card_id: str
    status: AuthorisationStatus
    amount: DecimalText
    currency: CurrencyCode
    merchant_amount: DecimalText
    merchant_currency: CurrencyCode
    exchange_rate: DecimalText = "1"
    merchant: Merchant = Merchant()

    @property
    def amount_value(self) -> Decimal:
        return parse_amount(self.amount)


class Fee(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    type: FeeType
    token_amount: DecimalText


class ChainTransaction(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    chain_id: str
    created_at: Timestamp | None = None


class TransactionSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: str
    card_id: str | None = None
    authorisation_id: str | None = None
    status: TransactionStatus
    direction: Direction
    amount: DecimalText
    currency: CurrencyCode
    merchant_amount: DecimalText | None = None
    merchant_currency: CurrencyCode | None = None
    exchange_rate: DecimalText = "1"
    merchant: Merchant = Merchant()
    token_amount: DecimalText = "0"
    token: str | None = None
    fees: list[Fee] = []
    chain_transactions: list[ChainTransaction] = []

    @property
    def token_amount_value(self) -> Decimal:
        return parse_token_amount(self.token_amount)


AnySnapshot = (CustomerSnapshot | AccountSnapshot | CardSnapshot | AuthorisationSnapshot
               | TransactionSnapshot)

KINDS: dict[type[Snapshot], str] = {
    CustomerSnapshot: "customer", AccountSnapshot: "account", CardSnapshot: "card",
    AuthorisationSnapshot: "authorisation", TransactionSnapshot: "transaction"}
"""Each entity kind's name: its webhook type is ``<kind>.updated``, its stream ``<kind>-<id>``,
its API path ``/v1/<kind>s/<id>``."""

BY_WEBHOOK_TYPE: dict[str, type[AnySnapshot]] = {
    f"{kind}.updated": snapshot_type for snapshot_type, kind in KINDS.items()}  # type: ignore[misc]


def kind_of(snapshot: AnySnapshot) -> str:
    return KINDS[type(snapshot)]


def webhook_type(snapshot: AnySnapshot) -> str:
    return f"{kind_of(snapshot)}.updated"
