"""The card programme's events: everything the ledger records, past tense.

Two families:

- **Observed** events record what the processor reported about an entity (from a webhook or a
  fetch). One event per state the entity was seen in, stamped with the entity's ``updatedAt``
  (``at``). They are never refused: a ``stale`` one (older than what we know) is recorded but
  does not move the entity's current state, and one that contradicts what we know carries
  ``anomalies``.
- **Local** events record what the ledger itself decided: requests to push to the processor
  (``...Requested``), deposits and withdrawals, and hold expiry.

Every event names the entity ids it concerns and carries its business time ``at``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from ledger.observations import (
    AccountStatus,
    Address,
    AuthorisationStatus,
    CardStatus,
    CustomerStatus,
    Direction,
    FeeType,
    Merchant,
    TransactionStatus,
)
from ledger.store import Event, EventRegistry


class Anomaly(enum.Enum):
    """Ways a processor fact can contradict what the ledger knew. Recorded, never refused."""

    CAPTURE_AFTER_EXPIRY = "capture_after_expiry"
    CAPTURE_ABOVE_HOLD = "capture_above_hold"
    UNKNOWN_AUTHORISATION = "unknown_authorisation"
    AUTHORISATION_AFTER_TERMINATION = "authorisation_after_termination"
    FINAL_STATE_CHANGED = "final_state_changed"


class DomainEvent(Event, frozen=True, kw_only=True):
    at: datetime
    """Business time: when it happened."""


class Observed(DomainEvent, frozen=True, kw_only=True):
    """What the processor reported; ``at`` is the entity's ``updatedAt`` (or ``createdAt``)."""

    stale: bool = False
    """Older than the entity's current state: history, not the present."""
    anomalies: tuple[Anomaly, ...] = ()
    observed_at: datetime | None = None
    """The report's ``updatedAt`` when it differs from ``at``: an entity's first event is
    dated at its creation (``createdAt``) but ordered, and deduplicated, by its report."""

    @property
    def reported_at(self) -> datetime:
        """The time that orders this report among the entity's others."""
        return self.observed_at or self.at


# --- customers and accounts ------------------------------------------------------------------


class CustomerRegistrationRequested(DomainEvent, frozen=True, kw_only=True):
    request_id: uuid.UUID
    external_id: str
    wallet: str
    """The customer's wallet, a CAIP-10 account id."""


class CustomerStatusChanged(Observed, frozen=True, kw_only=True):
    customer_id: str
    status: CustomerStatus
    external_id: str | None = None


class CustomerDeactivationRequested(DomainEvent, frozen=True, kw_only=True):
    customer_id: str


class AccountOpeningRequested(DomainEvent, frozen=True, kw_only=True):
    request_id: uuid.UUID
    customer_id: str
    currency: str


class AccountStatusChanged(Observed, frozen=True, kw_only=True):
    account_id: str
    customer_id: str
    status: AccountStatus
    currency: str | None = None
    chain_id: str | None = None


class FundsDeposited(DomainEvent, frozen=True, kw_only=True):
    account_id: str
    amount: Decimal
    currency: str
    chain_transaction: str
    """The on-chain transfer (CAIP chain id + transaction hash)."""


class FundsWithdrawn(DomainEvent, frozen=True, kw_only=True):
    account_id: str
    amount: Decimal
    currency: str
    chain_transaction: str


# --- cards -----------------------------------------------------------------------------------


class CardIssuanceRequested(DomainEvent, frozen=True, kw_only=True):
    request_id: uuid.UUID
    account_id: str
    billing_address: Address
    card_type: Literal["virtual", "physical"] = "virtual"


class CardObserved(Observed, frozen=True, kw_only=True):
    card_id: str
    account_id: str


class CardIssuanceStarted(CardObserved, frozen=True, kw_only=True):
    card_type: str = "virtual"


class CardIssued(CardObserved, frozen=True, kw_only=True):
    masked_pan: str | None = None
    expiration_date: str | None = None
    network: str | None = None


class CardIssueFailed(CardObserved, frozen=True, kw_only=True):
    pass


class CardDeactivated(CardObserved, frozen=True, kw_only=True):
    pass


class CardActivated(CardObserved, frozen=True, kw_only=True):
    pass


class CardSuspended(CardObserved, frozen=True, kw_only=True):
    pass


class CardBlocked(CardObserved, frozen=True, kw_only=True):
    pass


class CardTerminated(CardObserved, frozen=True, kw_only=True):
    pass


class CardRequest(DomainEvent, frozen=True, kw_only=True):
    card_id: str
    account_id: str
    request_id: uuid.UUID


class CardDeactivationRequested(CardRequest, frozen=True, kw_only=True):
    pass


class CardActivationRequested(CardRequest, frozen=True, kw_only=True):
    pass


class CardTerminationRequested(CardRequest, frozen=True, kw_only=True):
    pass


CARD_STATUS_EVENTS: dict[CardStatus, type[CardObserved]] = {
    "issuing": CardIssuanceStarted,
    "active": CardActivated,  # CardIssued for the first activation
    "issue_failed": CardIssueFailed,
    "inactive": CardDeactivated,
    "suspended": CardSuspended,
    "blocked": CardBlocked,
    "terminated": CardTerminated,
}
CARD_STATUS_OF: dict[type[CardObserved], CardStatus] = {
    **{event: status for status, event in CARD_STATUS_EVENTS.items()}, CardIssued: "active"}


# --- authorisations (holds) ------------------------------------------------------------------


class HoldObserved(Observed, frozen=True, kw_only=True):
    authorisation_id: str
    account_id: str
    card_id: str
    amount: Decimal
    """The hold's amount as known at ``at``, in the account's currency."""
    currency: str


class HoldPlaced(HoldObserved, frozen=True, kw_only=True):
    """``at`` is the hold's creation, which starts its expiry clock."""

    merchant_amount: Decimal
    merchant_currency: str
    exchange_rate: Decimal
    merchant: Merchant = Merchant()


class HoldAmended(HoldObserved, frozen=True, kw_only=True):
    """The amount changed while the hold was pending."""

    merchant_amount: Decimal | None = None
    exchange_rate: Decimal | None = None


class HoldCaptureStarted(HoldObserved, frozen=True, kw_only=True):
    pass


class HoldCaptured(HoldObserved, frozen=True, kw_only=True):
    pass


class HoldReleaseStarted(HoldObserved, frozen=True, kw_only=True):
    pass


class HoldReleased(HoldObserved, frozen=True, kw_only=True):
    pass


class HoldExpired(DomainEvent, frozen=True, kw_only=True):
    """The ledger's own record that a hold reached its ``expiresAt`` (``at``) uncaptured.

    Not a processor state: a capture can still arrive afterwards, and is then an anomaly.
    """

    authorisation_id: str
    account_id: str
    card_id: str
    amount: Decimal
    currency: str


HOLD_STATUS_EVENTS: dict[AuthorisationStatus, type[HoldObserved]] = {
    "pending": HoldAmended,  # HoldPlaced when first seen
    "capturing": HoldCaptureStarted,
    "captured": HoldCaptured,
    "releasing": HoldReleaseStarted,
    "released": HoldReleased,
}
HOLD_STATUS_OF: dict[type[HoldObserved], AuthorisationStatus] = {
    **{event: status for status, event in HOLD_STATUS_EVENTS.items()}, HoldPlaced: "pending"}


# --- transactions ----------------------------------------------------------------------------


class FeePaid(msgspec.Struct, frozen=True, gc=False):
    type: FeeType
    token_amount: Decimal


class TransactionObserved(Observed, frozen=True, kw_only=True):
    transaction_id: str
    account_id: str
    authorisation_id: str | None
    direction: Direction
    amount: Decimal
    currency: str


class TransactionPosted(TransactionObserved, frozen=True, kw_only=True):
    card_id: str | None = None
    merchant_amount: Decimal | None = None
    merchant_currency: str | None = None
    exchange_rate: Decimal = Decimal(1)
    merchant: Merchant = Merchant()
    token_amount: Decimal = Decimal(0)
    token: str | None = None
    """The settled token, a CAIP-19 asset id."""
    fees: tuple[FeePaid, ...] = ()
    chain_transactions: tuple[str, ...] = ()


class TransactionProcessed(TransactionObserved, frozen=True, kw_only=True):
    pass


class TransactionReversalStarted(TransactionObserved, frozen=True, kw_only=True):
    pass


class TransactionReversed(TransactionObserved, frozen=True, kw_only=True):
    pass


TRANSACTION_STATUS_EVENTS: dict[TransactionStatus, type[TransactionObserved]] = {
    "processing": TransactionPosted,
    "processed": TransactionProcessed,
    "reversing": TransactionReversalStarted,
    "reversed": TransactionReversed,
}
TRANSACTION_STATUS_OF: dict[type[TransactionObserved], TransactionStatus] = {
    event: status for status, event in TRANSACTION_STATUS_EVENTS.items()}


# --- the link with the processor ------------------------------------------------------------


class ObservationReceived(DomainEvent, frozen=True, kw_only=True):
    """A processor report (a webhook delivery) was received: recorded in the same batch as
    what it taught us, under an id derived from its ``eventId``, so a redelivery is a
    duplicate the store recognises and writes nothing for."""

    event_id: str
    webhook_type: str
    entity_id: str
    content: str | None = None
    """A digest of the delivered snapshot: the same ``eventId`` with other content is another
    delivery that reuses the id, refused rather than taken for this one."""


class RequestAccepted(DomainEvent, frozen=True, kw_only=True):
    """The processor carried out a request the ledger sent (the outbox)."""

    request_id: uuid.UUID
    request_type: str
    remote_id: str | None = None


class RequestRefused(DomainEvent, frozen=True, kw_only=True):
    """The processor refused a request the ledger sent, and why."""

    request_id: uuid.UUID
    request_type: str
    status: int
    reason: str


DOMAIN_EVENTS: tuple[type[Event], ...] = (
    CustomerRegistrationRequested, CustomerStatusChanged, CustomerDeactivationRequested,
    AccountOpeningRequested, AccountStatusChanged, FundsDeposited, FundsWithdrawn,
    CardIssuanceRequested, CardIssuanceStarted, CardIssued, CardIssueFailed, CardDeactivated,
    CardActivated, CardSuspended, CardBlocked, CardTerminated, CardDeactivationRequested,
    CardActivationRequested, CardTerminationRequested,
    HoldPlaced, HoldAmended, HoldCaptureStarted, HoldCaptured, HoldReleaseStarted, HoldReleased,
    HoldExpired,
    TransactionPosted, TransactionProcessed, TransactionReversalStarted, TransactionReversed,
    ObservationReceived, RequestAccepted, RequestRefused,
)

DOMAIN_REGISTRY = EventRegistry(DOMAIN_EVENTS)
"""The registry of the card programme's events: pass it to ``open_store``."""
