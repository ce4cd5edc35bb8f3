"""Child process for the webhook benchmark: ``python -m benchmarks.webhook_server MODE PORT DB
SECRET``. MODE ``ledger`` serves the real receiver into a SQLite ledger; ``ok`` serves an
endpoint that only answers 200 (the baseline)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.processor.observer import Observer
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store


async def ok(request: Request) -> Response:
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")


async def main(mode: str, port: int, db: str, secret: str) -> None:
    def serve(app: Starlette) -> Awaitable[None]:
        return uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                             log_level="warning", access_log=False)).serve()

    if mode == "ok":
        await serve(Starlette(routes=[Route("/webhooks", ok, methods=["POST"])]))
        return
    async with open_store(db) as store:
        await serve(WebhookReceiver(Observer(store), secret=secret).app)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    mode, port, db, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    anyio.run(main, mode, port, db, secret)
