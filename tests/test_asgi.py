"""The ledger in an ASGI service as services are written: routes built at import, the ledger
opened in the lifespan; views returned directly as FastAPI response models; a complete
typed surface from one import."""

from __future__ import annotations

import inspect
import typing
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

import adapters
import ledger.errors
from adapters import (
    AccountSnapshot,
    Balance,
    CardLedger,
    InvalidInputError,
    LedgerError,
    WebhookApp,
    current_ledger,
    problem_response,
)
from adapters.testing.servers import free_port, serving
from ledger.testing import webhook_payload
from tests.support.webhooks import SECRET, signed

pytestmark = pytest.mark.anyio
T0 = datetime.now(UTC) - timedelta(hours=1)
ACCOUNT = AccountSnapshot(id="a1", customer_id="c1", status="active", currencies=["EUR"],
                          created_at=T0, updated_at=T0)


async def _post(app: WebhookApp, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://service") as client:
        return await client.post("/webhooks", content=body, headers={
            **signed(body), "content-type": "application/json"})


async def test_a_webhook_app_answers_503_until_bound_and_after_unbound(tmp_path: Path) -> None:
    webhooks = WebhookApp(secret=SECRET)
    body = webhook_payload(ACCOUNT, uuid.UUID(int=1))
    early = await _post(webhooks, body)
    assert early.status_code == 503 and early.headers["retry-after"] == "5"
    assert early.json()["error"] == "unavailable"
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        assert await ledger.store.head() == 0  # the early delivery wrote nothing
        async with webhooks.bind(ledger):
            with pytest.raises(InvalidInputError, match="bound"):
                async with webhooks.bind(ledger):
                    pass
            assert (await _post(webhooks, body)).is_success
            head = await ledger.store.head()
        late = webhook_payload(ACCOUNT, uuid.UUID(int=2))
        assert (await _post(webhooks, late)).status_code == 503
        assert await ledger.store.head() == head  # nor did the late one


async def test_views_are_response_models_and_errors_are_problems(tmp_path: Path) -> None:
    app = FastAPI(lifespan=adapters.ledger_lifespan(tmp_path / "l.db", background=False))
    app.add_exception_handler(LedgerError, problem_response)

    @app.get("/balances/{account_id}", response_model=list[Balance])
    async def balances(account_id: str, ledger: typing.Annotated[
            CardLedger, Depends(current_ledger)]) -> list[Balance]:
        await ledger.record(ACCOUNT)
        return await ledger.balances(account_id)

    port = free_port()
    async with serving(app, port), httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/balances/a1")).json() == []  # no money moved yet
        missing = await client.get("/balances/nobody")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        schema = (await client.get("/openapi.json")).json()
    shown = schema["paths"]["/balances/{account_id}"]["get"]["responses"]["200"]
    fields = shown["content"]["application/json"]["schema"]["items"]["properties"]
    assert fields["available"] == {"type": "string", "format": "decimal"}


def _named_types(hint: object) -> typing.Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for argument in typing.get_args(hint):
        yield from _named_types(argument)


def test_every_type_the_front_door_signatures_mention_is_exported() -> None:
    missing = set()
    for name, method in inspect.getmembers(CardLedger, callable):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(getattr(method, "__func__", method))
        for hint in hints.values():
            for kind in _named_types(hint):
                if kind.__module__.split(".")[0] in ("ledger", "projections", "adapters") \
                        and kind.__name__ not in adapters.__all__:
                    missing.add(f"{name}: {kind.__module__}.{kind.__name__}")
    assert not missing, sorted(missing)
    errors = {n for n in dir(ledger.errors) if n.endswith("Error")}
    assert errors <= set(adapters.__all__)
