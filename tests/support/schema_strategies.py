"""Hypothesis strategies for the JSON a msgspec type accepts: the same types the OpenAPI
document's schemas are generated from, so the requests follow the documented schemas."""

from __future__ import annotations

from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st


def json_for(kind: Any) -> st.SearchStrategy[Any]:
    return _strategy(mi.type_info(kind))


def _strategy(info: mi.Type) -> st.SearchStrategy[Any]:
    match info:
        case mi.StructType():
            required = {f.encode_name: _strategy(f.type) for f in info.fields if f.required}
            optional = {f.encode_name: _strategy(f.type) for f in info.fields if not f.required}
            return st.fixed_dictionaries(required, optional=optional)
        case mi.StrType(pattern=str() as pattern):
            return st.from_regex(pattern, fullmatch=True)
        case mi.StrType():
            return st.text(max_size=20)
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            return st.integers(-10, 10**6)
        case mi.LiteralType():
            return st.sampled_from(info.values)
        case mi.NoneType():
            return st.none()
        case mi.ListType():
            return st.lists(_strategy(info.item_type), max_size=3)
        case mi.UnionType():
            return st.one_of([_strategy(t) for t in info.types])
        case mi.DecimalType():
            return st.decimals(0, 10**6, places=2).map(str)
    raise NotImplementedError(f"no strategy for {info}")

