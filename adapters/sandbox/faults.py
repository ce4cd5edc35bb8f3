"""Seeded fault injection: the network as it really behaves, replayable from one seed."""

from __future__ import annotations

import random
from collections import deque

import msgspec


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """Probabilities (0 to 1) and bounds of each fault. All draws come from the seeded RNG."""

    duplicate: float = 0.0
    """A webhook delivery is sent twice."""
    reorder_window: int = 1
    """Deliveries are picked at random among the first N due: 1 keeps order."""
    drop: float = 0.0
    """A delivery attempt is lost before it is sent; it is retried later."""
    server_error_before: float = 0.0
    """An API call fails with 503 before doing anything."""
    server_error_after: float = 0.0
    """An API call does its work, then answers 500 (the caller must retry with its key)."""
    max_latency: float = 0.0
    """Each API call waits a random time up to this many seconds."""

    @classmethod
    def chaos(cls) -> Faults:
        """Every fault on, at rates a test suite can live with."""
        return cls(duplicate=0.2, reorder_window=4, drop=0.15, server_error_before=0.05,
                   server_error_after=0.05, max_latency=0.005)


class FaultDice:
    def __init__(self, faults: Faults, rng: random.Random) -> None:
        self.faults, self.rng = faults, rng

    def roll(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def latency(self) -> float:
        return self.rng.uniform(0, self.faults.max_latency) if self.faults.max_latency else 0.0


class ScriptedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """One answer the sandbox gives instead of doing the work: a test's way to meet a given
    failure at a given moment (``Sandbox.answer_next``)."""

    status: int
    code: str
    retry_after: str | None = None
    """The ``Retry-After`` header to send (seconds, or an HTTP date)."""
    path_prefix: str = "/v1/"


_CODES = {401: "unauthorised", 409: "in_flight", 429: "rate_limited", 500: "internal",
          503: "unavailable"}


class Script:
    """Answers queued for the next matching requests, first in first out."""

    def __init__(self) -> None:
        self._queue: deque[ScriptedAnswer] = deque()

    def add(self, status: int, *, times: int = 1, retry_after: str | None = None,
            path_prefix: str = "/v1/", code: str | None = None) -> None:
        answer = ScriptedAnswer(status=status, code=code or _CODES.get(status, "injected"),
                                retry_after=retry_after, path_prefix=path_prefix)
        self._queue.extend([answer] * times)

    def clear(self) -> None:
        self._queue.clear()

    def take(self, path: str) -> ScriptedAnswer | None:
        """The next answer for a request to ``path`` (token requests are never scripted
        unless asked for by prefix, so a scripted 401 does not also fail the refresh)."""
        if self._queue and path.startswith(self._queue[0].path_prefix) and (
                not path.startswith("/v1/auth/")
                or self._queue[0].path_prefix.startswith("/v1/auth/")):
            return self._queue.popleft()
        return None

    def __len__(self) -> int:
        return len(self._queue)
