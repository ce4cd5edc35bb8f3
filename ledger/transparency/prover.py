"""The ledger's side of the proofs: checkpoints of its store, proofs against them, and the
check that the store is an extension of a checkpoint published earlier."""

from __future__ import annotations

from ledger.store import EventStore
from ledger.transparency.checkpoint import Checkpoint, OtherLedgerError
from ledger.transparency.evidence import ConsistencyProof, InclusionProof, ProofError, b64
from ledger.transparency.note import SigningKey, unverified_text


async def checkpoint(store: EventStore, size: int | None = None) -> Checkpoint:
    """The store's checkpoint at ``size`` events (default: all)."""
    size, root = await store.tree_root(size)
    return Checkpoint(await store.origin(), size, root)


async def signed_checkpoint(store: EventStore, key: SigningKey, size: int | None = None) -> str:
    return (await checkpoint(store, size)).signed(key)


async def check_extends(store: EventStore, published: Checkpoint) -> None:
    """Raise unless the store's log is the one ``published`` signed, or an extension of it:
    same ledger, at least as many events, and the same root over the first ones."""
    origin = await store.origin()
    if published.origin != origin:
        raise OtherLedgerError(f"the checkpoint names another ledger ({published.origin}); "
                               f"this database is {origin}")
    head = await store.head()
    if published.size > head:
        raise ProofError(f"the database holds {head} events, fewer than the {published.size} "
                         "the checkpoint signed: its tail was cut off")
    if (await store.tree_root(published.size))[1] != published.root:
        raise ProofError(f"the database's first {published.size} events are not the ones the "
                         "checkpoint signed: the log was rewritten")


async def prove_inclusion(store: EventStore, position: int, signed: str) -> InclusionProof:
    """The proof that the event at ``position`` is in the tree of the checkpoint ``signed``
    (which this store must extend)."""
    published = Checkpoint.parse(unverified_text(signed))
    await check_extends(store, published)
    path = await store.inclusion_proof(position, published.size)
    return InclusionProof(checkpoint=signed, position=position,
                          record=b64(await store.record(position)), path=[b64(h) for h in path])


async def prove_consistency(store: EventStore, old_signed: str, signed: str) -> ConsistencyProof:
    """The proof that the tree of the checkpoint ``signed`` extends that of ``old_signed``."""
    old = Checkpoint.parse(unverified_text(old_signed))
    new = Checkpoint.parse(unverified_text(signed))
    await check_extends(store, old)
    await check_extends(store, new)
    if old.size > new.size:
        raise ProofError(f"a proof goes from a smaller tree to a larger one, not from "
                         f"{old.size} to {new.size} events")
    path = await store.consistency_proof(old.size, new.size)
    return ConsistencyProof(old_checkpoint=old_signed, checkpoint=signed,
                            path=[b64(h) for h in path])
