"""The Merkle tree of RFC 9162 (section 2.1) over the log: hashes, proofs and their checks.

Pure: no I/O. Leaves are the stored records' canonical bytes in log order, leaf ``i`` being
position ``i + 1``. ``MTH(D[lo:hi])`` is the hash of the leaves ``lo .. hi - 1``.

The store keeps the roots of the complete subtrees of ``2**STORED_LEVEL`` leaves and more
(``Frontier.extend`` names them as they complete, about one per 128 events); a smaller
subtree is recomputed from its records when a proof needs it. So an append costs one leaf
hash and, on average, one node hash, and a proof reads O(log n) stored nodes and at most two
runs of 256 records.

A proof is a list of subtree hashes; ``inclusion_ranges`` and ``consistency_ranges`` say
which subtrees (RFC 9162, 2.1.3.1 and 2.1.4.1), so a backend only has to hash ranges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

STORED_LEVEL = 8
"""Complete subtrees of 2**8 = 256 leaves and up are stored."""

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree."""

Range = tuple[int, int]
NodeKey = tuple[int, int]
"""(level, index): the complete subtree of leaves ``index * 2**level`` up to the next."""


def leaf_hash(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """k: the largest power of two smaller than ``size`` (> 1)."""
    assert size > 1
    return 1 << ((size - 1).bit_length() - 1)


def stored_key(lo: int, hi: int) -> NodeKey | None:
    """The stored node that is exactly ``D[lo:hi]``, if there is one."""
    size = hi - lo
    level = size.bit_length() - 1
    if level >= STORED_LEVEL and size == 1 << level and lo % size == 0:
        return level, lo >> level
    return None


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


class Frontier:
    """The right edge of a tree: the roots of its complete subtrees, largest first (one per
    binary digit of its size). Enough to extend the tree and to compute its root."""

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, stack: Sequence[bytes] = ()) -> None:
        assert len(stack) == size.bit_count(), "a frontier has one subtree per binary digit"
        self.size = size
        self.stack = list(stack)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.stack)

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Add leaf hashes; return the stored-level subtrees they complete, as
        (level, index, hash)."""
        completed: list[tuple[int, int, bytes]] = []
        stack, size, sha256 = self.stack, self.size, hashlib.sha256
        for digest in leaves:
            size += 1
            level, carry = 0, size
            while not carry & 1:  # merge one subtree per trailing zero of the new size
                digest = sha256(b"\x01" + stack.pop() + digest).digest()
                level += 1
                carry >>= 1
                if level >= STORED_LEVEL:
                    completed.append((level, (size >> level) - 1, digest))
            stack.append(digest)
        self.size = size
        return completed

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        digest = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            digest = node_hash(left, digest)
        return digest


def frontier_keys(size: int) -> tuple[list[NodeKey], int]:
    """Where the frontier of a tree of ``size`` leaves is kept: the stored nodes of its
    complete subtrees of 256 leaves and up, largest first, and the first leaf after them
    (the leaves from there to ``size`` are hashed from their records)."""
    keys, start = [], 0
    for level in range(size.bit_length() - 1, STORED_LEVEL - 1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys, start


# --- proofs --------------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes are the inclusion proof of leaf ``index`` in a tree of
    ``size`` (RFC 9162 2.1.3.1 PATH), leaf to root."""
    assert 0 <= index < size
    path: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    return path[::-1]


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The subtrees whose hashes are the consistency proof from ``old`` leaves to ``new``
    (RFC 9162 2.1.4.1 SUBPROOF), in proof order."""
    assert 0 < old <= new
    proof: list[Range] = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            proof.append((lo + k, hi))
            hi = lo + k
        else:
            proof.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append((lo, hi))
    return proof[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that ``proof`` makes of ``leaf`` at ``index`` (RFC 9162 2.1.3.2), or None
    when the proof cannot belong to that index and size."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return None
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            digest = node_hash(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    return digest if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the tree of ``new`` leaves with ``new_root``
    extends the tree of ``old`` leaves with ``old_root``?"""
    if not 0 < old <= new or any(len(p) != HASH_SIZE for p in proof):
        return old == 0 and not proof and new >= 0  # the empty tree: every tree extends it
    if old == new:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the proof's first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
