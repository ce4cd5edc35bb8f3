"""The process the kill test SIGKILLs mid-sync: ``python -m tests.adapters.sync_child DB URL
KEY SECRET`` pulls from the processor in a loop, printing ``round N`` after each."""

from __future__ import annotations

import logging
import sys

import anyio

from adapters.processor.client import ClientConfig, ProcessorClient, new_signing_key
from adapters.processor.observer import Observer
from adapters.processor.sync import pull
from ledger import open_store


async def main(db: str, url: str, key: str, secret: str) -> None:
    config = ClientConfig(base_url=url, api_key=key, api_secret=secret)
    async with open_store(db) as store, ProcessorClient(config, new_signing_key()) as client:
        await client.register_signing_key()
        print("ready", flush=True)
        for n in range(1_000_000):
            await pull(client, Observer(store))
            print(f"round {n}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr)
    db, url, key, secret = sys.argv[1:5]
    anyio.run(main, db, url, key, secret)
