"""The anomaly rules, their one home: what in a report contradicts what else is known.

The deciders flag an anomaly on the event they record, from what was known when the report
arrived; the projections list anomalies as of T, from everything known by then, whatever the
order of arrival. Both ask these functions, so the two can differ only in what they know,
never in the rule.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from ledger.events import Anomaly


class HoldTerms(msgspec.Struct, frozen=True, gc=False):
    """What a debit is checked against: its authorisation's currency, amount and expiry."""

    currency: str
    amount: Decimal
    expires_at: datetime


def debit_anomalies(amount: Decimal, currency: str, created_at: datetime,
                    hold: HoldTerms | None) -> list[Anomaly]:
    """A debit with no known authorisation, above its hold (in the hold's currency: amounts
    in two currencies do not compare), or created once its hold had expired."""
    if hold is None:
        return [Anomaly.UNKNOWN_AUTHORISATION]
    found = []
    if currency == hold.currency and amount > hold.amount:
        found.append(Anomaly.CAPTURE_ABOVE_HOLD)
    if created_at >= hold.expires_at:
        found.append(Anomaly.CAPTURE_AFTER_EXPIRY)
    return found


def authorisation_anomalies(created_at: datetime, card_terminated_at: datetime | None,
                            ) -> list[Anomaly]:
    """An authorisation created on or after its card's termination."""
    if card_terminated_at is not None and created_at >= card_terminated_at:
        return [Anomaly.AUTHORISATION_AFTER_TERMINATION]
    return []
