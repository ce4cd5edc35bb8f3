"""The processor connection a command uses: from options or CARDLEDGER_* variables."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.processor.client import ClientConfig, ProcessorClient, new_signing_key


class Connection:
    def __init__(self, url: str | None, api_key: str | None, api_secret: str | None,
                 signing_key: Path | None, key_id: str | None) -> None:
        self.url, self.api_key, self.api_secret = url, api_key, api_secret
        self.signing_key, self.key_id = signing_key, key_id

    @property
    def configured(self) -> bool:
        return bool(self.url and self.api_key and self.api_secret)

    def client(self) -> ProcessorClient:
        if not self.configured:
            raise click.UsageError("no processor connection: give --processor-url, --api-key "
                                   "and --api-secret (or CARDLEDGER_PROCESSOR_URL, "
                                   "CARDLEDGER_API_KEY, CARDLEDGER_API_SECRET)")
        assert self.url and self.api_key and self.api_secret
        key = self._key()
        config = ClientConfig(base_url=self.url, api_key=self.api_key,
                              api_secret=self.api_secret, key_id=self.key_id)
        return ProcessorClient(config, key)

    def _key(self) -> ec.EllipticCurvePrivateKey:
        if self.signing_key is None:
            return new_signing_key()  # registered on first use, as the sandbox allows
        try:
            key = serialization.load_pem_private_key(self.signing_key.read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read a PEM private key: {exc}",
                                     param_hint="--signing-key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise click.BadParameter("the signing key must be an EC P-384 key",
                                     param_hint="--signing-key")
        return key

    async def open(self) -> ProcessorClient:
        client = self.client()
        if client.key_id is None:
            await client.register_signing_key()
        return client


def options(function: click.decorators.FC) -> click.decorators.FC:
    for option in reversed([
        click.option("--processor-url", envvar="CARDLEDGER_PROCESSOR_URL",
                     help="The processor's base URL (the sandbox: http://127.0.0.1:PORT)."),
        click.option("--api-key", envvar="CARDLEDGER_API_KEY", help="API key."),
        click.option("--api-secret", envvar="CARDLEDGER_API_SECRET", help="API secret."),
        click.option("--signing-key", envvar="CARDLEDGER_SIGNING_KEY",
                     type=click.Path(path_type=Path, dir_okay=False),
                     help="PEM file of the P-384 request-signing key (default: a new key, "
                          "registered at start)."),
        click.option("--key-id", envvar="CARDLEDGER_KEY_ID",
                     help="The processor's id of the registered signing key."),
    ]):
        function = option(function)
    return function


def connection(kwargs: dict[str, object]) -> Connection:
    """The connection options, taken out of a command's keyword arguments."""

    def text(name: str) -> str | None:
        value = kwargs.pop(name)
        return value if isinstance(value, str) else None

    key = kwargs.pop("signing_key")
    return Connection(text("processor_url"), text("api_key"), text("api_secret"),
                      key if isinstance(key, Path) else None, text("key_id"))
