"""Tamper evidence on the command line: ``keygen``, ``checkpoint``, ``prove``, ``check-proof``,
and the check of ``verify --against``.

A verdict is one line on stdout. Evidence that does not prove what it claims exits 1; input
that is not well-formed (a key, a note, a proof, a position past the end) exits 2, with the
reason on stderr (``adapters.cli.main.run``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from adapters.cli.locations import existing_store
from ledger.errors import InvalidInputError
from ledger.transparency import evidence, prover
from ledger.transparency.checkpoint import OtherLedgerError, open_checkpoint
from ledger.transparency.note import NoteError, SigningKey, VerifierKey, decode_b64


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"{path}: {what} is not UTF-8 text") from None


def signing_key(path: Path) -> SigningKey:
    return SigningKey.parse(read_text(path, "a private key"))


def verifier_key(path: Path) -> VerifierKey:
    return VerifierKey.parse(read_text(path, "a public key"))


async def keygen(db: str, output: Path) -> int:
    """FILE (the private key, mode 0600, never overwritten) and FILE.pub, named after the
    ledger's origin."""
    async with existing_store(db) as store:
        name = await store.origin()
    _write_keys(SigningKey.generate(name), output)
    return 0


def _write_keys(key: SigningKey, output: Path) -> None:
    public = output.with_name(output.name + ".pub")
    if output.exists() or public.exists():
        raise InvalidInputError(f"{output} or {public} exists already: keys are never "
                                "overwritten")
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as private:
        private.write(f"{key}\n")
    public.write_text(f"{key.verifier}\n")
    click.echo(f"private key: {output} (keep it secret)\npublic key:  {public} "
               f"({key.verifier})")


async def checkpoint(db: str, key_file: Path, size: int | None) -> int:
    key = signing_key(key_file)
    async with existing_store(db) as store:
        click.echo(await prover.signed_checkpoint(store, key, size), nl=False)
    return 0


async def prove(db: str, position: int | None, from_size: int | None, to_size: int | None,
                key_file: Path | None, against: Path | None) -> int:
    """An inclusion proof (``position``) or a consistency proof (``from_size``), against the
    checkpoint ``against`` or one signed now with ``key_file``."""
    key = signing_key(key_file) if key_file else None
    async with existing_store(db) as store:
        signed = (read_text(against, "a checkpoint") if against else
                  await prover.signed_checkpoint(store, _given(key), to_size))
        if position is not None:
            proof: evidence.Proof = await prover.prove_inclusion(store, position, signed)
        else:
            assert from_size is not None
            old = await prover.signed_checkpoint(store, _given(key), from_size)
            proof = await prover.prove_consistency(store, old, signed)
    click.echo(evidence.encode(proof).decode(), nl=False)
    return 0


def _given(key: SigningKey | None) -> SigningKey:
    if key is None:
        raise click.UsageError("give --key to sign the checkpoint (or --checkpoint to prove "
                               "against a published one)")
    return key


def check_proof(proof_file: Path, key_file: Path, event: Path | None,
                kept: Path | None) -> int:
    """Offline: the proof, the public key, and optionally the event's export line or the
    checkpoint kept from earlier. No database, no network."""
    key = verifier_key(key_file)
    proof = evidence.decode(proof_file.read_bytes())
    if isinstance(proof, evidence.InclusionProof):
        record = _record_of_export_line(event) if event else None
        at = evidence.check_inclusion(proof, key, record=record)
        click.echo(f"proven: the event at position {proof.position} is in {at.origin}'s log "
                   f"of {at.size} events, as its checkpoint signed")
        return 0
    old_kept = open_checkpoint(read_text(kept, "a checkpoint"), key) if kept else None
    old, new = evidence.check_consistency(proof, key, kept=old_kept)
    click.echo(f"proven: {new.origin}'s log of {new.size} events extends its log of "
               f"{old.size} events, both as signed")
    return 0


def _record_of_export_line(path: Path) -> bytes:
    """The canonical record of one line of ``cardledger export`` (the first non-empty line)."""
    line = next((raw for raw in path.read_bytes().splitlines() if raw.strip()), b"")
    try:
        found = json.loads(line)
        return decode_b64(found["record"], "the export line's record")
    except (ValueError, KeyError, TypeError):
        raise NoteError(f"{path}: not a line of cardledger export (no record)") from None


async def verify_against(db: str, checkpoints: tuple[Path, ...],
                         key_file: Path | None) -> list[str]:
    """Why the database is not an extension of each checkpoint (empty: it is of all)."""
    if not checkpoints:
        return []
    if key_file is None:
        raise click.UsageError("--against needs --key, the ledger's public key")
    key = verifier_key(key_file)
    problems = []
    async with existing_store(db) as store:
        for path in checkpoints:
            published = open_checkpoint(read_text(path, "a checkpoint"), key)
            try:
                await prover.check_extends(store, published)
            except (evidence.ProofError, OtherLedgerError) as exc:
                problems.append(f"{path}: {exc}")
    return problems
