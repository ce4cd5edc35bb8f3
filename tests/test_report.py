"""The audit report, for real: the demo's ledger, its HTML parsed, its figures beside what
``balances --json`` says for the same moment, and a tampered ledger shown as failed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.cli import cli


class Page(HTMLParser):
    """What a test reads of the report: the parse must succeed, tags balance, and the
    chain result and balance table are found by id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.ids: dict[str, dict[str, str | None]] = {}
        self.cells: list[tuple[str, str]] = []  # (data-field, text) of the balance table
        self.scripts_from: list[str] = []
        self._field: str | None = None
        self._in_table = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag not in ("meta", "br", "img", "link", "input", "hr"):
            self.open.append(tag)
        if "id" in found and found["id"] is not None:
            self.ids[found["id"]] = found
        if tag == "script" and found.get("src"):
            self.scripts_from.append(found["src"] or "")
        self._in_table = self._in_table or found.get("id") == "balance-table"
        self._field = found.get("data-field") if self._in_table else None

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag == "table":
            self._in_table = False

    def handle_data(self, data: str) -> None:
        if self._field is not None:
            self.cells.append((self._field, data))
            self._field = None


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    ran = cli("demo", "--db", str(db), "--payments", "150")
    assert ran.returncode == 0, ran.stderr
    return db, ran.stdout


@pytest.fixture
def demo(demo_run: tuple[Path, str]) -> Path:
    return demo_run[0]


def test_the_demo_runs_end_to_end_and_writes_its_report(demo_run: tuple[Path, str]) -> None:
    demo, printed = demo_run
    assert "sandbox agrees" in printed and "NO " not in printed
    assert "reconciliation with the processor: no difference" in printed
    assert "hash chain: intact" in printed
    assert "replay from the log: identical to the stored projections" in printed
    assert f"audit report (HTML, opens offline): {demo.with_suffix('.report.html')}" in printed
    page = Page(demo.with_suffix(".report.html").read_text())
    assert page.open == [] and page.scripts_from == []  # balanced, nothing fetched
    assert page.ids["chain"]["data-ok"] == "true"
    for section in ("verification", "balances", "holds", "anomalies", "reconciliation", "made"):
        assert section in page.ids
    assert page.ids["reconciled"]["data-differences"] == "0"  # the demo reconciles with it


def test_the_report_carries_the_figures_balances_gives(demo: Path, tmp_path: Path) -> None:
    as_of = "2031-01-01T00:00:00+00:00"
    output = tmp_path / "r.html"
    made = cli("report", "--db", str(demo), "--as-of", as_of, "--output", str(output))
    assert made.returncode == 0, made.stderr
    page = Page(output.read_text())
    columns = ["accountId", "currency", "deposits", "debits", "credits", "posted", "held",
               "available"]
    shown = [dict(zip(columns, (text for _, text in page.cells[i:i + len(columns)]),
                      strict=True)) for i in range(0, len(page.cells), len(columns))]
    balances = json.loads(cli("balances", "--db", str(demo), "--as-of", as_of,
                              "--json").stdout)
    assert shown and sorted(shown, key=str) == sorted(balances, key=str)


def test_a_tampered_ledger_is_reported_as_failed(demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    shutil.copy(demo, copy)
    db = sqlite3.connect(copy)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET record = record || x'00' WHERE position = 40")
    db.commit()
    db.close()
    output = tmp_path / "r.html"
    made = cli("report", "--db", str(copy), "--output", str(output))
    assert made.returncode == 1
    chain = Page(output.read_text()).ids["chain"]
    assert (chain["data-ok"], chain["data-first-bad"]) == ("false", "40")


def test_an_export_gives_the_same_report_without_the_database(demo: Path,
                                                              tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    assert cli("export", "--db", str(demo), "--output", str(export)).returncode == 0
    as_of = "2031-01-01T00:00:00+00:00"
    pages = []
    for source in (["--db", str(demo)], ["--from", str(export)]):
        output = tmp_path / f"{source[0][2:]}.html"
        made = cli("report", *source, "--as-of", as_of, "--output", str(output))
        assert made.returncode == 0, made.stderr
        pages.append(Page(output.read_text()))
    assert pages[0].cells == pages[1].cells and pages[1].ids["chain"]["data-ok"] == "true"
    assert pages[1].ids["reconciled"]["data-run"] == "false"


def test_a_database_url_is_shown_without_its_password() -> None:
    from ledger.store.location import redacted

    assert redacted("postgresql://ledger:s3cret@db:5432/l") == "postgresql://ledger:***@db:5432/l"
    assert redacted("postgresql://ledger@db/l") == "postgresql://ledger@db/l"
    assert redacted("sqlite:///x.db") == "sqlite:///x.db"
