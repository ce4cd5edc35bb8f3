"""A ``CardLedger`` wired to the processor sandbox in process: its requests go to the
sandbox's API, the sandbox's webhooks come back to its receiver, all on the ledger's clock.
What the ``processor_sandbox`` fixture gives a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from adapters.processor.client import ClientConfig, ProcessorClient, SandboxControl, new_signing_key
from adapters.processor.outbox import Outbox
from adapters.sandbox import Sandbox, SandboxConfig
from adapters.sandbox.webhooks import new_secret
from adapters.service.card_ledger import CardLedger
from ledger.clock import ManualClock

HOOKS = ["customer.updated", "account.updated", "card.updated", "authorisation.updated",
         "transaction.updated"]


class SandboxedProcessor:
    """The sandbox (``sandbox``, its ``world``), a signed client for its API and simulator
    (``control``), and ``settle()``: everything sent and received, everything projected."""

    def __init__(self, ledger: CardLedger, sandbox: Sandbox, client: ProcessorClient,
                 clock: ManualClock) -> None:
        self.ledger, self.sandbox, self.client, self.clock = ledger, sandbox, client, clock
        self.world = sandbox.world
        self.control = SandboxControl(client)
        self.outbox = Outbox(ledger.store, client, clock=clock)

    async def settle(self) -> None:
        """Send what the outbox holds, deliver every webhook, and project it all."""
        for _ in range(10):  # a request's answer can make a webhook, and a webhook a request
            await self.outbox.dispatch()
            await self.sandbox.webhooks.drain()
            if not await self.outbox.pending():
                break
        await self.ledger.wait_until_visible()


@asynccontextmanager
async def sandboxed(ledger: CardLedger, clock: ManualClock,
                    seed: int = 0) -> AsyncIterator[SandboxedProcessor]:
    """``ledger`` given the sandbox as its processor for the block (on ``clock``)."""
    sandbox = Sandbox(SandboxConfig(seed=seed, webhook_secret=new_secret()), clock=clock)
    config = ClientConfig(base_url="http://processor.test",
                          api_key=sandbox.credentials.api_key,
                          api_secret=sandbox.credentials.api_secret)
    receiver = httpx.ASGITransport(app=ledger.webhook_app(sandbox.webhooks.secret))
    async with ProcessorClient(config, new_signing_key(), timer=clock,
                               transport=httpx.ASGITransport(app=sandbox.app)) as client, \
            sandbox.delivering(transport=receiver):
        await client.register_signing_key()
        await client.subscribe_webhooks("http://ledger.test/webhooks", HOOKS)
        before, ledger.processor = ledger.processor, client
        try:
            yield SandboxedProcessor(ledger, sandbox, client, clock)
        finally:
            ledger.processor = before
