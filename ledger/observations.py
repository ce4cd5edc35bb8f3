"""What the processor reports: entity snapshots, in the processor's own JSON shape.

A webhook body or a fetched entity decodes straight into one of these (``rename="camel"``
maps ``updated_at`` to ``updatedAt``). They are facts to record, never to refuse, but they must
be well-formed: amounts are decimal *strings* (a JSON number is refused, never read as a
float), timestamps carry a timezone, states are the documented ones.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from ledger.errors import InvalidSnapshotError
from ledger.money import ISO_4217, parse_amount, parse_token_amount

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


# --- what a snapshot may carry, beyond its shape --------------------------------------------

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No processor report is dated before this."""
MAX_AHEAD = timedelta(days=1)
"""How far past the ledger's own clock a report may be dated (clocks drift; nothing more)."""
MAX_AMOUNT = 10**12
"""Every amount, rate and token amount is below this (a trillion): far above any payment."""
MAX_LIST = 20
"""At most this many currencies, fees or chain transactions in one snapshot."""
MAX_TEXT = 256
"""At most this many characters in any free text (names, addresses, merchant fields)."""
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Entity and event ids: the processor's are UUIDs; the ledger takes any id of up to 64
letters, digits, ``-`` and ``_`` (so test ids like ``a1`` work), and nothing else."""

ID_FIELDS = ("id", "customer_id", "account_id", "card_id", "authorisation_id")
AMOUNT_FIELDS = ("amount", "merchant_amount", "exchange_rate", "token_amount")
CURRENCY_FIELDS = ("currency", "merchant_currency")


def check_snapshot(snapshot: AnySnapshot, now: datetime) -> None:
    """Refuse (``InvalidSnapshotError``, naming the field) what decodes but no processor
    sends: ids outside the id format, dates outside [2000-01-01, now + 1 day], amounts of a
    trillion or more, unknown currencies, overlong lists and text. Checked before anything is
    decided, so that a refused report records nothing and no recorded one can break a rule
    downstream (a hold dated 9999-12-31 would expire past the calendar's end)."""
    latest = now + MAX_AHEAD
    for field in ("created_at", "updated_at"):
        _check_time(field, getattr(snapshot, field), latest)
    for field in ID_FIELDS:
        value = getattr(snapshot, field, None)
        if value is not None and not ID.fullmatch(value):
            raise InvalidSnapshotError(_camel(field), f"{_shown(value)} is not an id (1 to 64 "
                                       "letters, digits, '-' or '_')")
    for field in AMOUNT_FIELDS:
        value = getattr(snapshot, field, None)
        if value is not None:
            _check_amount(_camel(field), value)
    for field in CURRENCY_FIELDS:
        value = getattr(snapshot, field, None)
        if value is not None and value not in ISO_4217:
            raise InvalidSnapshotError(_camel(field), f"{value!r} is not an ISO 4217 currency")
    for field in ("currencies", "fees", "chain_transactions"):
        values = getattr(snapshot, field, None) or []
        if len(values) > MAX_LIST:
            raise InvalidSnapshotError(_camel(field), f"{len(values)} entries; at most "
                                       f"{MAX_LIST}")
    for currency in getattr(snapshot, "currencies", None) or []:
        if currency not in ISO_4217:
            raise InvalidSnapshotError("currencies", f"{currency!r} is not an ISO 4217 "
                                       "currency")
    for fee in getattr(snapshot, "fees", None) or []:
        _check_amount("fees.tokenAmount", fee.token_amount)
    for chain in getattr(snapshot, "chain_transactions", None) or []:
        if chain.created_at is not None:
            _check_time("chainTransactions.createdAt", chain.created_at, latest)
    _check_text(snapshot, "")


def _check_time(field: str, value: datetime, latest: datetime) -> None:
    if not EARLIEST <= value <= latest:
        raise InvalidSnapshotError(_camel(field), f"{value.isoformat()} is outside "
                                   f"[{EARLIEST:%Y-%m-%d}, {latest.isoformat()}]")


def _check_amount(field: str, text: str) -> None:
    if parse_amount(text) >= MAX_AMOUNT:
        raise InvalidSnapshotError(field, f"{_shown(text)} is not below {MAX_AMOUNT:,}")


def _check_text(value: msgspec.Struct, path: str) -> None:
    """Every string field (nested structs included) within ``MAX_TEXT`` characters."""
    for field in value.__struct_fields__:
        item = getattr(value, field)
        if isinstance(item, str) and len(item) > MAX_TEXT:
            raise InvalidSnapshotError(path + _camel(field), f"{len(item)} characters; at "
                                       f"most {MAX_TEXT}")
        if isinstance(item, msgspec.Struct):
            _check_text(item, f"{path}{_camel(field)}.")


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
