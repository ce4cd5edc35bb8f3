"""The console script, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CARDLEDGER = str(Path(sys.executable).with_name("cardledger"))


def test_demo_runs_and_verifies_its_chain(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = subprocess.run([CARDLEDGER, "demo", "--db", str(db)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hash chain: intact over 10004 events" in result.stdout
    assert "card is inactive" in result.stdout
    assert "duplicate=True" in result.stdout
    assert db.exists()


def test_help_and_bad_usage() -> None:
    assert "demo" in subprocess.run([CARDLEDGER, "--help"], capture_output=True, text=True,
                                    check=True).stdout
    bad = subprocess.run([CARDLEDGER, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2
