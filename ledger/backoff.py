"""How long to wait before trying again: capped exponential backoff, with optional jitter.

One formula for everything that retries (the projection runner after a failed commit, and the
processor client, the outbox and the sandbox's webhook deliveries), so that a change to it is
made once.
"""

from __future__ import annotations

import random


def backoff(failures: int, base: float, cap: float,
            jitter: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 or more): ``base`` doubled with
    each failure after the first, at most ``cap``. With ``jitter`` (a seeded ``Random`` keeps a
    run reproducible), a random part of that, from half to all of it, so that many clients
    that failed together do not all come back together."""
    assert failures >= 1 and 0 < base <= cap, (failures, base, cap)
    wait = min(cap, base * 2.0 ** min(failures - 1, 64))  # no float overflow after long outages
    return wait * jitter.uniform(0.5, 1.0) if jitter is not None else wait
