"""Signed notes against the published vector of Go's ``golang.org/x/mod/sumdb/note`` (its
PeterNeumann key and note: Ed25519 is deterministic, so ours must match byte for byte), and
checkpoints' parsing, which must refuse every malformed one by name."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInputError, VerificationFailedError
from ledger.transparency.checkpoint import Checkpoint, OtherLedgerError, open_checkpoint
from ledger.transparency.note import (
    NoteError,
    SignatureError,
    SigningKey,
    VerifierKey,
    open_note,
)

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
NOTE = (TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
        "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_keys_and_signatures_match_go_sumdb_note_byte_for_byte() -> None:
    key = SigningKey.parse(SKEY)
    assert str(key) == SKEY and str(key.verifier) == VKEY == str(VerifierKey.parse(VKEY))
    assert key.sign(TEXT) == NOTE
    assert open_note(NOTE, VerifierKey.parse(VKEY)) == TEXT
    assert SKEY not in repr(key)


@pytest.mark.parametrize(("note", "error", "reason"), [
    (NOTE.replace("cryptography", "cryptographY"), SignatureError, "does not match"),
    (NOTE.replace("PeterNeumann x08", "Other x08"), SignatureError, "no signature by the key"),
    (TEXT, NoteError, "no blank line"),
    (NOTE.replace("\u2014 ", "-- "), NoteError, "not a signature line"),
    (NOTE.replace("x08go", "!!!"), NoteError, "not base64"),
    (NOTE.replace("your problem,\n", "your\tproblem,\n"), NoteError, "control characters"),
])
def test_a_bad_note_is_refused_naming_why(note: str, error: type[Exception],
                                          reason: str) -> None:
    with pytest.raises(error, match=reason):
        open_note(note, VerifierKey.parse(VKEY))


@pytest.mark.parametrize("text", [
    VKEY.replace("c74f20a3", "c74f20a4"), VKEY[:-4], "PeterNeumann+c74f20a3", "",
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"])
def test_a_malformed_public_key_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        VerifierKey.parse(text)


def test_checkpoints_parse_strictly_and_name_their_ledger() -> None:
    key = SigningKey.generate("cardledger/a")
    checkpoint = Checkpoint("cardledger/a", 5, bytes(range(32)))
    assert Checkpoint.parse(checkpoint.text()) == checkpoint
    assert Checkpoint.parse(checkpoint.text() + "extension\n") == checkpoint
    assert open_checkpoint(checkpoint.signed(key), key.verifier) == checkpoint
    other = Checkpoint("cardledger/b", 5, bytes(32))
    with pytest.raises(NoteError, match="signs for cardledger/a, not for cardledger/b"):
        other.signed(key)
    with pytest.raises(OtherLedgerError, match="another ledger"):  # signed by hand
        open_checkpoint(key.sign(other.text()), key.verifier)
    root = checkpoint.text().split("\n")[2]
    for text, reason in [("cardledger/a\n05\n" + root + "\n", "not a decimal"),
                         ("cardledger/a\n5\n", "expected origin, size and root"),
                         ("cardledger/a\n5\nAAAA\n", "not 32 bytes"),
                         ("cardledger/a\n-1\n" + root + "\n", "not a decimal"),
                         ("\n5\n" + root + "\n", "origin line"),
                         ("cardledger/a\n5\n" + root, "expected origin")]:
        with pytest.raises(NoteError, match=reason):
            Checkpoint.parse(text)
    assert issubclass(SignatureError, VerificationFailedError)
