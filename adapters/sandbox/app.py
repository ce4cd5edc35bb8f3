"""The sandbox's HTTP API: the processor's documented endpoints under ``/v1``, its simulator
under ``/v1/simulator``, and sandbox-only extensions under ``/sandbox`` (partial and over
captures, refunds, transaction processing and reversal, deposits and withdrawals, card
suspension and blocking, the clock, each account's own balance).

Every route is described once, in ``ROUTES``: Starlette's routing and the OpenAPI document at
``/openapi.json`` are both made from that table.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import anyio
import anyio.abc
import httpx
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from adapters.sandbox.clock import BusinessClock, SandboxClock
from adapters.sandbox.errors import SandboxError
from adapters.sandbox.faults import FaultDice, Faults, Script
from adapters.sandbox.openapi import document
from adapters.sandbox.routing import Problem, Route
from adapters.sandbox.rules import AmountText, CurrencyText, parse_amount
from adapters.sandbox.security import Credentials, IdempotencyKeys, Message
from adapters.sandbox.webhooks import Subscription, WebhookSender, WebhookType, new_secret
from adapters.sandbox.world import Balance, World
from ledger.observations import (
    AccountSnapshot,
    Address,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    Merchant,
    TransactionSnapshot,
)

# --- request and response bodies ---------------------------------------------------------------


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


class TokenRequest(Body):
    api_key: str
    api_secret: str


class Token(msgspec.Struct, rename="camel"):
    token: str
    expires_at: int
    token_type: str = "Bearer"


class NewCredentials(msgspec.Struct, rename="camel"):
    api_key: str
    api_secret: str


class SigningKeyRequest(Body):
    public_key: str


class SigningKey(msgspec.Struct, rename="camel"):
    key_id: str


class CustomerRequest(Body):
    external_id: str
    chain_id: str | None = None


class AccountRequest(Body):
    currency: CurrencyText = "EUR"


class CardRequest(Body):
    type: Literal["virtual", "physical"]
    billing_address: Address
    shipping_address: Address | None = None


class WebhookRequest(Body):
    callback_url: str
    types: list[WebhookType]
    id: str | None = None


class AuthoriseRequest(Body):
    amount: AmountText
    currency: CurrencyText
    capture: bool = True
    merchant: Merchant = Merchant(id="sandbox-merchant", name="Sandbox Store", mcc=5999,
                                  country="GB", city="London")


class CaptureRequest(Body):
    amount: AmountText | None = None


class AmountRequest(Body):
    amount: AmountText


MAX_ADVANCE = 10 * 366 * 86_400
"""The clock moves forward at most ten years a call (a datetime ends at year 9999)."""


class ClockRequest(Body):
    seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_ADVANCE)] = 0


class Clock(msgspec.Struct, rename="camel"):
    now: str
    released: int = 0


# --- the sandbox -----------------------------------------------------------------------------


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str | None = None
    api_secret: str | None = None
    webhook_secret: str | None = None
    seed: int = 0
    faults: Faults = Faults()
    token_lifetime: float = 3600.0


class Sandbox:
    """The simulated processor. ``app`` is its ASGI application; webhook delivery runs while
    the app's lifespan (or ``delivering()``) is active."""

    def __init__(self, config: SandboxConfig | None = None,
                 clock: BusinessClock | None = None) -> None:
        config = config or SandboxConfig()
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock: BusinessClock = clock or SandboxClock()
        self.dice = FaultDice(config.faults, random.Random(config.seed + 1))
        self.script = Script()
        """Answers to give the next matching requests instead of doing their work."""
        self.credentials = Credentials(config.api_key, config.api_secret, config.token_lifetime)
        self.idempotency = IdempotencyKeys()
        self.webhooks = WebhookSender(config.webhook_secret or new_secret(), self.dice,
                                      random.Random(config.seed + 2))
        self.world = World(self.clock, self.rng, self.webhooks.publish)
        self.app = Starlette(routes=[*(_route(self, r) for r in ROUTES),
                                     StarletteRoute("/openapi.json", _openapi)],
                             lifespan=self._lifespan)

    @asynccontextmanager
    async def delivering(self, transport: httpx.AsyncBaseTransport | None = None,
                         ) -> AsyncIterator[None]:
        """Deliver webhooks while the block runs (over ``transport``: real HTTP by default)."""
        async with httpx.AsyncClient(timeout=5.0, transport=transport) as client, \
                anyio.create_task_group() as group:
            group.start_soon(self.webhooks.run, client)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.delivering():
            yield


# --- routes ----------------------------------------------------------------------------------

class Call:
    """One request, as a handler sees it."""

    def __init__(self, sandbox: Sandbox, request: Request, body: bytes) -> None:
        self.sandbox, self.world, self.request, self.raw = sandbox, sandbox.world, request, body

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def body(self, kind: type[Any]) -> Any:
        return msgspec.json.decode(self.raw or b"{}", type=kind)


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else parse_amount(text)


def _subscribe(call: Call) -> Subscription:
    body = call.body(WebhookRequest)
    return call.sandbox.webhooks.subscribe(Subscription(
        body.id or str(call.sandbox.world._id()), body.callback_url, body.types))


def _webhook(call: Call) -> Subscription:
    try:
        return call.sandbox.webhooks.subscriptions[call.param("id")]
    except KeyError:
        raise SandboxError(404, "not_found", f"webhook not found: {call.param('id')}") from None


def _authorise(call: Call) -> AuthorisationSnapshot:
    body = call.body(AuthoriseRequest)
    hold = call.world.authorise(call.param("id"), parse_amount(body.amount), body.currency,
                                body.merchant)
    if body.capture:
        call.world.capture(hold.id)
    return hold


def _advance(call: Call) -> Clock:
    body = call.body(ClockRequest)  # 0 to MAX_ADVANCE seconds: it only moves forward
    try:
        now = call.sandbox.clock.advance(timedelta(seconds=body.seconds))
    except OverflowError:
        raise SandboxError(400, "invalid_request", "the clock cannot move past the year "
                           "9999", "seconds") from None
    return Clock(now.isoformat(), len(call.world.expire()))


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/auth/token", lambda c: Token(*c.sandbox.credentials.issue_token(
        *msgspec.structs.astuple(c.body(TokenRequest)))), "Get a bearer token", Token,
        request=TokenRequest, auth="none", errors=(400, 401)),
    Route("PUT", "/v1/auth/credentials", lambda c: NewCredentials(*c.sandbox.credentials.rotate()),
          "Rotate the API credentials (every token stops working)", NewCredentials),
    Route("PUT", "/v1/auth/signing", lambda c: SigningKey(c.sandbox.credentials.register_key(
        c.body(SigningKeyRequest).public_key)), "Register the request-signing public key",
        SigningKey, request=SigningKeyRequest, auth="bearer"),
    Route("DELETE", "/v1/auth/signing", lambda c: c.sandbox.credentials.remove_keys(),
          "Remove the signing keys", status=204),
    Route("POST", "/v1/customers", lambda c: c.world.create_customer(
        *msgspec.structs.astuple(c.body(CustomerRequest))), "Create a customer",
        CustomerSnapshot, 201, CustomerRequest),
    Route("GET", "/v1/customers", lambda c: list(c.world.customers.values()), "List customers",
          list[CustomerSnapshot]),
    Route("GET", "/v1/customers/{id}", lambda c: c.world.customer(c.param("id")),
          "Get a customer", CustomerSnapshot),
    Route("PATCH", "/v1/customers/{id}/deactivate", lambda c: c.world.set_customer(
        c.param("id"), "inactive"), "Deactivate a customer", CustomerSnapshot),
    Route("POST", "/v1/customers/{id}/accounts", lambda c: c.world.create_account(
        c.param("id"), c.body(AccountRequest).currency), "Open an account", AccountSnapshot,
        201, AccountRequest),
    Route("GET", "/v1/accounts", lambda c: list(c.world.accounts.values()), "List accounts",
          list[AccountSnapshot]),
    Route("GET", "/v1/accounts/{id}", lambda c: c.world.account(c.param("id")),
          "Get an account", AccountSnapshot),
    Route("PATCH", "/v1/accounts/{id}/deactivate", lambda c: c.world.set_account(
        c.param("id"), "inactive"), "Deactivate an account", AccountSnapshot),
    Route("PATCH", "/v1/accounts/{id}/activate", lambda c: c.world.set_account(
        c.param("id"), "active"), "Activate an account", AccountSnapshot),
    Route("DELETE", "/v1/accounts/{id}", lambda c: c.world.set_account(c.param("id"), "closed"),
          "Close an account", AccountSnapshot),
    Route("POST", "/v1/accounts/{id}/cards", lambda c: _create_card(c), "Create a card",
          CardSnapshot, 201, CardRequest),
    Route("GET", "/v1/accounts/{id}/cards", lambda c: [
        card for card in c.world.cards.values() if card.account_id == c.world.account(
            c.param("id")).id], "List an account's cards", list[CardSnapshot]),
    Route("GET", "/v1/cards", lambda c: list(c.world.cards.values()), "List cards",
          list[CardSnapshot]),
    Route("GET", "/v1/cards/{id}", lambda c: c.world.card(c.param("id")), "Get a card",
          CardSnapshot),
    Route("PATCH", "/v1/cards/{id}/deactivate", lambda c: c.world.set_card(
        c.param("id"), "inactive"), "Deactivate a card", CardSnapshot),
    Route("PATCH", "/v1/cards/{id}/activate", lambda c: c.world.set_card(
        c.param("id"), "active"), "Activate a card", CardSnapshot),
    Route("DELETE", "/v1/cards/{id}", lambda c: c.world.set_card(c.param("id"), "terminated")
         , "Terminate a card (pending holds stay capturable for 30 days)", status=204),
    Route("GET", "/v1/authorisations/{id}", lambda c: c.world.authorisation(c.param("id")),
          "Get an authorisation", AuthorisationSnapshot),
    Route("GET", "/v1/accounts/{id}/transactions", lambda c: [
        t for t in c.world.transactions.values() if t.account_id == c.world.account(
            c.param("id")).id], "List an account's transactions", list[TransactionSnapshot]),
    Route("GET", "/v1/cards/{id}/transactions", lambda c: [
        t for t in c.world.transactions.values() if t.card_id == c.world.card(
            c.param("id")).id], "List a card's transactions", list[TransactionSnapshot]),
    Route("GET", "/v1/transactions/{id}", lambda c: c.world.transaction(c.param("id")),
          "Get a transaction", TransactionSnapshot),
    Route("PUT", "/v1/webhooks", _subscribe, "Create or update a webhook subscription",
          Subscription, request=WebhookRequest),
    Route("GET", "/v1/webhooks", lambda c: list(c.sandbox.webhooks.subscriptions.values()),
          "List webhook subscriptions", list[Subscription]),
    Route("GET", "/v1/webhooks/{id}", _webhook, "Get a webhook subscription", Subscription),
    Route("DELETE", "/v1/webhooks/{id}", lambda c: c.sandbox.webhooks.subscriptions.pop(
        _webhook(c).id), "Delete a webhook subscription", status=204),
    # The documented simulator.
    Route("PATCH", "/v1/simulator/customers/{id}/verify", lambda c: c.world.set_customer(
        c.param("id"), "active"), "Simulate a successful verification", status=202),
    Route("PATCH", "/v1/simulator/customers/{id}/reject", lambda c: c.world.set_customer(
        c.param("id"), "rejected"), "Simulate a rejection", status=202),
    Route("PATCH", "/v1/simulator/cards/{id}/issue", lambda c: c.world.set_card(
        c.param("id"), "active"), "Simulate the card's issuance", status=202),
    Route("PATCH", "/v1/simulator/cards/{id}/fail", lambda c: c.world.set_card(
        c.param("id"), "issue_failed"), "Simulate a failed issuance", status=202),
    Route("POST", "/v1/simulator/cards/{id}/authorisation", _authorise,
          "Simulate an authorisation (captured at once unless capture is false)",
          AuthorisationSnapshot, 201, AuthoriseRequest, errors=(400, 401, 404, 409, 422)),
    Route("PATCH", "/v1/simulator/authorisations/{id}/capture", lambda c: c.world.capture(
        c.param("id")), "Simulate a full capture", AuthorisationSnapshot),
    Route("PATCH", "/v1/simulator/authorisations/{id}/release", lambda c: c.world.release(
        c.param("id")), "Simulate a release", AuthorisationSnapshot),
    # Sandbox-only: what the documented simulator lacks.
    Route("POST", "/sandbox/authorisations/{id}/capture", lambda c: c.world.capture(
        c.param("id"), _amount(c.body(CaptureRequest).amount)),
        "Capture with an amount: partial or above the hold", AuthorisationSnapshot,
        request=CaptureRequest),
    Route("POST", "/sandbox/authorisations/{id}/amend", lambda c: c.world.amend(
        c.param("id"), parse_amount(c.body(AmountRequest).amount)),
        "Change a pending hold's amount (an incremental authorisation)", AuthorisationSnapshot,
        request=AmountRequest),
    Route("POST", "/sandbox/cards/{id}/force-post", lambda c: c.world.force_post(
        c.param("id"), parse_amount(c.body(AmountRequest).amount)),
        "Post a debit with no authorisation (a force post)", TransactionSnapshot, 201,
        AmountRequest),
    Route("POST", "/sandbox/transactions/{id}/refund", lambda c: c.world.refund(
        c.param("id"), parse_amount(c.body(AmountRequest).amount)),
        "Refund a debit (a credit transaction)", TransactionSnapshot, 201, AmountRequest),
    Route("PATCH", "/sandbox/transactions/{id}/process", lambda c: c.world.set_transaction(
        c.param("id"), "processed"), "Settle a transaction", TransactionSnapshot),
    Route("PATCH", "/sandbox/transactions/{id}/reverse", lambda c: c.world.set_transaction(
        c.param("id"), "reversed"), "Reverse a processed transaction", TransactionSnapshot),
    Route("POST", "/sandbox/accounts/{id}/deposit", lambda c: c.world.deposit(
        c.param("id"), parse_amount(c.body(AmountRequest).amount)),
        "Deposit funds to an account", Balance, request=AmountRequest),
    Route("POST", "/sandbox/accounts/{id}/withdraw", lambda c: c.world.withdraw(
        c.param("id"), parse_amount(c.body(AmountRequest).amount)),
        "Withdraw funds from an account", Balance, request=AmountRequest),
    Route("GET", "/sandbox/accounts/{id}/balance", lambda c: c.world.balance(c.param("id")),
          "The sandbox's own view of an account's money", Balance),
    Route("PATCH", "/sandbox/cards/{id}/suspend", lambda c: c.world.set_card(
        c.param("id"), "suspended"), "Suspend a card", CardSnapshot),
    Route("PATCH", "/sandbox/cards/{id}/block", lambda c: c.world.set_card(
        c.param("id"), "blocked"), "Block a card", CardSnapshot),
    Route("POST", "/sandbox/clock/advance", _advance,
          "Advance the clock (and release holds whose capture window closed)", Clock,
          request=ClockRequest),
)


def _create_card(call: Call) -> CardSnapshot:
    body = call.body(CardRequest)
    return call.world.create_card(call.param("id"), body.type, body.billing_address,
                                  body.shipping_address)


async def _openapi(request: Request) -> Response:
    return Response(_ENCODER.encode(document(ROUTES)), media_type="application/json")


_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_ENCODER = msgspec.json.Encoder()


def _problem(status: int, error: str, message: str, field: str | None = None) -> Response:
    return Response(_ENCODER.encode(Problem(error, message, field)), status,
                    media_type="application/json")


def _route(sandbox: Sandbox, route: Route) -> StarletteRoute:
    mutating = route.method in ("POST", "PUT", "PATCH", "DELETE") and route.auth == "signed"

    async def endpoint(request: Request) -> Response:
        faults, dice = sandbox.config.faults, sandbox.dice
        if (latency := dice.latency()) > 0:
            await anyio.sleep(latency)
        if dice.roll(faults.server_error_before):
            return _problem(503, "unavailable", "injected fault: try again")
        if (scripted := sandbox.script.take(request.url.path)) is not None:
            answer = _problem(scripted.status, scripted.code, "scripted answer")
            if scripted.retry_after is not None:
                answer.headers["retry-after"] = scripted.retry_after
            return answer
        body = await request.body()
        key = request.headers.get("idempotency-key")
        reserved = False  # this request holds the idempotency key until it has an answer
        try:
            _authenticate(sandbox, route, request, body)
            if mutating:
                stored = sandbox.idempotency.begin(key, sandbox.idempotency.fingerprint(
                    request.method, request.url.path, body))
                if stored is not None:
                    assert stored.status is not None  # begin() returns only finished answers
                    return Response(stored.body, stored.status, media_type=stored.content_type)
                reserved = True
            response = await _run(sandbox, route, request, body)
        except SandboxError as exc:
            response = _problem(exc.status, exc.code, exc.message, exc.field)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            found = _FIELD.search(str(exc))
            response = _problem(400, "invalid_request", str(exc), found.group(1) if found else None)
        except BaseException:
            if reserved and key:
                sandbox.idempotency.abandon(key)
            raise
        if reserved and key:
            sandbox.idempotency.finish(key, response.status_code, bytes(response.body),
                                       response.media_type or "application/json")
        if dice.roll(faults.server_error_after):
            return _problem(500, "internal", "injected fault after the work was done")
        return response

    return StarletteRoute(route.path, endpoint, methods=[route.method])


def _authenticate(sandbox: Sandbox, route: Route, request: Request, body: bytes) -> None:
    if route.auth == "none":
        return
    sandbox.credentials.check_token(request.headers.get("authorization"))
    if route.auth == "signed":
        sandbox.credentials.check_signature(
            Message(request.method, str(request.url), dict(request.headers)), body)


async def _run(sandbox: Sandbox, route: Route, request: Request, body: bytes) -> Response:
    result = route.handler(Call(sandbox, request, body))
    if isinstance(result, Awaitable):
        result = await result
    if route.status in (202, 204) or result is None:  # accepted, or done: no body
        return Response(status_code=route.status)
    return Response(_ENCODER.encode(result), route.status, media_type="application/json")
