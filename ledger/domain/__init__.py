"""The card programme's rules, as pure deciders: ``decide(command, state) -> events`` and
``evolve(state, event) -> state`` for each entity, with time passed in and no I/O.

Local commands (``TerminateCard``, ``RecordDeposit``, ...) are validated: an impossible one
raises ``InvalidTransitionError`` naming the entity, its state and the command, and decides
nothing. Observations (``ObserveCard``, ...) are facts and are never refused; see
``lifecycle`` for how they are ordered and ``ledger.events.Anomaly`` for what gets flagged.
"""

from ledger.domain import account, card, customer, hold, transaction
from ledger.domain.hold import HOLD_WINDOW, HoldPolicy
from ledger.domain.lifecycle import (
    ACCOUNT,
    AUTHORISATION,
    CARD,
    CUSTOMER,
    TRANSACTION,
    Lifecycle,
)

__all__ = [
    "ACCOUNT", "AUTHORISATION", "CARD", "CUSTOMER", "HOLD_WINDOW", "TRANSACTION", "HoldPolicy",
    "Lifecycle", "account", "card", "customer", "hold", "transaction",
]
