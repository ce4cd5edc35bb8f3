"""The ``cardledger`` command line.

Exit codes: 0 success, 1 a check found a problem, 2 bad usage or bad input.
"""

from __future__ import annotations

import anyio
import click

from adapters import store_demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cardledger: an event-sourced card ledger."""


@main.command()
@click.option("--db", default="cardledger-demo.db", show_default=True,
              help="SQLite file for the demo's ledger (replaced if it exists).")
def demo(db: str) -> None:
    """Run the demonstration on the embedded SQLite store."""
    store_demo.remove_database(db)
    ok = anyio.run(store_demo.run, db)
    raise SystemExit(0 if ok else 1)
