"""The log checked row by row: its hash chain, and the Merkle tree its records make. Shared
by ``EventStore.verify`` and by the audit replay of an exported log (no database needed)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ledger.store.planner import GENESIS_HASH, Row, chain_hash, micros
from ledger.store.records import VerifyReport, wire_name
from ledger.store.registry import EventRegistry
from ledger.store.tree import leaves
from ledger.transparency.merkle import Frontier, NodeKey


def check_row(registry: EventRegistry, row: Row, position: int, previous: bytes) -> str | None:
    """Why ``row`` does not belong at ``position`` after ``previous``, or None if it does."""
    at, stream, version, event_id, wire, recorded_us, record, stored_hash, _ = row
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


class LogWalk:
    """Rows fed in log order: the chain checked, the tree grown from the records. A
    failure is kept (``failed``), and nothing after it is looked at."""

    def __init__(self, registry: EventRegistry) -> None:
        self.registry = registry
        self.previous, self.checked = GENESIS_HASH, 0
        self.frontier = Frontier()
        self.nodes: dict[NodeKey, bytes] = {}
        """The stored-level nodes the records make, to compare with those kept."""
        self.failed: VerifyReport | None = None

    def feed(self, rows: Iterable[Row]) -> None:
        if self.failed is not None:
            return
        good: list[bytes] = []
        for row in rows:
            problem = check_row(self.registry, row, self.checked + 1, self.previous)
            if problem is not None:
                self.failed = VerifyReport(False, self.checked, self.checked + 1, problem,
                                           self.previous.hex())
                break
            self.previous, self.checked = row.hash, self.checked + 1
            good.append(row.record)
        for level, index, digest in self.frontier.extend(leaves(good)):
            self.nodes[level, index] = digest

    def compare_node(self, level: int, index: int, digest: bytes) -> None:
        """A stored node must be the one its records make."""
        if self.failed is None and self.nodes.pop((level, index), None) != digest:
            self._node_failed(level, index, "does not match its records")

    def report(self) -> VerifyReport:
        """The outcome; every node the records make must have been compared."""
        if self.failed is None and self.nodes:
            self._node_failed(*min(self.nodes), "is missing from the database")
        return self.failed or VerifyReport(True, self.checked, None, None, self.previous.hex(),
                                           root=self.frontier.root().hex())

    def _node_failed(self, level: int, index: int, why: str) -> None:
        first = index << level
        self.failed = VerifyReport(
            False, first, first + 1, f"the Merkle tree node over positions {first + 1} to "
            f"{(index + 1) << level} (level {level}) {why}", self.previous.hex())


def verify_rows(registry: EventRegistry, rows: Iterable[Row]) -> VerifyReport:
    """The chain and the tree of rows that have no stored nodes (an export)."""
    walk = LogWalk(registry)
    walk.feed(rows)
    walk.nodes.clear()
    return walk.report()
