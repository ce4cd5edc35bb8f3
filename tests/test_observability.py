"""The library's logs and traces belong to the host: stdlib loggers named ``cardledger.*``,
nothing printed and nothing configured by the library itself (the CLI configures its own);
OpenTelemetry spans, when the API is installed, inside the host's own trace."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from ledger.testing import webhook_payload
from tests.support.cli import cli
from tests.support.known_history import known_history_snapshots

_SERVICE = """
import logging, sys
from datetime import UTC, datetime
import anyio, structlog
from adapters import AccountSnapshot, CardLedger

async def main() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    async with CardLedger.open(sys.argv[1]) as ledger:
        await ledger.record(AccountSnapshot(id="a1", customer_id="c1", status="active",
                                            currencies=["EUR"], created_at=at, updated_at=at))

logging.getLogger("cardledger").setLevel(logging.DEBUG)  # enabled, but no handler of ours
assert logging.getLogger("cardledger").handlers == [] and not structlog.is_configured()
if sys.argv[2] == "with-handler":
    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            print(record.name, record.levelname, record.getMessage(), record.fields)
    logging.getLogger().addHandler(Keep())
anyio.run(main)
assert not structlog.is_configured()
"""


def test_an_embedded_ledger_prints_nothing_and_logs_through_stdlib(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(_SERVICE)

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), str(tmp_path / f"{mode}.db"), mode],
                              capture_output=True, text=True, check=True)

    quiet = run("no-handler")
    assert quiet.stdout == "" and quiet.stderr == ""  # nothing printed behind the host's back
    heard = run("with-handler").stdout.splitlines()
    assert any(line.startswith("cardledger.observer DEBUG observation recorded")
               and "'stream': 'account-a1'" in line for line in heard), heard


def test_the_cli_configures_its_own_logs_as_json_lines(tmp_path: Path) -> None:
    archive = tmp_path / "webhooks.jsonl"
    archive.write_bytes(b"".join(webhook_payload(s, uuid.UUID(int=n + 1)) + b"\n"
                                 for n, s in enumerate(known_history_snapshots()[:2])))
    made = cli("--log-format", "json", "--log-level", "debug", "ingest", "--db",
               str(tmp_path / "l.db"), str(archive))
    assert made.returncode == 0, made.stderr
    lines = [json.loads(line) for line in made.stderr.splitlines()]
    recorded = [line for line in lines if line["logger"] == "cardledger.observer"]
    assert len(recorded) == 2 and recorded[0]["level"] == "debug"
    assert recorded[0]["message"].startswith("observation recorded")
    assert recorded[0]["stream"].startswith(("account-", "customer-", "card-"))


_TRACED = """
import sys
from datetime import UTC, datetime
import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from adapters import AccountSnapshot, CardLedger

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    async with CardLedger.open(sys.argv[1]) as ledger:
        with trace.get_tracer("host").start_as_current_span("host request"):
            await ledger.record(AccountSnapshot(id="a1", customer_id="c1", status="active",
                                                currencies=["EUR"], created_at=at, updated_at=at))
        await ledger.wait_until_visible()

anyio.run(main)
spans = {s.name: s for s in exporter.get_finished_spans()}
host = spans["host request"].context.trace_id
for name in ("cardledger.record", "cardledger.append"):
    assert spans[name].context.trace_id == host, name  # inside the host's trace
assert spans["cardledger.append"].attributes["stream"] == "account-a1"
assert "cardledger.projection_commit" in spans
print(sorted(spans))
"""


def test_spans_wrap_record_append_and_projection_commit_in_the_host_trace(
        tmp_path: Path) -> None:
    script = tmp_path / "traced.py"
    script.write_text(_TRACED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "l.db")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cardledger.record" in done.stdout


def test_without_opentelemetry_spans_are_no_ops(tmp_path: Path) -> None:
    script = tmp_path / "untraced.py"
    script.write_text("import sys\nsys.modules['opentelemetry'] = None  # not installed\n"
                      + _SERVICE.replace("anyio.run(main)",
                                         "anyio.run(main)\nimport ledger.tracing as t\n"
                                         "assert t.span is t._noop"))
    subprocess.run([sys.executable, str(script), str(tmp_path / "l.db"), "no-handler"],
                   check=True)
