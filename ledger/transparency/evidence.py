"""Proofs an auditor can hand to a third party, and their offline check: a JSON document
with the signed checkpoint(s) it is against and the RFC 9162 hashes. Checking one needs the
document, the ledger's public key, and nothing else (no database, no network).

Every failure raises: ``NoteError`` (an ``InvalidInputError``) for a document, key or
checkpoint that is not well-formed, ``SignatureError``, ``OtherLedgerError`` or
``ProofError`` (``VerificationFailedError``\\ s) for well-formed evidence that does not prove
what it claims. Each names what it found.
"""

from __future__ import annotations

import base64

import msgspec

from ledger.errors import VerificationFailedError
from ledger.store.planner import known_from_record
from ledger.transparency.checkpoint import Checkpoint, OtherLedgerError, open_checkpoint
from ledger.transparency.merkle import (
    HASH_SIZE,
    leaf_hash,
    root_from_inclusion,
    verify_consistency,
)
from ledger.transparency.note import NoteError, VerifierKey, decode_b64

MAX_PROOF_HASHES = 64
"""A tree of 2**63 events needs 63 hashes at most (consistency: at most about 2 log n)."""


class ProofError(VerificationFailedError):
    """Well-formed evidence that does not prove what it claims."""


class InclusionProof(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                     tag="inclusion", tag_field="kind", forbid_unknown_fields=True):
    """The event at ``position`` is in the tree the checkpoint signs."""

    checkpoint: str
    """The signed checkpoint (a C2SP signed note)."""
    position: int
    record: str
    """The event's canonical record (base64): what the leaf hashes."""
    path: list[str]
    """Base64 hashes, from the leaf's sibling up (RFC 9162 2.1.3)."""


class ConsistencyProof(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                       tag="consistency", tag_field="kind", forbid_unknown_fields=True):
    """The tree of the later checkpoint extends the tree of the earlier one."""

    old_checkpoint: str
    checkpoint: str
    path: list[str]
    """Base64 hashes (RFC 9162 2.1.4)."""


Proof = InclusionProof | ConsistencyProof
_DECODER = msgspec.json.Decoder(Proof)


def encode(proof: Proof) -> bytes:
    return msgspec.json.format(msgspec.json.encode(proof), indent=2) + b"\n"


def decode(document: bytes) -> Proof:
    try:
        return _DECODER.decode(document)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NoteError(f"not a proof: {exc}") from None


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _hashes(path: list[str]) -> list[bytes]:
    if len(path) > MAX_PROOF_HASHES:
        raise NoteError(f"a proof holds at most {MAX_PROOF_HASHES} hashes, this one {len(path)}")
    found = [decode_b64(p, "a proof hash") for p in path]
    if any(len(h) != HASH_SIZE for h in found):
        raise NoteError("a proof hash is not 32 bytes")
    return found


def check_inclusion(proof: InclusionProof, key: VerifierKey, *,
                    record: bytes | None = None) -> Checkpoint:
    """The checkpoint the event is proven in; ``record``, if given (from an export line),
    must be the event the proof is about."""
    checkpoint = open_checkpoint(proof.checkpoint, key)
    claimed = decode_b64(proof.record, "the record")
    if record is not None and record != claimed:
        raise ProofError("the event given is not the one the proof is about")
    if not 1 <= proof.position <= checkpoint.size:
        raise ProofError(f"position {proof.position} is past the end of the checkpoint's tree "
                         f"({checkpoint.size} events)")
    try:
        at = known_from_record(claimed).position
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise NoteError("the record is not a stored event's record") from None
    if at != proof.position:
        raise ProofError(f"the record is the event at position {at}, not {proof.position}")
    root = root_from_inclusion(proof.position - 1, checkpoint.size, leaf_hash(claimed),
                               _hashes(proof.path))
    if root != checkpoint.root:
        raise ProofError(f"the proof does not lead to the root of the checkpoint's tree of "
                         f"{checkpoint.size} events: the event is not in it, or the proof is "
                         "for another tree size")
    return checkpoint


def check_consistency(proof: ConsistencyProof, key: VerifierKey, *,
                      kept: Checkpoint | None = None) -> tuple[Checkpoint, Checkpoint]:
    """The two checkpoints, the later proven to extend the earlier. ``kept``, if given (a
    checkpoint the auditor kept, already verified), must be the earlier one."""
    old, new = open_checkpoint(proof.old_checkpoint, key), open_checkpoint(proof.checkpoint, key)
    if old.origin != new.origin:
        raise OtherLedgerError(f"the proof joins two ledgers ({old.origin}, {new.origin})")
    if kept is not None and (kept.origin, kept.size, kept.root) != (old.origin, old.size,
                                                                     old.root):
        raise ProofError(f"the proof starts from a tree of {old.size} events that is not the "
                         f"checkpoint kept ({kept.size} events of {kept.origin}): the ledger "
                         "signed another history")
    if not 1 <= old.size <= new.size:
        raise ProofError(f"a proof goes from a smaller tree to a larger one, not from "
                         f"{old.size} to {new.size} events")
    if not verify_consistency(old.size, new.size, old.root, new.root, _hashes(proof.path)):
        raise ProofError(f"the tree of {new.size} events does not extend the tree of "
                         f"{old.size}: the log was rewritten, or the proof is for other sizes")
    return old, new
