"""Archived webhook deliveries, one JSON object per line (``cardledger ingest``), taken
through the receiver's own path (``adapters.webhooks.intake``)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from adapters.processor.deliveries import Delivery, DeliveryConflictError, InvalidDelivery
from adapters.processor.observer import Observer
from adapters.webhooks.intake import WebhookIntake


class IngestReport(msgspec.Struct):
    lines: int
    recorded: int
    """Deliveries that taught something new."""
    duplicates: int
    """Deliveries already known: received before, or their facts fetched or delivered."""
    skipped: list[str]
    conflicts: list[str] = []
    """Deliveries refused because their eventId was recorded with other content."""


async def ingest_lines(observer: Observer, lines: Iterable[bytes], *,
                       skip_invalid: bool = False) -> IngestReport:
    """Archived webhook payloads, one JSON object per line, with the receiver's semantics.

    Every line is checked first: a file with invalid lines is refused whole (an
    ``InvalidDelivery`` naming each bad line) unless ``skip_invalid``; blank lines are ignored.
    """
    intake = WebhookIntake(observer)  # an operator's own file: no signature to check
    deliveries: list[Delivery] = []
    bad: list[str] = []
    total = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        total += 1
        try:
            deliveries.append(intake.check(line))
        except InvalidDelivery as exc:
            bad.append(f"line {number}: {exc}")
    if bad and not skip_invalid:
        raise InvalidDelivery(f"{len(bad)} invalid line(s), nothing ingested:\n" + "\n".join(bad))
    recorded = duplicates = 0
    conflicts = []
    for delivery in deliveries:
        try:
            taken = await intake.take(delivery)
        except DeliveryConflictError as exc:
            conflicts.append(str(exc))
            continue
        recorded += taken.recorded
        duplicates += not taken.recorded
    return IngestReport(total, recorded, duplicates, bad, conflicts)
