"""A worker process of a rebuild in parts (``projections.partitions``):
``python -m projections.part_worker`` reads its ``PartJob`` on stdin, folds that part, and
writes its ``PartDone`` as the last line of stdout."""

from __future__ import annotations

import sys

import anyio
import msgspec

from ledger import open_store
from projections.partitions import PartDone, PartJob
from projections.runner import ProjectionRunner


async def fold(job: PartJob) -> PartDone:
    try:
        async with open_store(job.url) as store, ProjectionRunner(
                store, policy=job.policy, name=job.name, batch_size=job.batch_size,
                commit_every=job.commit_every) as runner:
            return PartDone(folded=await runner.fold_part(job.part, job.upto))
    except Exception as exc:  # told to the parent, which raises it
        return PartDone(error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    answer = anyio.run(fold, msgspec.json.decode(sys.stdin.buffer.read(), type=PartJob))
    sys.stdout.buffer.write(b"\n" + msgspec.json.encode(answer) + b"\n")
