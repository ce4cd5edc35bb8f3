"""cardledger for a service that embeds it: one import is enough.

    from adapters import CardLedger, AuthorisationSnapshot, ledger_lifespan, WebhookApp

``CardLedger`` is the front door; everything its signatures mention (snapshots, views,
results, the clock, the processor client, every error) is importable from here. The rest of
this package (the receiver, the outbox, the sync, the sandbox, the command line) is what the
front door and the CLI are built from.
"""

from adapters.processor.client import (
    ClientConfig,
    ProcessorClient,
)
from adapters.processor.errors import (
    ProcessorError,
)
from adapters.processor.sync import (
    SyncReport,
)
from adapters.service.asgi import (
    LedgerState,
    WebhookApp,
    current_ledger,
    ledger_lifespan,
    problem_response,
)
from adapters.service.card_ledger import (
    CardLedger,
    Change,
)
from adapters.service.commands import (
    CardAction,
    MoneyRecorded,
)
from adapters.service.statements import Statement
from ledger.clock import (
    Clock,
    ManualClock,
)
from ledger.domain.hold import (
    DEFAULT_POLICY,
    HoldPolicy,
)
from ledger.errors import (
    ConflictError,
    CurrencyMismatchError,
    DomainError,
    DuplicateInBatchError,
    DuplicateStreamError,
    EmptyBatchError,
    EventIdConflictError,
    InsufficientFundsError,
    InternalError,
    InvalidAmountError,
    InvalidAppendError,
    InvalidIdentifierError,
    InvalidInputError,
    InvalidPayloadError,
    InvalidPositionError,
    InvalidSnapshotError,
    InvalidStreamNameError,
    InvalidTransitionError,
    LedgerError,
    LimitExceededError,
    NotFoundError,
    PartialDuplicateError,
    SchemaError,
    StoreClosedError,
    StoreError,
    StoreFailedError,
    StoreUnavailableError,
    StoreUrlError,
    TrackingConflictError,
    TransferConflictError,
    UnauthorisedError,
    UnavailableError,
    UnknownCurrencyError,
    UnknownEventTypeError,
    VerificationFailedError,
    WrongExpectedVersionError,
)
from ledger.events import (
    AccountOpeningRequested,
    CardIssuanceRequested,
    CardRequest,
    CustomerRegistrationRequested,
    FundsDeposited,
    FundsWithdrawn,
)
from ledger.interop import (
    JSONReady,
    json_schema,
)
from ledger.observations import (
    AccountSnapshot,
    Address,
    AnySnapshot,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    Merchant,
    TransactionSnapshot,
)
from ledger.store import (
    VerifyReport,
)
from ledger.transparency.checkpoint import OtherLedgerError
from ledger.transparency.evidence import ProofError
from ledger.transparency.note import NoteError, SignatureError, SigningKey, VerifierKey
from projections.postings import (
    Entry,
    Posting,
)
from projections.statement import Figures, StatementLine
from projections.views import (
    AccountView,
    AnomalyView,
    Balance,
    CardView,
    HoldView,
    TokenTotal,
)

__all__ = [
    "ClientConfig",
    "ProcessorClient",
    "ProcessorError",
    "SyncReport",
    "LedgerState",
    "WebhookApp",
    "current_ledger",
    "ledger_lifespan",
    "problem_response",
    "CardLedger",
    "Change",
    "CardAction",
    "MoneyRecorded",
    "Clock",
    "ManualClock",
    "DEFAULT_POLICY",
    "HoldPolicy",
    "ConflictError",
    "CurrencyMismatchError",
    "DomainError",
    "DuplicateInBatchError",
    "DuplicateStreamError",
    "EmptyBatchError",
    "EventIdConflictError",
    "InsufficientFundsError",
    "InternalError",
    "InvalidAmountError",
    "InvalidAppendError",
    "InvalidIdentifierError",
    "InvalidInputError",
    "InvalidPayloadError",
    "InvalidPositionError",
    "InvalidSnapshotError",
    "InvalidStreamNameError",
    "InvalidTransitionError",
    "LedgerError",
    "LimitExceededError",
    "NotFoundError",
    "PartialDuplicateError",
    "SchemaError",
    "StoreClosedError",
    "StoreError",
    "StoreFailedError",
    "StoreUnavailableError",
    "StoreUrlError",
    "TransferConflictError",
    "UnauthorisedError",
    "UnavailableError",
    "UnknownCurrencyError",
    "UnknownEventTypeError",
    "VerificationFailedError",
    "TrackingConflictError",
    "WrongExpectedVersionError",
    "AccountOpeningRequested",
    "CardIssuanceRequested",
    "CardRequest",
    "CustomerRegistrationRequested",
    "FundsDeposited",
    "FundsWithdrawn",
    "JSONReady",
    "json_schema",
    "AccountSnapshot",
    "Address",
    "AnySnapshot",
    "AuthorisationSnapshot",
    "CardSnapshot",
    "CustomerSnapshot",
    "Merchant",
    "TransactionSnapshot",
    "VerifyReport",
    "SigningKey",
    "VerifierKey",
    "NoteError",
    "SignatureError",
    "ProofError",
    "OtherLedgerError",
    "Entry",
    "Posting",
    "Statement",
    "StatementLine",
    "Figures",
    "AccountView",
    "AnomalyView",
    "Balance",
    "CardView",
    "HoldView",
    "TokenTotal",
]
