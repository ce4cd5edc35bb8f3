"""The ``cardledger`` command line.

Exit codes: 0 success, 1 a check found a problem, 2 bad usage or bad input.
"""

from __future__ import annotations

import anyio
import click

from adapters import store_demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cardledger: an event-sourced card ledger."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", help="API key clients authenticate with (generated if absent).")
@click.option("--api-secret", help="API secret (generated if absent).")
@click.option("--webhook-secret", help="Standard Webhooks secret, whsec_... (generated).")
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice.")
def sandbox(host: str, port: int, api_key: str | None, api_secret: str | None,
            webhook_secret: str | None, seed: int) -> None:
    """Serve the processor sandbox (the simulated OffBlocks API) until interrupted."""
    import uvicorn

    from adapters.sandbox import Sandbox, SandboxConfig

    if webhook_secret is not None and not webhook_secret.startswith("whsec_"):
        raise click.BadParameter("must start with whsec_", param_hint="--webhook-secret")
    box = Sandbox(SandboxConfig(api_key=api_key, api_secret=api_secret,
                                webhook_secret=webhook_secret, seed=seed))
    click.echo(f"sandbox on http://{host}:{port}  (OpenAPI: /openapi.json)")
    if api_key is None or api_secret is None:
        click.echo(f"api key:        {box.credentials.api_key}")
        click.echo(f"api secret:     {box.credentials.api_secret}")
    if webhook_secret is None:
        click.echo(f"webhook secret: {box.webhooks.secret}")
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


@main.command()
@click.option("--db", default="cardledger-demo.db", show_default=True,
              help="SQLite file for the demo's ledger (replaced if it exists).")
def demo(db: str) -> None:
    """Run the demonstration on the embedded SQLite store."""
    store_demo.remove_database(db)
    ok = anyio.run(store_demo.run, db)
    raise SystemExit(0 if ok else 1)
