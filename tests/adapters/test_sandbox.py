"""The sandbox behaves like the processor: authentication, signatures, idempotency, state
machines, the 30-day rule, funds, webhooks, faults. Through the real signed client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageSigner, algorithms
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.processor.client import SandboxControl, _OneKey, new_signing_key
from adapters.processor.errors import Conflict, InvalidRequest, NotAuthorised, NotFound, Refused
from adapters.sandbox import Faults
from adapters.sandbox.errors import SandboxError
from adapters.sandbox.security import IdempotencyKeys
from adapters.testing.servers import free_port, serving
from tests.support.sandbox import BASE, active_card, client_for, raw, sandbox

pytestmark = pytest.mark.anyio




async def test_tokens_need_the_right_credentials_and_requests_a_token() -> None:
    box = sandbox()
    bad = await raw(box.app, "POST", "/v1/auth/token",
                    json={"apiKey": box.credentials.api_key, "apiSecret": "wrong"})
    assert bad.status_code == 401 and bad.json()["error"] == "not_authorised"
    assert (await raw(box.app, "GET", "/v1/cards")).status_code == 401
    async with client_for(box) as client:
        assert await client.cards() == []


async def test_every_authenticated_call_needs_a_valid_fresh_signature() -> None:
    box = sandbox()
    async with client_for(box) as client:
        token = await client._bearer()
        unsigned = await raw(box.app, "GET", "/v1/cards",
                             headers={"authorization": f"Bearer {token}"})
        assert unsigned.status_code == 401 and "signature" in unsigned.json()["message"]

        def signed(body: bytes = b"", created: datetime | None = None,
                   key: ec.EllipticCurvePrivateKey | None = None) -> httpx.Request:
            request = httpx.Request("POST", f"{BASE}/v1/customers", content=body, headers={
                "authorization": f"Bearer {token}", "content-type": "application/json",
                "idempotency-key": str(uuid.uuid4())})
            signer = client._signer if key is None else HTTPMessageSigner(
                signature_algorithm=algorithms.ECDSA_P384_SHA384, key_resolver=_OneKey(key))
            signer.sign(request, key_id=client.key_id or "", created=created or datetime.now(UTC),
                        covered_component_ids=("@method", "@target-uri"), body=body)
            return request

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app)) as http:
            good = await http.send(signed(b'{"externalId": "e1"}'))
            assert good.status_code == 201
            stale = await http.send(signed(b'{"externalId": "e2"}',
                                           created=datetime.now(UTC) - timedelta(minutes=6)))
            assert stale.status_code == 401
            wrong_key = await http.send(signed(b'{"externalId": "e3"}', key=new_signing_key()))
            assert wrong_key.status_code == 401
            tampered = signed(b'{"externalId": "e4"}')
            tampered = httpx.Request("POST", tampered.url, content=b'{"externalId": "e5"}',
                                     headers=tampered.headers)
            assert (await http.send(tampered)).status_code == 401
        assert [c.external_id for c in await client.customers()] == ["e1"]


async def test_idempotency_replays_refuses_other_payloads_and_requires_a_key() -> None:
    box = sandbox()
    async with client_for(box) as client:
        key = uuid.uuid4()
        first = await client.create_customer("same", None, key)
        again = await client.create_customer("same", None, key)
        assert again == first and len(await client.customers()) == 1
        with pytest.raises(Refused):
            await client.create_customer("other", None, key)
        request = client._http.build_request(
            "POST", "/v1/customers", content=b'{"externalId": "n"}',
            headers={"authorization": f"Bearer {await client._bearer()}",
                     "content-type": "application/json"})  # no Idempotency-Key
        client._sign(request)
        missing = await client._http.send(request)
        assert missing.status_code == 400
        assert missing.json()["field"] == "Idempotency-Key"
    keys = IdempotencyKeys()
    key_text = str(uuid.uuid4())
    assert keys.begin(key_text, "a") is None
    with pytest.raises(SandboxError) as in_flight:
        keys.begin(key_text, "a")
    assert in_flight.value.status == 409


async def test_state_machines_unknown_ids_and_bad_input() -> None:
    box = sandbox()
    async with client_for(box) as client:
        _, card_id = await active_card(client)
        with pytest.raises(Conflict, match="invalid_transition"):
            await client.card_action(card_id, "activate")
        with pytest.raises(NotFound):
            await client.card(str(uuid.uuid4()))
        with pytest.raises(InvalidRequest) as bad:
            await client.call("POST", f"/v1/simulator/cards/{card_id}/authorisation",
                              body={"amount": 10.5, "currency": "EUR"})
        assert msgspec.json.decode(bad.value.body)["field"] == "amount"
        with pytest.raises(InvalidRequest) as unknown:
            await client.call("POST", "/v1/customers", body={"externalId": "x", "extra": 1})
        assert msgspec.json.decode(unknown.value.body)["error"] == "invalid_request"


async def test_funds_the_30_day_rule_and_the_release_after_it() -> None:
    box = sandbox()
    async with client_for(box) as client:
        control = SandboxControl(client)
        account_id, card_id = await active_card(client, funds="100")
        with pytest.raises(Refused, match="insufficient funds"):
            await control.authorise(card_id, Decimal("150"))
        hold = await control.authorise(card_id, Decimal("60"))
        assert (await control.balance(account_id))["available"] == "40.00"
        await client.card_action(card_id, "terminate")
        with pytest.raises(Refused, match="declined"):
            await control.authorise(card_id, Decimal("1"))
        await control.advance_clock(29 * 86400)
        await control.capture(hold.id, Decimal("30"))  # a partial capture, within 30 days
        transaction = await client.transaction(hold.id)
        assert (transaction.amount, transaction.direction) == ("30", "debit")
        assert (await control.balance(account_id))["posted"] == "70"


async def test_pending_holds_of_a_terminated_card_are_released_after_30_days() -> None:
    box = sandbox()
    async with client_for(box) as client:
        control = SandboxControl(client)
        account_id, card_id = await active_card(client, funds="100")
        hold = await control.authorise(card_id, Decimal("25"))
        await control.advance_clock(10 * 86400)
        await client.card_action(card_id, "terminate")
        await control.advance_clock(31 * 86400)
        assert (await client.authorisation(hold.id)).status == "released"
        with pytest.raises(Conflict):
            await control.capture(hold.id)
        assert (await control.balance(account_id))["held"] == "0"


async def test_token_refresh_and_rotation_are_transparent_to_the_client() -> None:
    box = sandbox(token_lifetime=30.0)  # within a minute of expiry: the client refreshes
    async with client_for(box) as client:
        await client.cards()
        first = client._token
        await client.cards()
        assert client._token != first  # refreshed, not refused
    async with client_for(box) as client:
        await client.call("PUT", "/v1/auth/credentials")
        with pytest.raises(NotAuthorised):
            await client.cards()  # old credentials: a new token cannot be had


class Receiver:
    """A webhook endpoint that verifies Standard Webhooks signatures and records events."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.webhook, self.fail_first = Webhook(secret), fail_first
        self.events: list[dict[str, object]] = []
        self.app = Starlette(routes=[Route("/hooks", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        event = self.webhook.verify(body, dict(request.headers))
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=503)
        self.events.append(event)
        return Response(status_code=204)


async def test_webhooks_are_signed_and_delivered_at_least_once_despite_faults() -> None:
    faults = Faults(duplicate=0.3, reorder_window=5, drop=0.3)
    box = sandbox(seed=11, faults=faults)
    receiver = Receiver(box.webhooks.secret, fail_first=3)
    port = free_port()
    async with serving(receiver.app, port), box.delivering(), client_for(box) as client:
        await client.subscribe_webhooks(f"http://127.0.0.1:{port}/hooks",
                                        ["card.updated", "authorisation.updated",
                                         "transaction.updated"])
        control = SandboxControl(client)
        _, card_id = await active_card(client)
        for amount in ("5", "7", "9"):
            hold = await control.authorise(card_id, Decimal(amount))
            await control.capture(hold.id)
        with anyio.fail_after(20):
            await box.webhooks.drain()
    published = {e["eventId"] for e in receiver.events}
    kinds = {e["webhookType"] for e in receiver.events}
    assert kinds == {"card.updated", "authorisation.updated", "transaction.updated"}
    assert len(receiver.events) > len(published)  # duplicates happened
    assert box.webhooks.abandoned == 0
    assert len(published) == 2 + 3 * 3 + 3  # card x2, holds x3 states, transactions


async def test_injected_5xx_after_the_work_is_recovered_by_the_idempotency_key() -> None:
    box = sandbox(seed=3, faults=Faults(server_error_before=0.3, server_error_after=0.3))
    async with client_for(box, deadline=20.0) as client:
        for n in range(10):
            await client.create_customer(f"c{n}", None)
    assert sorted(c.external_id or "" for c in box.world.customers.values()) == [
        f"c{n}" for n in range(10)]


async def test_over_real_http_on_loopback() -> None:
    box = sandbox()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with serving(box.app, port), client_for(box, base_url=url) as client:
        account_id, card_id = await active_card(client)
        assert (await client.accounts())[0].id == account_id
        assert (await client.card(card_id)).status == "active"
    assert box.world.accounts[account_id].status == "active"  # it went through the server


async def test_an_unknown_merchant_currency_is_a_400_not_a_500() -> None:
    """Regression: found by the OpenAPI property test (currency 'AAA' escaped as a 500)."""
    box = sandbox()
    async with client_for(box) as client:
        _, card_id = await active_card(client)
        with pytest.raises(InvalidRequest, match="ISO 4217"):
            await client.call("POST", f"/v1/simulator/cards/{card_id}/authorisation",
                              body={"amount": "1", "currency": "AAA"})


async def test_the_clock_refuses_to_move_past_the_calendar_and_stays_usable() -> None:
    from adapters.sandbox.app import MAX_ADVANCE

    box = sandbox()
    async with client_for(box) as client:
        before = box.clock.now()
        for seconds in (MAX_ADVANCE + 1, -1):
            with pytest.raises(InvalidRequest):
                await client.call("POST", "/sandbox/clock/advance", body={"seconds": seconds})
        for _ in range(800):  # ten years a call, until the calendar ends
            try:
                box.clock.advance(timedelta(seconds=MAX_ADVANCE))
            except OverflowError:
                break
        with pytest.raises(InvalidRequest):
            await client.call("POST", "/sandbox/clock/advance", body={"seconds": MAX_ADVANCE})
        assert box.clock.now() > before  # still a usable clock: no 500 from here on
        assert (await client.get("/v1/accounts", list[object])) == []
