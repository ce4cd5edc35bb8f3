"""Proofs on a log of 1M events: how long the ledger takes to make an inclusion and a
consistency proof, how large they are, and how long an offline check takes, each beside a
baseline measured in the same run (raw ``sqlite3`` reading one row by position; Ed25519
verifying one signature)."""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.harness import Figure, benchmark
from benchmarks.store import REGISTRY, hold
from ledger import open_store
from ledger.transparency import evidence, prover
from ledger.transparency.note import SigningKey, open_note

_QUERIES = 200


async def _build(db: Path, total: int) -> str:
    """The log, and its origin (the name of the key that signs its checkpoints)."""
    async with open_store(db, registry=REGISTRY) as store:
        for i in range(0, total, 1000):
            await store.append(f"card-{i // 1000}", [hold(n) for n in range(i, i + 1000)])
        return await store.origin()


def _us(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e6


def _raw_row_us(db: Path, positions: list[int]) -> float:
    connection = sqlite3.connect(db)
    times = []
    for position in positions:
        started = time.perf_counter()
        connection.execute("SELECT record FROM events WHERE position = ?", (position,)
                           ).fetchone()
        times.append(time.perf_counter() - started)
    connection.close()
    return _us(times)


async def _prove(db: Path, total: int, key: SigningKey) -> dict[str, object]:
    rng = random.Random(9)
    positions = [rng.randint(1, total) for _ in range(_QUERIES)]
    olds = [rng.randint(1, total - 1) for _ in range(_QUERIES)]
    inclusion, consistency = [], []
    async with open_store(db, registry=REGISTRY) as store:
        signed = await prover.signed_checkpoint(store, key)
        for position in positions:
            started = time.perf_counter()
            made = await prover.prove_inclusion(store, position, signed)
            inclusion.append(time.perf_counter() - started)
        proof = made
        for old in olds:
            started = time.perf_counter()
            await store.consistency_proof(old, total)
            consistency.append(time.perf_counter() - started)
        consistent = await prover.prove_consistency(
            store, await prover.signed_checkpoint(store, key, olds[-1]), signed)
    return {"inclusion": inclusion, "consistency": consistency, "positions": positions,
            "proof": proof, "consistent": consistent}


def _checks(proof: evidence.InclusionProof, key: SigningKey) -> tuple[float, float]:
    checks, signatures = [], []
    for _ in range(_QUERIES):
        started = time.perf_counter()
        evidence.check_inclusion(proof, key.verifier)
        checks.append(time.perf_counter() - started)
        started = time.perf_counter()
        open_note(proof.checkpoint, key.verifier)
        signatures.append(time.perf_counter() - started)
    return _us(checks), _us(signatures)


@benchmark("proofs")
def proof_figures(quick: bool) -> list[Figure]:
    total = 20_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "proofs.db"
        key = SigningKey.generate(anyio.run(_build, db, total))
        made = anyio.run(_prove, db, total, key)
        raw_us = _raw_row_us(db, made["positions"])  # type: ignore[arg-type]
    proof, consistent = made["proof"], made["consistent"]
    assert isinstance(proof, evidence.InclusionProof)
    assert isinstance(consistent, evidence.ConsistencyProof)
    check_us, signature_us = _checks(proof, key)
    size, path = len(evidence.encode(proof)), len(proof.path) * 32
    consistency_size = len(evidence.encode(consistent))
    return [
        Figure("proofs.inclusion_us", _us(made["inclusion"]), "us",  # type: ignore[arg-type]
               "raw sqlite3: the event's row by position", raw_us,
               f"p50 of {_QUERIES} random positions in {total:,} events"),
        Figure("proofs.inclusion_bytes", size, "bytes", "its hashes alone", path,
               f"{len(proof.path)} hashes; the document holds the signed checkpoint and the "
               "event's record too"),
        Figure("proofs.consistency_us", _us(made["consistency"]), "us",  # type: ignore[arg-type]
               "raw sqlite3: one row by position", raw_us,
               f"p50 of {_QUERIES} random earlier sizes to {total:,}"),
        Figure("proofs.consistency_bytes", consistency_size, "bytes", "its hashes alone",
               len(consistent.path) * 32, f"{len(consistent.path)} hashes and two signed "
               "checkpoints"),
        Figure("proofs.check_us", check_us, "us", "Ed25519: verifying the checkpoint alone",
               signature_us, "check-proof's work, offline"),
    ]
