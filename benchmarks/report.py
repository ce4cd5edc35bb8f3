"""The audit report of a large log: how long it takes and how big the file is, beside the raw
read + decode of the same log in the same run (goal: 1,000,000 events in under 60 s and
under 50 MB)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from plotly.offline import get_plotlyjs

from benchmarks.harness import Figure, benchmark
from benchmarks.projections import ROOT, build_log, child


@benchmark("report")
def report_figures(quick: bool) -> list[Figure]:
    total, accounts = (20_000, 100) if quick else (1_000_000, 2_000)
    with tempfile.TemporaryDirectory() as directory:
        db, output = Path(directory) / "ledger.db", Path(directory) / "report.html"
        events = anyio.run(build_log, db, total, accounts)
        read = child("read", db)
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("cardledger")), "report", "--db",
                        str(db), "--output", str(output)], cwd=ROOT, check=True,
                       capture_output=True)
        seconds = time.perf_counter() - started
        size = output.stat().st_size / 1e6
    return [
        Figure("report.seconds", seconds, "s", "read + decode of the same log",
               read["seconds"], f"{events:,} events, {accounts:,} accounts; goal < 60 s"),
        Figure("report.size", size, "MB", "of which Plotly's inlined script",
               len(get_plotlyjs()) / 1e6,
               "goal < 50 MB: a bounded number of charts, bars and listed events"),
    ]
