"""``python -m benchmarks [NAME ...] [--quick] [--json]``: run the project's benchmarks.

Prints a table, or with ``--json`` one JSON object per figure per line. ``--quick`` runs reduced
sizes (the test suite runs it so the benchmarks never rot); its figures are not the ones to
quote. NAME selects benchmarks by prefix (``store``, ``store.read_all``).
"""

from __future__ import annotations

import argparse
import logging
import sys

import msgspec

from benchmarks import (  # noqa: F401
    commands,
    front_door,
    leads,
    postgres,
    projections,
    proofs,
    report,
    simulation,
    statements,
    store,
    sync,
)
from benchmarks.harness import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument("--quick", action="store_true", help="reduced sizes, under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    # Warnings only, and on stderr: stdout is the figures (debug lines would cost time too).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    chosen = [name for name in BENCHMARKS
              if not args.names or any(name.startswith(n.split(".")[0]) for n in args.names)]
    if not chosen:
        parser.error(f"no benchmark matches {args.names}; known: {', '.join(BENCHMARKS)}")
    if not args.json:
        print(f"{'figure':32} {'value':>14}  {'unit':9} {'baseline':>14}  ratio  baseline is")
    for name in chosen:
        for figure in BENCHMARKS[name](args.quick):
            if args.names and not any(figure.name.startswith(n) for n in args.names):
                continue
            if args.json:
                sys.stdout.buffer.write(msgspec.json.encode(figure) + b"\n")
            else:
                ratio = figure.value / figure.baseline_value if figure.baseline_value else 0.0
                print(f"{figure.name:32} {figure.value:14,.1f}  {figure.unit:9} "
                      f"{figure.baseline_value:14,.1f}  {ratio:5.2f}  {figure.baseline}"
                      + (f"  ({figure.note})" if figure.note else ""))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
