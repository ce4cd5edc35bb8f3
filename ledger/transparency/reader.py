"""Subtree hashes, roots and proofs read from what a backend keeps: its stored nodes (the
complete subtrees of 256 leaves and up) and its records (hashed into leaves for anything
smaller). Backend-neutral: a backend supplies the two reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ledger.errors import VerificationFailedError
from ledger.transparency.merkle import (
    EMPTY_ROOT,
    STORED_LEVEL,
    NodeKey,
    Range,
    consistency_ranges,
    inclusion_ranges,
    node_hash,
    root_of,
    split,
    stored_key,
)

ReadNodes = Callable[[Sequence[NodeKey]], Awaitable[dict[NodeKey, bytes]]]
"""The stored nodes among ``keys`` (a missing one is left out)."""
ReadLeaves = Callable[[int, int], Awaitable[list[bytes]]]
"""The leaf hashes of leaves ``lo .. hi - 1`` (the records at positions ``lo + 1 .. hi``)."""

_BUCKET = 1 << STORED_LEVEL


class TreeReader:
    def __init__(self, read_nodes: ReadNodes, read_leaves: ReadLeaves) -> None:
        self._read_nodes, self._read_leaves = read_nodes, read_leaves

    async def root(self, size: int) -> bytes:
        return EMPTY_ROOT if size == 0 else (await self.hashes([(0, size)], size))[0]

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return await self.hashes(inclusion_ranges(index, size), size)

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return await self.hashes(consistency_ranges(old, new), new)

    async def hashes(self, ranges: Sequence[Range], size: int) -> list[bytes]:
        """MTH of each range, with one read of the stored nodes and one read of records
        per 256-leaf run that the ranges need (none of it beyond leaf ``size``)."""
        keys: list[NodeKey] = []
        runs: list[Range] = []
        for lo, hi in ranges:
            _parts(lo, hi, keys, runs)
        nodes = await self._read_nodes(keys) if keys else {}
        missing = [k for k in keys if k not in nodes]
        if missing:
            level, index = missing[0]
            raise VerificationFailedError(f"the Merkle tree node at level {level}, index "
                                          f"{index} is missing from the database")
        buckets: dict[int, list[bytes]] = {}
        for lo, _ in runs:
            bucket = lo // _BUCKET
            if bucket not in buckets:
                start = bucket * _BUCKET
                buckets[bucket] = await self._read_leaves(start, min(start + _BUCKET, size))
        return [_evaluate(lo, hi, nodes, buckets) for lo, hi in ranges]


def _parts(lo: int, hi: int, keys: list[NodeKey], runs: list[Range]) -> None:
    """What MTH(D[lo:hi]) is made of: stored nodes, and runs within one 256-leaf bucket."""
    key = stored_key(lo, hi)
    if key is not None:
        keys.append(key)
    elif lo // _BUCKET == (hi - 1) // _BUCKET:
        runs.append((lo, hi))
    else:
        k = split(hi - lo)
        _parts(lo, lo + k, keys, runs)
        _parts(lo + k, hi, keys, runs)


def _evaluate(lo: int, hi: int, nodes: dict[NodeKey, bytes],
              buckets: dict[int, list[bytes]]) -> bytes:
    key = stored_key(lo, hi)
    if key is not None:
        return nodes[key]
    if lo // _BUCKET == (hi - 1) // _BUCKET:
        start = lo // _BUCKET * _BUCKET
        leaves = buckets[lo // _BUCKET][lo - start : hi - start]
        if len(leaves) != hi - lo:
            raise VerificationFailedError(f"positions {lo + 1} to {hi} are not all in the log")
        return root_of(leaves)
    k = split(hi - lo)
    return node_hash(_evaluate(lo, lo + k, nodes, buckets), _evaluate(lo + k, hi, nodes, buckets))
