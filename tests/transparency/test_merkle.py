"""The Merkle tree against the published RFC 6962/9162 test vectors (Certificate
Transparency's, as Trillian's log verifier tests carry them) and against a second, naive
implementation of the RFC (``tests.support.rfc9162``) for every size hypothesis draws."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.transparency import merkle
from tests.support import rfc9162

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
H = {p[:8]: bytes.fromhex(p) for p in (
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a")}
# (leaf index, tree size) -> audit path; (old size, new size) -> consistency proof.
INCLUSION = {(0, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
             (5, 8): ["bc1a0643", "ca854ea1", "d37ee418"],
             (2, 3): ["fac54203"],
             (1, 5): ["6e340b9c", "5f083f0a", "bc1a0643"]}
CONSISTENCY = {(1, 8): ["96a296d2", "5f083f0a", "6b47aaf2"],
               (6, 8): ["0ebc5d34", "ca854ea1", "d37ee418"],
               (2, 5): ["5f083f0a", "bc1a0643"]}
HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def _hashes(ranges: list[tuple[int, int]], leaves: list[bytes]) -> list[bytes]:
    return [merkle.root_of(leaves[lo:hi]) for lo, hi in ranges]


def test_roots_match_the_published_vectors() -> None:
    assert merkle.root_of([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert [merkle.root_of(HASHES[:n]) for n in range(1, 9)] == ROOTS


def test_inclusion_proofs_match_the_published_vectors_and_verify() -> None:
    for (index, size), expected in INCLUSION.items():
        proof = _hashes(merkle.inclusion_ranges(index, size), HASHES)
        assert proof == [H[p] for p in expected]
        assert merkle.verify_inclusion(index, size, HASHES[index], proof, ROOTS[size - 1])
        assert not merkle.verify_inclusion(index, size * 2, HASHES[index], proof,
                                           ROOTS[size - 1])
        assert not merkle.verify_inclusion(index, size, HASHES[index], [*proof, proof[0]],
                                           ROOTS[size - 1])


def test_consistency_proofs_match_the_published_vectors_and_verify() -> None:
    for (old, new), expected in CONSISTENCY.items():
        proof = _hashes(merkle.consistency_ranges(old, new), HASHES)
        assert proof == [H[p] for p in expected]
        assert merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)
        assert not merkle.verify_consistency(old, new, ROOTS[new - 1], ROOTS[old - 1], proof)
        assert not merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], [])


sizes = st.integers(1, 700)  # across the stored level (256 leaves) and two of its subtrees


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_the_tree_and_its_proofs_equal_the_naive_rfc(size: int, data: st.DataObject) -> None:
    raw = [i.to_bytes(3, "big") + b"leaf" for i in range(size)]
    leaves = [merkle.leaf_hash(r) for r in raw]
    frontier = merkle.Frontier()
    completed = frontier.extend(leaves)
    root = rfc9162.mth(raw)
    assert frontier.root() == merkle.root_of(leaves) == root
    assert completed == [(level, index, rfc9162.mth(raw[index << level:(index + 1) << level]))
                         for level, index, _ in completed]
    index = data.draw(st.integers(0, size - 1))
    proof = _hashes(merkle.inclusion_ranges(index, size), leaves)
    assert proof == rfc9162.path(index, raw)
    assert merkle.verify_inclusion(index, size, leaves[index], proof, root)
    assert not merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other"), proof, root)
    old = data.draw(st.integers(1, size))
    consistency = _hashes(merkle.consistency_ranges(old, size), leaves)
    assert consistency == rfc9162.proof(old, raw)
    assert merkle.verify_consistency(old, size, rfc9162.mth(raw[:old]), root, consistency)
    if old < size:
        assert not merkle.verify_consistency(old, size, merkle.leaf_hash(b"x"), root,
                                             consistency)


def test_a_frontier_resumed_from_its_stored_nodes_is_the_whole_one() -> None:
    leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(1300)]
    whole = merkle.Frontier()
    stored = {(level, index): digest for level, index, digest in whole.extend(leaves)}
    for size in (0, 255, 256, 511, 768, 1024, 1299, 1300):
        keys, start = merkle.frontier_keys(size)
        resumed = merkle.Frontier(start, [stored[k] for k in keys])
        resumed.extend(leaves[start:size])
        assert resumed.root() == merkle.root_of(leaves[:size])
