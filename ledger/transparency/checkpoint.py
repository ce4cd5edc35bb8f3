"""Checkpoints in the C2SP ``tlog-checkpoint`` format (https://c2sp.org/tlog-checkpoint): the
origin line naming the ledger, the tree size, the base64 root hash, each ending in a newline;
published as signed notes (``ledger.transparency.note``)."""

from __future__ import annotations

import base64

import msgspec

from ledger.errors import VerificationFailedError
from ledger.transparency.merkle import HASH_SIZE
from ledger.transparency.note import NoteError, SigningKey, VerifierKey, decode_b64, open_note


class Checkpoint(msgspec.Struct, frozen=True):
    origin: str
    """The ledger's name (``EventStore.origin``)."""
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def signed(self, key: SigningKey) -> str:
        """The signed note; a key signs for one ledger, the one it is named after."""
        if key.name != self.origin:
            raise NoteError(f"the key signs for {key.name}, not for {self.origin}")
        return key.sign(self.text())

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint's text (extension lines after the root are allowed, and ignored)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("not a checkpoint: expected origin, size and root lines")
        origin, size, root = lines[:3]
        if not origin or not origin.isprintable() or " " in origin:
            raise NoteError("checkpoint: the origin line is empty or not printable")
        if not size.isdigit() or (size != "0" and size.startswith("0")) or len(size) > 19:
            raise NoteError(f"checkpoint: the size {size[:30]!r} is not a decimal number")
        if len(decode_b64(root, "checkpoint: the root hash")) != HASH_SIZE:
            raise NoteError("checkpoint: the root hash is not 32 bytes of base64")
        return cls(origin, int(size), base64.b64decode(root))


class OtherLedgerError(VerificationFailedError):
    """A checkpoint of another ledger (its origin line names another)."""


def open_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint a signed note carries, once ``key``'s signature is verified. It must be
    of the ledger the key is named after (C2SP: the origin is the key's name)."""
    checkpoint = Checkpoint.parse(open_note(note, key))
    if checkpoint.origin != key.name:
        raise OtherLedgerError(f"the checkpoint names another ledger ({checkpoint.origin}) "
                               f"than its key's ({key.name})")
    return checkpoint
