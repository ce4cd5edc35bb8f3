"""The ledger's result types as frameworks built on pydantic (FastAPI) take them: a struct
with ``JSONReady`` among its bases can be a FastAPI ``response_model`` as it is, serialised
by msgspec (amounts as exact decimal strings, moments as RFC 3339) and documented in the
OpenAPI schema by msgspec's own JSON Schema of the type. pydantic is never imported here:
pydantic calls these hooks itself, and only when a service uses it."""

from __future__ import annotations

from typing import Any

import msgspec


class JSONReady:
    __slots__ = ()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(value: Any) -> Any:
            return value if isinstance(value, cls) else msgspec.convert(value, cls)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(msgspec.to_builtins))

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: Any) -> dict[str, Any]:
        return json_schema(cls)


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of ``kind`` with every reference written out in place (what an OpenAPI
    document can embed anywhere)."""
    (top,), definitions = msgspec.json.schema_components([kind], ref_template="{name}")

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(top)
    return inlined
