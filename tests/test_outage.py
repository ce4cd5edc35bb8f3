"""The database going away under ``serve`` and coming back: a webhook meanwhile gets a 503
(the processor sends it again), /health says degraded and why, and once the server is back
``serve`` records and projects again without a restart. A real PostgreSQL server, real HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.sandbox.webhooks import new_secret
from adapters.testing.servers import free_port
from tests.support.cli import CARDLEDGER, cli, get_json
from tests.support.postgres_cluster import Cluster, binaries, new_database
from tests.support.webhooks import card_body, signed


@pytest.fixture
def cluster(postgres_server: str) -> Iterator[Cluster]:  # a server of its own: this test stops it
    found = binaries()
    assert found is not None  # postgres_server skipped or failed otherwise
    own = Cluster(found)
    own.start()
    yield own
    own.stop()


def _post(port: int, secret: str, status: str, minute: int, event_id: str) -> httpx.Response:
    body = card_body(status, minute, event_id=event_id)
    return httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body,
                      headers=signed(body, event_id=event_id, secret=secret), timeout=30)


def _until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_serve_survives_a_postgresql_restart(cluster: Cluster, tmp_path: Path) -> None:
    db = new_database(f"postgresql://cardledger@127.0.0.1:{cluster.port}/postgres")
    port, secret = free_port(), new_secret()
    with (tmp_path / "serve.log").open("w") as log, subprocess.Popen(
            [CARDLEDGER, "--log-level", "info", "serve", "--db", db, "--port", str(port),
             "--webhook-secret", secret], stderr=log) as process:
        try:
            assert get_json(f"http://127.0.0.1:{port}/health")["status"] == "ok"
            assert _post(port, secret, "active", 5, "e-1").status_code == 200

            cluster.pause()
            down = _post(port, secret, "inactive", 6, "e-2")
            assert down.status_code == 503 and down.json()["error"] == "unavailable"
            assert down.headers["retry-after"]
            health = httpx.get(f"http://127.0.0.1:{port}/health").json()
            assert health["status"] == "degraded"
            assert any("database unreachable" in p for p in health["problems"])
            time.sleep(2)  # the background tasks meet the outage too
            assert process.poll() is None

            cluster.resume()
            answers: list[httpx.Response] = []

            def recorded() -> bool:
                answers.append(_post(port, secret, "inactive", 6, "e-2"))
                return answers[-1].status_code == 200

            _until(recorded)
            assert answers[-1].json()["recorded"]  # the first answer that is not a 503...
            again = _post(port, secret, "inactive", 6, "e-2")
            assert again.status_code == 200 and not again.json()["recorded"]  # ...counted once
            _until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").json()["status"]
                   == "ok")
            assert process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
    assert json.loads(cli("anomalies", "--db", db, "--json").stdout) == []
    verified = cli("verify", "--db", db)
    assert verified.returncode == 0 and "chain intact" in verified.stdout, verified.stdout
    assert "projection runner failed; retrying" in (tmp_path / "serve.log").read_text()
