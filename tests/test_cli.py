"""The console script, run as a user runs it: in a subprocess, on real files."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from adapters.testing.servers import free_port
from ledger.testing import webhook_payload
from tests.support.cli import CARDLEDGER, cli, get_json
from tests.support.known_history import T0, known_history_snapshots


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A ledger made by the CLI from archived webhooks with known answers, plus a deposit."""
    db = tmp_path / "ledger.db"
    make_ledger(str(db), tmp_path)
    return db


def make_ledger(db: str, tmp_path: Path) -> None:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"".join(
        webhook_payload(s, uuid.UUID(int=n + 1)) + b"\n"
        for n, s in enumerate(known_history_snapshots())))
    ingested = cli("ingest", "--db", db, str(archive))
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.startswith("13 deliveries: 13 recorded")
    deposit = cli("deposit", "--db", db, "--account", "a1", "--amount", "100.00",
                  "--chain-transaction", "eip155:324:0xaa")
    assert deposit.returncode == 0, deposit.stderr


def test_ingest_balances_and_holds_give_the_known_answers(ledger: Path) -> None:
    def balances(*args: str) -> dict[str, str]:
        result = cli("balances", "--db", str(ledger), "--json", *args)
        assert result.returncode == 0, result.stderr
        (row,) = json.loads(result.stdout)
        return {k: row[k] for k in ("deposits", "debits", "credits", "posted", "held",
                                    "available")}

    # Day 35: the deposit (recorded today) is not there yet; hold h2 was pending when the card
    # was terminated on day 10, so it holds until day 40.
    day35 = (T0 + timedelta(days=35)).isoformat()
    assert balances("--as-of", day35) == {"deposits": "0", "debits": "30.00", "credits": "5.00",
                                          "posted": "-25.00", "held": "25.00",
                                          "available": "-50.00"}
    assert balances() == {"deposits": "100.00", "debits": "30.00", "credits": "5.00",
                          "posted": "75.00", "held": "0", "available": "75.00"}
    result = cli("holds", "--db", str(ledger), "--json", "--as-of", day35)
    (h2,) = json.loads(result.stdout)
    assert (h2["authorisationId"], h2["remaining"], h2["expiresAt"][:10]) == (
        "h2", "25.00", "2026-03-13")
    assert h2["cardStatus"] == "terminated, capture window open until 2026-03-13"
    everything = json.loads(cli("holds", "--db", str(ledger), "--json", "--all").stdout)
    assert {(h["authorisationId"], h["closed"]) for h in everything} == {
        ("h1", "captured"), ("h2", "expired"), ("h3", "released")}
    table = cli("balances", "--db", str(ledger))
    assert "75.00" in table.stdout and table.returncode == 0


def test_verify_intact_then_tampered(ledger: Path) -> None:
    intact = cli("verify", "--db", str(ledger))
    assert intact.returncode == 0 and "chain intact" in intact.stdout
    db = sqlite3.connect(ledger)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET record = record || x'00' WHERE position = 5")
    db.commit()
    db.close()
    broken = cli("verify", "--db", str(ledger))
    assert broken.returncode == 1 and "chain broken at position 5" in broken.stdout


def test_export_then_replay_from_the_file_alone(ledger: Path, tmp_path: Path) -> None:
    exported = tmp_path / "log.jsonl"
    assert cli("export", "--db", str(ledger), "--output", str(exported)).returncode == 0
    *lines, last = exported.read_text().splitlines()
    assert len(lines) > 10 and all("hash" in json.loads(line) for line in lines)
    assert json.loads(last)["checkpoint"].split("\n")[1] == str(len(lines))
    from_db = cli("replay", "--db", str(ledger), "--json")
    assert from_db.returncode == 0, from_db.stdout
    assert json.loads(from_db.stdout)["drift"] == []
    from_file = cli("replay", "--db", str(tmp_path / "nothing.db"), "--from", str(exported),
                    "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["balances"] == json.loads(from_db.stdout)["balances"]
    lines[3] = lines[3].replace('"hash":"', '"hash":"00', 1)[:-1] + "}"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines))
    assert cli("replay", "--from", str(tampered)).returncode in (1, 2)


@pytest.mark.parametrize(("args", "reason"), [
    (["ingest", "--db", "{db}", "/no/such/file.jsonl"], "No such file"),
    (["ingest", "--db", "{db}", "-"], "invalid line"),
    (["balances", "--db", "{db}", "--account", "nobody"], "no account 'nobody'"),
    (["balances", "--db", "{db}", "--as-of", "yesterday"], "not an ISO 8601 time"),
    (["holds", "--db", "{db}", "--as-of", "2026-13-45"], "not an ISO 8601 time"),
    (["balances", "--db", "/no/such/ledger.db"], "no ledger at"),
    (["deposit", "--db", "{db}", "--account", "a1", "--amount", "1.5e3",
      "--chain-transaction", "eip155:1:0x1"], "not a plain non-negative decimal"),
    (["card", "terminate", "--db", "{db}", "no-such-card"], "no card 'no-such-card'"),
    (["replay", "--from", "/no/such/export.jsonl"], "does not exist"),
    (["no-such-command"], "No such command"),
])
def test_bad_input_exits_2_with_a_one_line_reason(ledger: Path, args: list[str],
                                                  reason: str) -> None:
    result = cli(*(a.replace("{db}", str(ledger)) for a in args), stdin=b"{broken\n")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines and reason in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help() -> None:
    for command in ("demo", "sandbox", "serve", "sync", "reconcile", "deposit", "ingest",
                    "balances", "holds", "anomalies", "verify", "export", "replay", "card",
                    "outbox", "report", "keygen", "checkpoint", "prove", "check-proof",
                    "rebuild"):
        result = cli(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_sandbox_serves_and_prints_generated_credentials() -> None:
    port = free_port()
    with subprocess.Popen([CARDLEDGER, "sandbox", "--port", str(port), "--seed", "4"],
                          stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(4)]
            assert banner[0].startswith(f"sandbox on http://127.0.0.1:{port}")
            assert banner[1].startswith("api key:")
            assert banner[3].startswith("webhook secret: whsec_")
            assert get_json(f"http://127.0.0.1:{port}/openapi.json")["openapi"] == "3.1.0"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


def test_serve_receives_webhooks_and_stops_on_sigterm(tmp_path: Path) -> None:
    from adapters.sandbox.webhooks import new_secret

    port, secret = free_port(), new_secret()
    with subprocess.Popen([CARDLEDGER, "serve", "--db", str(tmp_path / "l.db"), "--port",
                           str(port), "--webhook-secret", secret]) as process:
        try:
            health = get_json(f"http://127.0.0.1:{port}/health")
            assert health["status"] == "ok"
            from tests.support.webhooks import card_body, signed

            body = card_body("active", 5)
            answer = httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body,
                                headers=signed(body, secret=secret))
            assert answer.status_code == 200 and answer.json()["recorded"]
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert 'cardledger_webhooks_total{outcome="recorded",reason=""} 1.0' in metrics
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0





def test_the_commands_work_on_postgresql_as_on_sqlite(postgres_database: str,
                                                     tmp_path: Path) -> None:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"".join(webhook_payload(s, uuid.UUID(int=n + 1)) + b"\n"
                                 for n, s in enumerate(known_history_snapshots())))
    sqlite = str(tmp_path / "ledger.db")
    for db in (postgres_database, sqlite):
        assert cli("ingest", "--db", db, str(archive)).returncode == 0
    verified = cli("verify", "--db", postgres_database)
    assert verified.returncode == 0 and "chain intact" in verified.stdout
    exported = cli("export", "--db", postgres_database)
    assert len(exported.stdout.splitlines()) > 13
    for report in (["balances"], ["holds", "--all"], ["anomalies"]):
        on_postgres = cli(*report, "--json", "--db", postgres_database, "--as-of", "2026-03-01")
        on_sqlite = cli(*report, "--json", "--db", sqlite, "--as-of", "2026-03-01")
        assert on_postgres.returncode == 0 and on_postgres.stdout == on_sqlite.stdout
    audited = cli("replay", "--json", "--db", postgres_database)
    assert audited.returncode == 0 and json.loads(audited.stdout)["drift"] == []


def test_sqlite_url_options_name_the_same_file_for_every_command(ledger: Path) -> None:
    url = f"sqlite:///{ledger}?synchronous=normal"
    result = cli("balances", "--db", url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(cli("balances", "--db", str(ledger),
                                                       "--json").stdout)


def test_serve_refuses_an_empty_webhook_secret(tmp_path: Path) -> None:
    result = cli("serve", "--db", str(tmp_path / "l.db"), "--webhook-secret", "")
    assert result.returncode == 2 and "whsec_" in result.stderr


@pytest.mark.parametrize("url", ["postgresql://127.0.0.1:{port}/ledger", "postgresql://x/y"])
def test_an_unreachable_database_exits_3_an_outage(url: str) -> None:
    result = cli("verify", "--db", url.format(port=free_port()))  # refused; no such host
    assert result.returncode == 3, result.stderr
    assert "cannot connect to PostgreSQL" in result.stderr and "Traceback" not in result.stderr


def test_outbox_lists_a_refusal_and_retries_it_as_a_new_request(tmp_path: Path) -> None:
    import anyio

    from adapters.processor.outbox import Outbox
    from adapters.service.commands import Commands
    from ledger import open_store
    from tests.support.sandbox import client_for, sandbox

    db = tmp_path / "l.db"

    async def refused_once() -> str:
        box = sandbox()
        async with open_store(db) as store, client_for(box) as client:
            request = await Commands(store).register_customer(
                "ext-1", "eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb")
            box.script.add(422, code="declined")
            assert await Outbox(store, client).dispatch() == 1
            return str(request.request_id)

    request_id = anyio.run(refused_once)
    (listed,) = json.loads(cli("outbox", "list", "--db", str(db), "--json").stdout)
    assert (listed["requestId"], listed["state"], listed["status"]) == (request_id, "refused",
                                                                        422)
    assert "declined" in listed["reason"]
    retried = cli("outbox", "retry", "--db", str(db), request_id)
    assert retried.returncode == 0 and request_id in retried.stdout, retried.stderr
    (pending,) = json.loads(cli("outbox", "list", "--db", str(db), "--json").stdout)
    assert (pending["state"], pending["retryOf"]) == ("pending", request_id)
    everything = json.loads(cli("outbox", "list", "--all", "--db", str(db), "--json").stdout)
    assert [e["state"] for e in everything] == ["retried", "pending"]
    unknown = cli("outbox", "retry", "--db", str(db), str(uuid.uuid4()))
    assert unknown.returncode == 2 and "no refused request" in unknown.stderr


def test_verify_sees_a_crashed_ledger_whose_events_are_still_in_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    writer = (  # appends, then dies without closing: the events are only in the WAL
        "import anyio, os, signal\n"
        "from datetime import UTC, datetime\n"
        "from decimal import Decimal\n"
        "from ledger import NewEvent, open_store\n"
        "from ledger.domain.programme import stream_for\n"
        "from ledger.events import FundsDeposited\n"
        "async def main():\n"
        f"    async with open_store({str(db)!r}) as store:\n"
        "        for n in range(300):\n"
        "            d = FundsDeposited(account_id='a1', amount=Decimal(1), currency='EUR',\n"
        "                               chain_transaction=f'eip155:1:0x{n:x}',\n"
        "                               at=datetime.now(UTC))\n"
        "            await store.append(stream_for(d), [NewEvent(payload=d)])\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "anyio.run(main)\n")
    died = subprocess.run([sys.executable, "-c", writer], capture_output=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert (tmp_path / "l.db-wal").stat().st_size > db.stat().st_size  # not checkpointed
    verified = cli("verify", "--db", str(db))
    assert verified.returncode == 0 and "300 events" in verified.stdout, verified.stderr


def test_rebuild_swaps_in_the_same_balances(ledger: Path) -> None:
    before = cli("balances", "--db", str(ledger), "--json")
    said = cli("rebuild", "--db", str(ledger))
    assert said.returncode == 0, said.stderr
    assert said.stdout.endswith("events; swapped in by this process\n"), said.stdout
    rebuilt = cli("rebuild", "--db", str(ledger), "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["rebuilt_to"] > 10
    assert not Path(f"{ledger}-ledger~rebuild.projection").exists()
    assert cli("balances", "--db", str(ledger), "--json").stdout == before.stdout


def test_rebuild_in_parts_swaps_in_the_same_balances(ledger: Path) -> None:
    before = cli("balances", "--db", str(ledger), "--json")
    said = cli("rebuild", "--db", str(ledger), "--workers", "2")
    assert said.returncode == 0, said.stderr
    assert said.stdout.endswith("events; swapped in by this process\n"), said.stdout
    assert cli("balances", "--db", str(ledger), "--json").stdout == before.stdout
    for wrong in ("0", "9", "two"):
        refused = cli("rebuild", "--db", str(ledger), "--workers", wrong)
        assert refused.returncode == 2 and "--workers" in refused.stderr, refused.stderr


def test_rebuild_on_postgresql_online_and_in_place(postgres_database: str,
                                                   tmp_path: Path) -> None:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"".join(webhook_payload(s, uuid.UUID(int=n + 1)) + b"\n"
                                 for n, s in enumerate(known_history_snapshots())))
    assert cli("ingest", "--db", postgres_database, str(archive)).returncode == 0
    before = cli("balances", "--db", postgres_database, "--json")
    online = cli("rebuild", "--db", postgres_database, "--workers", "2")
    assert online.returncode == 0, online.stderr
    assert online.stdout.endswith("events; swapped in by this process\n"), online.stdout
    assert cli("balances", "--db", postgres_database, "--json").stdout == before.stdout
    rebuilt = cli("rebuild", "--db", postgres_database, "--in-place", "--workers", "2")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("rebuilt the projections in place from the log's ")
    assert cli("balances", "--db", postgres_database, "--json").stdout == before.stdout
    audited = cli("replay", "--json", "--db", postgres_database)
    assert audited.returncode == 0 and json.loads(audited.stdout)["drift"] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rebuild_beside_a_serving_process_is_swapped_in_by_it(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from adapters.sandbox.webhooks import new_secret

    ledger = str(tmp_path / "ledger.db") if backend == "sqlite" else str(
        request.getfixturevalue("postgres_database"))
    make_ledger(ledger, tmp_path)
    before = cli("balances", "--db", ledger, "--json").stdout
    port = free_port()
    with subprocess.Popen([CARDLEDGER, "serve", "--db", ledger, "--port", str(port),
                           "--webhook-secret", new_secret()]) as serving:
        try:
            assert get_json(f"http://127.0.0.1:{port}/health")["status"] == "ok"
            rebuilt = cli("rebuild", "--db", ledger, "--json")
            assert rebuilt.returncode == 0, rebuilt.stderr
            said = json.loads(rebuilt.stdout)
            assert (said["swapped"], said["swapped_by"]) == (True, "serving")
            assert said["rebuilt_to"] > 10
        finally:
            serving.send_signal(signal.SIGTERM)
            assert serving.wait(timeout=20) == 0
    assert not Path(f"{ledger}-ledger~rebuild.projection").exists()
    assert cli("balances", "--db", ledger, "--json").stdout == before
    audited = cli("replay", "--json", "--db", ledger)
    assert audited.returncode == 0 and json.loads(audited.stdout)["drift"] == []
