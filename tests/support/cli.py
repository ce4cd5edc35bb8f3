"""The installed ``cardledger`` command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

CARDLEDGER = str(Path(sys.executable).with_name("cardledger"))


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDLEDGER, *args], capture_output=True, text=True, timeout=300,
                          input=stdin.decode() if stdin else None)


def get_json(url: str) -> dict[str, object]:
    for _ in range(200):
        try:
            answer: dict[str, object] = httpx.get(url).json()
            return answer
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")
