"""Crash safety: SIGKILL a writer at random moments; every acknowledged append survives whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import anyio
import pytest

from ledger import open_store
from tests.support.sample_events import REGISTRY, Noted

ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(path: Path, round_number: int, delay: float) -> list[tuple[str, str, int, int]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_child", str(path), str(round_number)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    output, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    acks = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "ack":  # a line cut by the kill is not an ack
            acks.append((parts[1], parts[2], int(parts[3]), int(parts[4])))
    return acks


async def _check(path: Path, acknowledged: list[tuple[str, str, int, int]]) -> int:
    async with open_store(path, registry=REGISTRY) as store:
        log = [e async for e in store.read_all()]
        report = await store.verify()
    assert report.ok, report
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    batches: dict[str, list[tuple[int, Noted]]] = defaultdict(list)
    for event in log:
        assert isinstance(event.payload, Noted)
        batches[event.payload.batch].append((event.position, event.payload))
    # No partial batch: every batch in the log is whole and contiguous.
    for members in batches.values():
        size = members[0][1].size
        assert [p.index for _, p in members] == list(range(size))
        assert [pos for pos, _ in members] == list(range(members[0][0], members[0][0] + size))
    # Every acknowledged batch is there, where its acknowledgement said.
    for batch_id, stream, size, first in acknowledged:
        members = batches[batch_id]
        assert len(members) == size, f"acknowledged batch {batch_id} lost"
        assert members[0][0] == first
        assert log[first - 1].stream == stream
    return len(log)


@pytest.mark.slow
def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(20261121)
    acknowledged: list[tuple[str, str, int, int]] = []
    sizes = []
    for round_number in range(5):
        acks = _run_and_kill(path, round_number, rng.uniform(0.2, 0.8))
        assert acks, "the child acknowledged nothing before it was killed"
        acknowledged += acks
        sizes.append(anyio.run(_check, path, acknowledged))
    assert sizes == sorted(sizes) and sizes[0] > 0
