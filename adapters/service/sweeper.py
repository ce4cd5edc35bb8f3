"""The expiry sweeper: writes into the log that a hold reached its expiry uncaptured.

Balances already treat a hold as expired once T reaches its ``expiresAt``; the sweeper makes
the log say so too (``HoldExpired`` at the expiry time), which also moves the account's stored
view to that time. Ids are derived from the hold, and the content from the hold alone, so
running it twice, or in two processes, appends nothing new.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from ledger.domain.programme import stream_for
from ledger.errors import EventIdConflictError
from ledger.events import HoldExpired
from ledger.store import Metadata, NewEvent
from projections.runner import ProjectionRunner

_NAMESPACE = uuid.UUID("4d2f6a0e-7c1b-5e8a-9f3d-2b6c8e1a7d40")
SOURCE = "cardledger:expiry-sweeper"


def expiry_event_id(authorisation_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"hold-expired:{authorisation_id}")


async def sweep(runner: ProjectionRunner, now: datetime) -> int:
    """Append ``HoldExpired`` for every live hold whose expiry has passed; return how many
    were new."""
    await runner.catch_up(wait=False)  # another process may lead: sweep what it stored
    appended = 0
    for hold in runner.live_holds():
        if hold.expires_at > now:
            continue
        event = HoldExpired(authorisation_id=hold.authorisation_id, account_id=hold.account_id,
                            card_id=hold.card_id, amount=hold.amount, currency=hold.currency,
                            at=hold.expires_at)
        try:
            result = await runner.store.append(stream_for(event), [NewEvent(
                payload=event, event_id=expiry_event_id(hold.authorisation_id),
                metadata=Metadata(occurred_at=hold.expires_at, source=SOURCE))])
        except EventIdConflictError:
            continue  # expired already, by a sweep that saw the hold differently
        appended += not result.duplicate
    await runner.catch_up(wait=False)
    return appended
