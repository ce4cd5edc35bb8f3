"""Tamper evidence as an auditor uses it, through the installed ``cardledger`` command on real
SQLite files: keys, checkpoints, proofs checked offline, and ``verify --against``, which
catches what ``verify`` alone cannot: a rewritten history, a cut tail, another database."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import sqlite3
import stat
import subprocess
from pathlib import Path

import httpx
import msgspec
import pytest

from adapters.testing.servers import free_port
from ledger.events import DOMAIN_REGISTRY, FundsDeposited
from ledger.store.planner import GENESIS_HASH, chain_hash
from ledger.store.registry import RECORD_ENCODER
from ledger.store.tree import leaves
from ledger.transparency.merkle import Frontier
from ledger.transparency.note import VerifierKey, open_note
from tests.support import rfc9162
from tests.support.cli import CARDLEDGER, cli, get_json


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with a key pair, and a checkpoint of it kept as cp.txt."""
    folder = tmp_path_factory.mktemp("audited")
    assert cli("demo", "--db", str(folder / "l.db"), "--payments", "14").returncode == 0
    made = cli("keygen", "--db", str(folder / "l.db"), "--output", str(folder / "key"))
    assert made.returncode == 0, made.stderr
    kept = cli("checkpoint", "--db", str(folder / "l.db"), "--key", str(folder / "key"))
    (folder / "cp.txt").write_text(kept.stdout)
    return folder


def _copy(audited: Path, tmp_path: Path) -> Path:
    for name in ("l.db", "key", "key.pub", "cp.txt"):
        shutil.copy(audited / name, tmp_path / name)
    return tmp_path


def _events(db: Path) -> int:
    return int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM events").fetchone()[0])


def _records(db: Path) -> list[bytes]:
    return [bytes(r[0]) for r in sqlite3.connect(db).execute(
        "SELECT record FROM events ORDER BY position")]


def test_keygen_makes_a_private_key_only_its_owner_reads(audited: Path) -> None:
    assert stat.S_IMODE((audited / "key").stat().st_mode) == 0o600
    public = VerifierKey.parse((audited / "key.pub").read_text())
    origin = sqlite3.connect(audited / "l.db").execute(
        "SELECT origin FROM ledger_identity").fetchone()[0]
    assert public.name == origin
    again = cli("keygen", "--db", str(audited / "l.db"), "--output", str(audited / "key"))
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_a_checkpoint_is_a_signed_tlog_checkpoint_of_the_whole_log(audited: Path) -> None:
    public = VerifierKey.parse((audited / "key.pub").read_text())
    origin, size, root, _ = open_note((audited / "cp.txt").read_text(), public).split("\n")
    records = _records(audited / "l.db")
    assert origin == public.name and int(size) == len(records) > 256
    assert root == base64.b64encode(rfc9162.mth(records)).decode()


def test_an_inclusion_proof_is_checked_offline_against_its_event(audited: Path,
                                                                tmp_path: Path) -> None:
    made = cli("prove", "--db", str(audited / "l.db"), "--position", "260", "--checkpoint",
               str(audited / "cp.txt"))
    assert made.returncode == 0, made.stderr
    proof = tmp_path / "proof.json"
    proof.write_text(made.stdout)
    export = cli("export", "--db", str(audited / "l.db")).stdout.splitlines()
    line, other = tmp_path / "line.json", tmp_path / "other.json"
    line.write_text(export[259])
    other.write_text(export[260])
    checked = cli("check-proof", str(proof), "--key", str(audited / "key.pub"), "--event",
                  str(line))
    assert checked.returncode == 0 and "position 260" in checked.stdout, checked.stderr
    records = _records(audited / "l.db")
    assert json.loads(made.stdout)["path"] == [  # the naive RFC implementation's, exactly
        base64.b64encode(h).decode() for h in rfc9162.path(259, records)]
    wrong = cli("check-proof", str(proof), "--key", str(audited / "key.pub"), "--event",
                str(other))
    assert wrong.returncode == 1 and "not the one the proof is about" in wrong.stderr


def _proof(audited: Path, tmp_path: Path,
           edit: dict[str, object]) -> subprocess.CompletedProcess[str]:
    proof = json.loads(cli("prove", "--db", str(audited / "l.db"), "--position", "7",
                           "--checkpoint", str(audited / "cp.txt")).stdout)
    proof.update(edit)
    (tmp_path / "p.json").write_text(json.dumps(proof))
    return cli("check-proof", str(tmp_path / "p.json"), "--key", str(audited / "key.pub"))


def test_a_proof_that_does_not_prove_gets_a_verdict_and_a_non_zero_exit(
        audited: Path, tmp_path: Path) -> None:
    good = json.loads(cli("prove", "--db", str(audited / "l.db"), "--position", "7",
                          "--checkpoint", str(audited / "cp.txt")).stdout)
    note = good["checkpoint"]
    origin, size, root = note.split("\n")[:3]
    smaller = cli("checkpoint", "--db", str(audited / "l.db"), "--key", str(audited / "key"),
                  "--size", "100").stdout
    cases: dict[str, tuple[dict[str, object], int, str]] = {  # edit, exit, verdict
        "another tree size": ({"checkpoint": smaller}, 1, "another tree size"),
        "a hash changed": ({"path": [good["path"][1], *good["path"][1:]]}, 1, "does not lead"),
        "signature over other text": ({"checkpoint": note.replace(f"\n{size}\n", "\n9\n", 1)},
                                      1, "does not match the note"),
        "another ledger's origin": ({"checkpoint": note.replace(origin, "cardledger/x")}, 1,
                                    "no signature by the key"),
        "position past the end": ({"position": 10**6}, 1, "past the end"),
        "a malformed note": ({"checkpoint": "hello"}, 2, "not a signed note"),
        "a malformed checkpoint": ({"checkpoint": note.replace(root, "abc")}, 1,
                                   "does not match"),
        "not a proof": ({"kind": "guess"}, 2, "not a proof"),
        "a hash not base64": ({"path": ["!!"]}, 2, "not base64"),
    }
    for name, (edit, code, reason) in cases.items():
        result = _proof(audited, tmp_path, edit)
        assert result.returncode == code and reason in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr
    past = cli("prove", "--db", str(audited / "l.db"), "--position", "99999", "--checkpoint",
               str(audited / "cp.txt"))
    assert past.returncode == 2 and "past the end" in past.stderr
    (tmp_path / "k.pub").write_text("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/"
                                    "LDE4izWy10TW\n")
    (tmp_path / "p.json").write_text(json.dumps(good))
    other_key = cli("check-proof", str(tmp_path / "p.json"), "--key", str(tmp_path / "k.pub"))
    assert other_key.returncode == 1 and "no signature by the key" in other_key.stderr
    (tmp_path / "bad.pub").write_text("PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/"
                                      "LDE4izWy10TW\n")
    bad_key = cli("check-proof", str(tmp_path / "p.json"), "--key", str(tmp_path / "bad.pub"))
    assert bad_key.returncode == 2 and "id does not match" in bad_key.stderr


def test_a_consistency_proof_shows_the_log_extends_a_kept_checkpoint(
        audited: Path, tmp_path: Path) -> None:
    folder = _copy(audited, tmp_path)
    db, key = str(folder / "l.db"), str(folder / "key")
    kept_size = _events(folder / "l.db")
    _deposit(folder / "l.db", "0xc1")
    made = cli("prove", "--db", db, "--from-size", str(kept_size), "--key", key)
    assert made.returncode == 0, made.stderr
    (folder / "c.json").write_text(made.stdout)
    checked = cli("check-proof", str(folder / "c.json"), "--key", key + ".pub", "--kept",
                  str(folder / "cp.txt"))
    assert checked.returncode == 0 and f"extends its log of {kept_size}" in checked.stdout
    (folder / "old.txt").write_text(cli("checkpoint", "--db", db, "--key", key, "--size",
                                        "5").stdout)
    other = cli("check-proof", str(folder / "c.json"), "--key", key + ".pub", "--kept",
                str(folder / "old.txt"))
    assert other.returncode == 1 and "not the checkpoint kept" in other.stderr


def _deposit(db: Path, transaction: str) -> None:
    made = cli("deposit", "--db", str(db), "--account", _an_account(db), "--amount", "5.00",
               "--chain-transaction", f"eip155:324:{transaction}")
    assert made.returncode == 0, made.stderr


def _an_account(db: Path) -> str:
    for (record,) in sqlite3.connect(db).execute("SELECT record FROM events"):
        payload = DOMAIN_REGISTRY.decode_stored(record).payload
        if isinstance(payload, FundsDeposited):
            return payload.account_id
    raise AssertionError("no deposit")


def _rewrite_amount(db: Path) -> None:
    """What a writer of the file can do: change a deposit's amount, then recompute every
    hash after it and the whole tree, so that the walk finds nothing wrong."""
    connection = sqlite3.connect(db)
    for trigger in ("events_no_update", "merkle_nodes_no_delete"):
        connection.execute(f"DROP TRIGGER {trigger}")
    rows = connection.execute("SELECT position, record FROM events ORDER BY position").fetchall()
    previous, records, changed = GENESIS_HASH, [], False
    for position, record in rows:
        stored = DOMAIN_REGISTRY.decode_stored(record)
        if not changed and isinstance(stored.payload, FundsDeposited):
            payload = msgspec.structs.replace(stored.payload, amount=stored.payload.amount * 10)
            raw = msgspec.msgpack.decode(record)
            raw[5] = msgspec.Raw(DOMAIN_REGISTRY.encode_payload(payload)[2])
            record, changed = RECORD_ENCODER.encode(raw), True
        previous = chain_hash(previous, record)
        records.append(record)
        connection.execute("UPDATE events SET record = ?, hash = ? WHERE position = ?",
                           (record, previous, position))
    connection.execute("DELETE FROM merkle_nodes")
    connection.executemany("INSERT INTO merkle_nodes VALUES (?, ?, ?)",
                           Frontier().extend(leaves(records)))
    connection.commit()


def _cut_tail(db: Path) -> None:
    connection = sqlite3.connect(db)
    for trigger in ("events_no_delete", "merkle_nodes_no_delete"):
        connection.execute(f"DROP TRIGGER {trigger}")
    keep = _events(db) - 40
    connection.execute("DELETE FROM events WHERE position > ?", (keep,))
    connection.execute("DELETE FROM merkle_nodes WHERE (idx + 1) << level > ?", (keep,))
    connection.commit()


def _swap(db: Path) -> None:
    other = db.with_name("other.db")
    assert cli("demo", "--db", str(other), "--payments", "14").returncode == 0
    db.unlink()
    other.rename(db)


@pytest.mark.parametrize(("tamper", "reason"), [
    (_rewrite_amount, "the log was rewritten"),
    (_cut_tail, "its tail was cut off"),
    (_swap, "names another ledger"),
])
def test_what_verify_alone_passes_verify_against_a_checkpoint_catches(
        audited: Path, tmp_path: Path, tamper: object, reason: str) -> None:
    folder = _copy(audited, tmp_path)
    db = folder / "l.db"
    assert callable(tamper)
    tamper(db)
    alone = cli("verify", "--db", str(db))
    assert alone.returncode == 0 and "chain intact" in alone.stdout, alone.stdout
    against = cli("verify", "--db", str(db), "--against", str(folder / "cp.txt"), "--key",
                  str(folder / "key.pub"))
    assert against.returncode == 1 and reason in against.stdout, against.stdout


def test_verify_against_passes_on_the_untouched_log_and_after_it_grew(
        audited: Path, tmp_path: Path) -> None:
    folder = _copy(audited, tmp_path)
    args = ["verify", "--db", str(folder / "l.db"), "--against", str(folder / "cp.txt"),
            "--key", str(folder / "key.pub")]
    assert cli(*args).returncode == 0
    _deposit(folder / "l.db", "0xc2")
    grown = cli(*args)
    assert grown.returncode == 0 and "extends every checkpoint given" in grown.stdout


def test_an_export_carries_its_checkpoint_and_replay_checks_it(audited: Path,
                                                               tmp_path: Path) -> None:
    export = tmp_path / "e.jsonl"
    assert cli("export", "--db", str(audited / "l.db"), "--output", str(export), "--key",
               str(audited / "key")).returncode == 0
    public = str(audited / "key.pub")
    assert cli("replay", "--from", str(export), "--key", public).returncode == 0
    lines = export.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-2] + lines[-1:]))
    result = cli("replay", "--from", str(cut), "--key", public)
    assert result.returncode == 1 and "it was cut or extended" in result.stdout
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(lines[:-1]))
    result = cli("replay", "--from", str(bare), "--key", public)
    assert result.returncode == 1 and "carries no checkpoint" in result.stdout


def test_serve_publishes_checkpoints_over_http_and_to_a_file(audited: Path,
                                                             tmp_path: Path) -> None:
    from tests.support.webhooks import card_body, signed

    folder = _copy(audited, tmp_path)
    port, secret = free_port(), "whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0"
    published = folder / "latest.txt"
    public = VerifierKey.parse((folder / "key.pub").read_text())
    with subprocess.Popen([CARDLEDGER, "serve", "--db", str(folder / "l.db"), "--port",
                           str(port), "--webhook-secret", secret, "--checkpoint-key",
                           str(folder / "key"), "--checkpoint-file", str(published),
                           "--checkpoint-every-events", "1"]) as process:
        try:
            get_json(f"http://127.0.0.1:{port}/health")
            before = int(open_note(httpx.get(f"http://127.0.0.1:{port}/checkpoint").text,
                                   public).split("\n")[1])
            body = card_body("active", 5)
            assert httpx.post(f"http://127.0.0.1:{port}/webhooks", content=body,
                              headers=signed(body, secret=secret)).status_code == 200
            after = int(open_note(httpx.get(f"http://127.0.0.1:{port}/checkpoint").text,
                                  public).split("\n")[1])
            assert after > before == _events(audited / "l.db")
            for _ in range(100):
                if published.exists() and int(open_note(published.read_text(), public)
                                               .split("\n")[1]) == after:
                    break
                __import__("time").sleep(0.05)
            else:
                raise AssertionError("the checkpoint file never caught up")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def test_a_key_signs_for_its_own_ledger_only(audited: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    assert cli("demo", "--db", str(other), "--payments", "1").returncode == 0
    refused = cli("checkpoint", "--db", str(other), "--key", str(audited / "key"))
    assert refused.returncode == 2 and "the key signs for cardledger/" in refused.stderr
