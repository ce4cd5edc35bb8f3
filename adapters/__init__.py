"""cardledger for a service that embeds it: ``CardLedger`` is the front door.

    from adapters import CardLedger, AuthorisationSnapshot

The rest of this package (the processor client, the receiver, the outbox, the sync, the
sandbox, the command line) is what the front door and the CLI are built from.
"""

from adapters.service.card_ledger import CardLedger, Change
from adapters.service.commands import MoneyRecorded
from ledger.clock import Clock, ManualClock
from ledger.errors import (
    ConflictError,
    InsufficientFundsError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    StoreUnavailableError,
    VerificationFailedError,
)
from ledger.observations import (
    AccountSnapshot,
    Address,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    Merchant,
    TransactionSnapshot,
)
from projections.views import AccountView, AnomalyView, Balance, CardView, HoldView

__all__ = [
    "CardLedger", "Change", "MoneyRecorded", "Clock", "ManualClock",
    "AccountSnapshot", "Address", "AuthorisationSnapshot", "CardSnapshot", "CustomerSnapshot",
    "Merchant", "TransactionSnapshot",
    "AccountView", "AnomalyView", "Balance", "CardView", "HoldView",
    "ConflictError", "InsufficientFundsError", "InvalidInputError", "LedgerError", "NotFoundError",
    "StoreUnavailableError", "VerificationFailedError",
]
