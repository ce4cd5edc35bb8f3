"""The Merkle tree kept beside the log (``ledger.transparency.merkle``): what the writer
remembers of it between commits, and how a backend resumes it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ledger.errors import VerificationFailedError
from ledger.store.planner import ChainHead, Row
from ledger.transparency.merkle import Frontier, NodeKey


def leaves(records: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of records (RFC 9162: SHA-256 of 0x00 and the leaf)."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + record).digest() for record in records]


def resumed(size: int, start: int, stored: dict[NodeKey, bytes], keys: list[NodeKey],
            tail: list[bytes]) -> Frontier:
    """The frontier of a tree of ``size`` leaves from its stored subtrees (``keys``, as
    ``frontier_keys`` named them) and the records after them (``tail``)."""
    missing = [k for k in keys if k not in stored]
    if missing:
        raise VerificationFailedError(f"the Merkle tree node (level, index) {missing[0]} is "
                                      "missing from the database")
    if len(tail) != size - start:
        raise VerificationFailedError(f"positions {start + 1} to {size} are not all in the log")
    frontier = Frontier(start, [stored[k] for k in keys])
    frontier.extend(leaves(tail))
    return frontier


def encoded(frontier: Frontier) -> tuple[int, bytes]:
    """The frontier as its stored row: its size and its subtree hashes, one after another.
    PostgreSQL stores it with every commit, in the commit's one statement, so that a writer
    whose own copy is stale (another process wrote since) reads one row instead of rehashing
    what the others wrote. SQLite does not: there it would add a page to every fsync."""
    return frontier.size, b"".join(frontier.stack)


def decoded(size: int, stack: bytes) -> Frontier | None:
    """A stored frontier, or None if the row is not one."""
    if len(stack) != 32 * size.bit_count():
        return None
    return Frontier(size, [stack[i : i + 32] for i in range(0, len(stack), 32)])


class FrontierCache:
    """The writer's frontier, trusted only while the log's head is the one it extended last
    (as ``_StreamVersionCache``: another process may have written since)."""

    def __init__(self) -> None:
        self._frontier: Frontier | None = None
        self._head: ChainHead | None = None

    def at(self, head: ChainHead) -> Frontier | None:
        """A copy (a failed commit must not leave its leaves behind), or None."""
        return self._frontier.copy() if self._frontier and head == self._head else None

    def committed(self, frontier: Frontier, head: ChainHead) -> None:
        self._frontier, self._head = frontier, head

    def clear(self) -> None:
        self._frontier = self._head = None


def extend(frontier: Frontier, rows: list[Row]) -> list[tuple[int, int, bytes]]:
    """Add a group's rows to the tree; the stored-level nodes they complete."""
    return frontier.extend(leaves(row.record for row in rows))
