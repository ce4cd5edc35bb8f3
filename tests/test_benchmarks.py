"""The benchmark harness runs (reduced sizes) and speaks the documented JSON; no timing is
asserted here: figures belong to ``python -m benchmarks``, not to tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from benchmarks.harness import Figure

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmarks_print_one_json_figure_per_line() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = [msgspec.json.decode(line, type=Figure) for line in result.stdout.splitlines()]
    names = [f.name for f in figures]
    assert {"store.append_batched", "store.append_concurrent", "store.read_all"} <= set(names)
    for figure in figures:
        assert figure.value > 0 and figure.baseline_value > 0 and figure.baseline


def test_benchmarks_can_be_chosen_by_name() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks", "store.read_all", "--quick",
                             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=True)
    assert [msgspec.json.decode(line, type=Figure).name
            for line in result.stdout.splitlines()] == ["store.read_all"]
    bad = subprocess.run([sys.executable, "-m", "benchmarks", "nope"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no benchmark matches" in bad.stderr
