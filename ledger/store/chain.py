"""The hash chain, checked row by row: shared by ``EventStore.verify`` and by the audit
replay of an exported log (no database needed)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ledger.store.planner import GENESIS_HASH, Row, chain_hash, micros
from ledger.store.records import VerifyReport, wire_name
from ledger.store.registry import EventRegistry


def check_row(registry: EventRegistry, row: Row, position: int, previous: bytes) -> str | None:
    """Why ``row`` does not belong at ``position`` after ``previous``, or None if it does."""
    at, stream, version, event_id, wire, recorded_us, record, stored_hash = row
    if at != position:
        return f"position {position} is missing (next row is at {at})"
    try:
        event = registry.decode_stored(record)
    except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: e.g. a string not UTF-8
        return f"record does not decode: {exc}"
    written = (event.position, event.stream, event.version, event.id_bytes,
               wire_name(type(event.payload)), micros(event.recorded_at))
    if (at, stream, version, event_id, wire, recorded_us) != written:
        return "columns do not match the record"
    if chain_hash(previous, record) != stored_hash:
        return "hash does not match"
    return None


def verify_rows(registry: EventRegistry, rows: Iterable[Row]) -> VerifyReport:
    previous, checked = GENESIS_HASH, 0
    for row in rows:
        problem = check_row(registry, row, checked + 1, previous)
        if problem is not None:
            return VerifyReport(False, checked, checked + 1, problem, previous.hex())
        previous, checked = row.hash, checked + 1
    return VerifyReport(True, checked, None, None, previous.hex())
