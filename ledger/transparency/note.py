"""C2SP signed notes with Ed25519 keys (https://c2sp.org/signed-note), in the key formats of
Go's ``golang.org/x/mod/sumdb/note``, so that its tools read our keys and notes.

A note is a text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key id || signature)>``. The key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key). Keys are text:
``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`` and ``<name>+<hex id>+<base64(0x01 ||
public key)>``.

Every failure is a ``NoteError`` (malformed input) or ``SignatureError`` (a well-formed note
that this key did not sign), each naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import InvalidInputError, VerificationFailedError

_ED25519 = b"\x01"
_DASH = "\u2014 "
MAX_NOTE_BYTES = 64 * 1024


class NoteError(InvalidInputError):
    """A key, note or checkpoint that is not well-formed."""


class SignatureError(VerificationFailedError):
    """A well-formed note that the given key did not sign (or that says something else)."""


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise NoteError(f"key name {name!r}: it must be non-empty, printable, without spaces "
                        "or '+'")
    return name


def decode_b64(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), strictly; ``NoteError`` naming ``what``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not base64") from None


class VerifierKey:
    """A public key with its name: what an auditor keeps (``FILE.pub``)."""

    def __init__(self, name: str, public: bytes) -> None:
        self.name, self.public = _check_name(name), public
        self.key_id = _key_id(name, public)
        self._key = Ed25519PublicKey.from_public_bytes(public)

    def __str__(self) -> str:
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{base64.b64encode(_ED25519 + self.public).decode()}")

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 may hold '+'
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError("not a public key (name+id+key)")
        name, key_id, material = parts
        raw = decode_b64(material, "public key")
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise NoteError("public key: not an Ed25519 key")
        key = cls(name, raw[1:])
        if key.key_id.hex() != key_id.lower():
            raise NoteError("public key: its id does not match its name and key")
        return key

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """A private key with its name (``FILE``, mode 0600)."""

    def __init__(self, name: str, seed: bytes) -> None:
        self.name = _check_name(name)
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = seed
        self.verifier = VerifierKey(name, self._key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                          NoEncryption())
        return cls(name, seed)

    def __str__(self) -> str:
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+"
                f"{base64.b64encode(_ED25519 + self._seed).decode()}")

    def __repr__(self) -> str:  # never the seed, in a log or a traceback
        return f"SigningKey({self.name!r}, id {self.verifier.key_id.hex()})"

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or len(parts[3]) != 8:
            raise NoteError("not a private key (PRIVATE+KEY+name+id+key)")
        raw = decode_b64(parts[4], "private key")
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise NoteError("private key: not an Ed25519 key")
        key = cls(parts[2], raw[1:])
        if key.verifier.key_id.hex() != parts[3].lower():
            raise NoteError("private key: its id does not match its name and key")
        return key

    def sign(self, text: str) -> str:
        """The signed note of ``text``."""
        body = _check_text(text).encode()
        signature = self.verifier.key_id + self._key.sign(body)
        return f"{text}\n{_DASH}{self.name} {base64.b64encode(signature).decode()}\n"


def _check_text(text: str) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends in one newline and has no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note holds no control characters but newlines")
    return text


def open_note(note: str, key: VerifierKey) -> str:
    """The text of ``note``, once a signature by ``key`` over it is verified."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"a note is at most {MAX_NOTE_BYTES} bytes")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note: no blank line before signature lines")
    text = _check_text(text + "\n")
    found = False
    for line in signatures[:-1].split("\n"):
        name, signature = _signature_line(line)
        if name != key.name or signature[:4] != key.key_id:
            continue
        found = True
        if key.verify(text.encode(), signature[4:]):
            return text
    if found:
        raise SignatureError(f"the signature of {key.name} does not match the note's text")
    raise SignatureError(f"the note carries no signature by the key {key.name} "
                         f"({key.key_id.hex()})")


def unverified_text(note: str) -> str:
    """The text of a signed note, its signatures not checked: for whoever holds the log and
    checks the text against it (a prover), never for a verifier."""
    text, sep, _ = note.rpartition("\n\n")
    if not sep:
        raise NoteError("not a signed note: no blank line before signature lines")
    return _check_text(text + "\n")


def _signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(_DASH):
        raise NoteError(f"not a signature line: {line[:40]!r}")
    name, space, encoded = line[len(_DASH):].partition(" ")
    raw = decode_b64(encoded, "signature") if space else b""
    if not name or len(raw) < 5:
        raise NoteError(f"not a signature line: {line[:40]!r}")
    return name, raw
