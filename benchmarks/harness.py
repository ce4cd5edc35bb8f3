"""What a benchmark returns, and the registry ``python -m benchmarks`` runs from."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec


class Figure(msgspec.Struct, frozen=True):
    """One measured figure beside its baseline, measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    note: str = ""


Benchmark = Callable[[bool], list[Figure]]
"""Takes ``quick`` and returns its figures."""

BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    def register(function: Benchmark) -> Benchmark:
        BENCHMARKS[name] = function
        return function

    return register


class Stopwatch:
    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Stopwatch]:
    watch = Stopwatch()
    started = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - started
