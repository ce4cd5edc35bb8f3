"""A sandbox and signed clients wired together in-process (ASGI) or over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.processor.client import (
    ClientConfig,
    ProcessorClient,
    SandboxControl,
    new_signing_key,
)
from adapters.sandbox import Sandbox, SandboxConfig
from adapters.sandbox.clock import SandboxClock

BASE = "http://sandbox.test"


def sandbox(clock: SandboxClock | None = None, **config: object) -> Sandbox:
    return Sandbox(SandboxConfig(api_key="0b6a3c8e-4d9f-4f2a-9d1e-2c3b4a5d6e7f",
                                 api_secret="sandbox-secret", **config),  # type: ignore[arg-type]
                   clock=clock)


@asynccontextmanager
async def client_for(box: Sandbox, *, base_url: str = BASE, register: bool = True,
                     key: ec.EllipticCurvePrivateKey | None = None,
                     **config: object) -> AsyncIterator[ProcessorClient]:
    transport = httpx.ASGITransport(app=box.app) if base_url == BASE else None
    settings = ClientConfig(base_url=base_url, api_key=box.credentials.api_key,
                            api_secret=box.credentials.api_secret, **config)  # type: ignore[arg-type]
    async with ProcessorClient(settings, key or new_signing_key(), transport=transport) as client:
        if register:
            await client.register_signing_key()
        yield client


async def active_card(client: ProcessorClient, funds: str = "1000") -> tuple[str, str]:
    """A verified customer's active account and card, with funds: (account id, card id)."""

    from ledger.observations import Address

    control = SandboxControl(client)
    customer = await client.create_customer(f"ext-{id(client)}-{anyio.current_time()}", None)
    await control.verify_customer(customer.id)
    account = await client.create_account(customer.id, "EUR")
    card = await client.create_card(account.id, Address(first_line="1 Test Avenue",
                                                        city="London", country="GB",
                                                        post_code="SW1 1AA"))
    await control.issue_card(card.id)
    await control.deposit(account.id, Decimal(funds))
    return account.id, card.id


async def raw_get(app: object, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url=BASE) as http:
        return await http.get(path)


async def raw(box_app: object, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box_app),  # type: ignore[arg-type]
                                 base_url=BASE) as http:
        return await http.request(method, path, **kwargs)  # type: ignore[arg-type]
