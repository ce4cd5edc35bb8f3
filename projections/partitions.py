"""A rebuild in parts: the log's accounts cut into ranges, each folded by a process of its own.

Every read model is per account (``projections.live``): an account's rows depend on its own
events alone, in log order. So the accounts can be cut into contiguous ranges of about the
same number of events (``plan_parts``, from the log's account index), and each range folded by
a worker process into a projection of its own (``build_part``), all reading the same prefix
of the log, up to one position. The rebuilt projection then takes the parts' rows in one
transaction, at that position (``ProjectionBackend.merge``), and catches up from there as
usual. Events of no account (customer-level) make no rows but their anomalies: the first
part takes them.
"""

from __future__ import annotations

import sys

import anyio
import msgspec

from ledger.domain.hold import HoldPolicy
from ledger.store import AccountRange
from projections.backends import ProjectionFailedError

MAX_WORKERS = 8
"""Parts at most: SQLite attaches at most ten files to one connection for the merge."""


def plan_parts(sizes: list[tuple[str | None, int]], workers: int) -> list[AccountRange]:
    """At most ``workers`` contiguous ranges of the accounts of ``sizes`` (events per account,
    in account order, None first: ``EventStore.account_sizes``), each with at least one
    account, cut where the running count passes each equal share."""
    unowned = sum(size for account, size in sizes if account is None)
    owned = [(account, size) for account, size in sizes if account is not None]
    if not owned:
        return [AccountRange(None, None, unowned=True)]
    count = min(workers, len(owned))
    total = unowned + sum(size for _, size in owned)
    parts: list[AccountRange] = []
    first, filled = owned[0][0], unowned
    for n, (account, size) in enumerate(owned[:-1]):
        filled += size
        parts_left, accounts_left = count - len(parts) - 1, len(owned) - n - 1
        if parts_left and (filled * count >= total * (len(parts) + 1)
                           or accounts_left == parts_left):
            parts.append(AccountRange(first, account, unowned=not parts))
            first = owned[n + 1][0]
    parts.append(AccountRange(first, owned[-1][0], unowned=not parts))
    return parts


class PartJob(msgspec.Struct, frozen=True):
    """What a worker process is asked (on its stdin: a database URL may hold a password,
    which a command line would show to every user of the machine)."""

    url: str
    name: str
    part: AccountRange
    upto: int
    policy: HoldPolicy
    batch_size: int
    commit_every: int


class PartDone(msgspec.Struct, frozen=True):
    """A worker's answer, the last line of its stdout: how many events it folded, or why
    it failed."""

    folded: int = 0
    error: str | None = None


async def build_part(job: PartJob) -> int:
    """Fold ``job.part`` in a process of its own (``projections.part_worker``);
    return how many events it folded. Cancelled, the process is killed."""
    done = await anyio.run_process([sys.executable, "-m", "projections.part_worker"],
                                   input=msgspec.json.encode(job), check=False)
    lines = done.stdout.strip().splitlines()
    answer = _ANSWER.decode(lines[-1]) if done.returncode == 0 and lines else PartDone(
        error=f"exit status {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    if answer.error is not None:
        raise ProjectionFailedError(f"the part {job.name!r} failed: {answer.error}")
    return answer.folded


_ANSWER = msgspec.json.Decoder(PartDone)
