"""The processor's rules as the sandbox plays them, stated here from the API reference
(``offblocks-api.md``, "States and transitions"), not taken from the ledger: the sandbox is
what the ledger is tested against, and a rule both shared would be wrong in both, with every
end-to-end test agreeing.

Where the reference is silent the sandbox chooses, and says so: holds are released 30 days
after they were made (the reference documents no expiry state).
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated

import msgspec

from adapters.sandbox.errors import SandboxError
from ledger.money import ISO_4217  # a table of the standard's codes, not a ledger rule


@dataclass(frozen=True)
class Machine:
    """An entity's documented states, and where each may go."""

    entity: str
    moves: dict[str, frozenset[str]]

    def allows(self, source: str, target: str) -> bool:
        return target in self.moves[source]

    def is_final(self, status: str) -> bool:
        return not self.moves[status]


def _machine(entity: str, moves: dict[str, str]) -> Machine:
    return Machine(entity, {state: frozenset(to.split()) for state, to in moves.items()})


CUSTOMER = _machine("customer", {  # → screening → verifying → active; ↔ inactive; → rejected
    "initiating": "screening", "screening": "verifying rejected",
    "verifying": "active rejected", "active": "inactive rejected", "inactive": "active",
    "rejected": ""})
ACCOUNT = _machine("account", {  # → pending → active; failed; ↔ inactive; closed
    "initiating": "pending failed", "pending": "active failed",
    "active": "inactive closed", "inactive": "active closed", "failed": "", "closed": ""})
CARD = _machine("card", {  # issuing → active | issue_failed; ↔ inactive; suspended; blocked
    "issuing": "active issue_failed", "active": "inactive suspended blocked terminated",
    "inactive": "active terminated", "suspended": "active blocked terminated",
    "issue_failed": "", "blocked": "", "terminated": ""})
AUTHORISATION = _machine("authorisation", {  # an amount change keeps it pending
    "pending": "pending capturing releasing", "capturing": "captured",
    "releasing": "released", "captured": "", "released": ""})
TRANSACTION = _machine("transaction", {
    "processing": "processed", "processed": "reversing", "reversing": "reversed",
    "reversed": ""})

CAPTURE_AFTER_TERMINATION = timedelta(days=30)
""""Every capture request for an authorisation that was pending at termination is honoured
for 30 days from the termination date." """
HOLD_LIFETIME = timedelta(days=30)
"""The sandbox's choice: a pending hold is released this long after it was made."""

EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])
"""The sandbox's books are exact: an inexact sum raises."""
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?")
AmountText = Annotated[str, msgspec.Meta(pattern=f"^{_AMOUNT.pattern}$")]
"""An amount in a request body: a decimal string (a JSON number is refused)."""
CurrencyText = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]


def parse_amount(text: str, field: str = "amount") -> Decimal:
    """An amount as the API takes it: a non-negative decimal string."""
    if not _AMOUNT.fullmatch(text):
        raise SandboxError(400, "invalid_request", f"{text!r} is not a decimal amount", field)
    return Decimal(text)


def check_currency(code: str) -> str:
    if code not in ISO_4217:
        raise SandboxError(400, "invalid_request", f"{code!r} is not an ISO 4217 currency code",
                           "currency")
    return code


def amount_text(amount: Decimal) -> str:
    """An amount as the API writes it: plain decimal text, never an exponent."""
    return format(amount, "f")
