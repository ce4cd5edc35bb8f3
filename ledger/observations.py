"""What the processor reports: entity snapshots, in the processor's own JSON shape.

A webhook body or a fetched entity decodes straight into one of these (``rename="camel"``
maps ``updated_at`` to ``updatedAt``). They are facts to record, never to refuse, but they must
be well-formed, and the types say what that means, so that decoding checks it and the JSON
schema states it: amounts are decimal *strings* below a trillion (a JSON number is refused,
never read as a float), ids are short and plain, text and lists are bounded, timestamps carry
a timezone, states are the documented ones. What no type can say (a date within the ledger's
clock, a currency in ISO 4217's table) ``check_snapshot`` adds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from ledger.errors import InvalidSnapshotError
from ledger.money import ISO_4217, MAX_AMOUNT, parse_amount, parse_token_amount

MAX_LIST = 20
"""At most this many currencies, fees or chain transactions in one snapshot."""
MAX_TEXT = 256
"""At most this many characters in any free text (names, addresses, merchant fields)."""
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Entity and event ids: the processor's are UUIDs; the ledger takes any id of up to 64
letters, digits, ``-`` and ``_`` (so test ids like ``a1`` work), and nothing else."""

DecimalText = Annotated[str, msgspec.Meta(
    pattern=rf"^(0|[1-9][0-9]{{0,{len(str(MAX_AMOUNT)) - 2}}})(\.[0-9]{{1,30}})?$",
    description=f"A decimal string below {MAX_AMOUNT:,}")]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$",
                                           extra_json_schema={"enum": sorted(ISO_4217)})]
EntityId = Annotated[str, msgspec.Meta(pattern=f"^{ID.pattern}$")]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]

CustomerStatus = Literal["initiating", "screening", "verifying", "active", "inactive", "rejected"]
AccountStatus = Literal["initiating", "pending", "active", "inactive", "failed", "closed"]
CardStatus = Literal["issuing", "active", "issue_failed", "inactive", "suspended", "blocked",
                     "terminated"]
AuthorisationStatus = Literal["pending", "capturing", "captured", "releasing", "released"]
TransactionStatus = Literal["processing", "processed", "reversing", "reversed"]
Direction = Literal["debit", "credit"]
FeeType = Literal["partner", "service", "network"]


_OWNERS = (("account_id", "account"), ("card_id", "card"), ("authorisation_id", "hold"),
           ("customer_id", "customer"))


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """Fields every processor entity has."""

    id: EntityId
    created_at: Timestamp
    updated_at: Timestamp

    def __repr__(self) -> str:
        """One short line (a falsifying example of a hundred snapshots stays readable): the
        kind, the id, the status, the amount, the entities it belongs to, its time."""
        facts = [f"{self.id[:8]}", str(getattr(self, "status", ""))]
        if (amount := getattr(self, "amount", None)) is not None:
            facts.append(f"{amount} {getattr(self, 'currency', '')}".strip())
        facts += [f"{name}={value[:8]}" for field, name in _OWNERS
                  if isinstance(value := getattr(self, field, None), str)]
        facts.append(f"at {self.updated_at:%Y-%m-%dT%H:%M:%S}")
        return f"{type(self).__name__.removesuffix('Snapshot')}({', '.join(facts)})"


class CustomerSnapshot(Snapshot, frozen=True, kw_only=True):
    external_id: Text | None = None
    chain_id: Text | None = None
    status: CustomerStatus
    challenge: Text | None = None
    """What the customer must sign to prove they hold ``chainId`` (the verification step)."""


class AccountSnapshot(Snapshot, frozen=True, kw_only=True):
    customer_id: EntityId
    chain_id: Text | None = None
    status: AccountStatus
    type: Text = "card_account"
    currencies: Annotated[list[CurrencyCode], msgspec.Meta(max_length=MAX_LIST)] = []


class Address(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    first_line: Text
    second_line: Text | None = None
    city: Text
    state: Text | None = None
    country: Text
    post_code: Text


class CardSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: EntityId
    type: Literal["virtual", "physical"]
    name: Text | None = None
    network: Text | None = None
    masked_pan: Text | None = None
    expiration_date: Text | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    status: CardStatus


class Merchant(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: Text | None = None
    name: Text | None = None
    mcc: int | None = None
    country: Text | None = None
    city: Text | None = None


class AuthorisationSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: EntityId
    card_id: EntityId
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
    chain_id: Text
    created_at: Timestamp | None = None


class TransactionSnapshot(Snapshot, frozen=True, kw_only=True):
    account_id: EntityId
    card_id: EntityId | None = None
    authorisation_id: EntityId | None = None
    status: TransactionStatus
    direction: Direction
    amount: DecimalText
    currency: CurrencyCode
    merchant_amount: DecimalText | None = None
    merchant_currency: CurrencyCode | None = None
    exchange_rate: DecimalText = "1"
    merchant: Merchant = Merchant()
    token_amount: DecimalText = "0"
    token: Text | None = None
    fees: Annotated[list[Fee], msgspec.Meta(max_length=MAX_LIST)] = []
    chain_transactions: Annotated[list[ChainTransaction], msgspec.Meta(max_length=MAX_LIST)] = []

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


# --- what a snapshot may carry, beyond what its types say -------------------------------------

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No processor report is dated before this."""
MAX_AHEAD = timedelta(days=1)
"""How far past the ledger's own clock a report may be dated (clocks drift; nothing more)."""
_ENCODER = msgspec.json.Encoder()
_FIELD = re.compile(r"at `\$\.([^`]+)`")


def field_of(error: msgspec.ValidationError) -> str | None:
    """The field a decoding error names (msgspec says ``... - at `$.merchant.name```)."""
    found = _FIELD.search(str(error))
    return found.group(1) if found else None


def check_snapshot(snapshot: AnySnapshot, now: datetime) -> None:
    """Refuse (``InvalidSnapshotError``, naming the field) a snapshot made in Python that its
    types refuse (decoding one has checked those already), then what no type can say
    (``check_rules``)."""
    if type(snapshot) not in KINDS:
        raise InvalidSnapshotError("snapshot", f"{type(snapshot).__name__} is not a processor "
                                   f"snapshot ({', '.join(k.__name__ for k in KINDS)})")
    try:
        msgspec.json.decode(_ENCODER.encode(snapshot), type=type(snapshot))
    except msgspec.ValidationError as exc:
        raise InvalidSnapshotError(field_of(exc) or "snapshot",
                                   str(exc).partition(" - at ")[0]) from None
    except TypeError as exc:  # not even encodable (a float, an object where text goes)
        raise InvalidSnapshotError("snapshot", str(exc)) from None
    check_rules(snapshot, now)


def check_rules(snapshot: AnySnapshot, now: datetime) -> None:
    """Refuse (``InvalidSnapshotError``, naming the field) what decodes but no processor
    sends, and no type can say: dates outside [2000-01-01, now + 1 day], currencies outside
    ISO 4217. Checked before anything is decided, so that a refused report records nothing
    and no recorded one can break a rule downstream (a hold dated 9999-12-31 would expire
    past the calendar's end)."""
    latest = now + MAX_AHEAD
    for field in ("created_at", "updated_at"):
        _check_time(field, getattr(snapshot, field), latest)
    for field in ("currency", "merchant_currency"):
        value = getattr(snapshot, field, None)
        if value is not None and value not in ISO_4217:
            raise InvalidSnapshotError(_camel(field), f"{value!r} is not an ISO 4217 currency")
    for currency in getattr(snapshot, "currencies", None) or []:
        if currency not in ISO_4217:
            raise InvalidSnapshotError("currencies", f"{currency!r} is not an ISO 4217 "
                                       "currency")
    for chain in getattr(snapshot, "chain_transactions", None) or []:
        if chain.created_at is not None:
            _check_time("chainTransactions.createdAt", chain.created_at, latest)


def _check_time(field: str, value: datetime, latest: datetime) -> None:
    if not EARLIEST <= value <= latest:
        raise InvalidSnapshotError(_camel(field), f"{value.isoformat()} is outside "
                                   f"[{EARLIEST:%Y-%m-%d}, {latest.isoformat()}]")


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)
