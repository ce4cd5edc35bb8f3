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


def test_sandbox_serves_and_prints_generated_credentials() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with subprocess.Popen([CARDLEDGER, "sandbox", "--port", str(port), "--seed", "4"],
                          stdout=subprocess.PIPE, text=True) as process:
        _check_sandbox(process, port)


def _check_sandbox(process: subprocess.Popen[str], port: int) -> None:
    import signal
    import time

    import httpx

    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
        assert banner[0].startswith(f"sandbox on http://127.0.0.1:{port}")
        assert banner[1].startswith("api key:") and banner[3].startswith("webhook secret: whsec_")
        for _ in range(100):
            try:
                document = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert document["openapi"] == "3.1.0"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
