"""The event types a store knows, and how their records are encoded and decoded.

A registry holds the *current* class of each event type and, for types whose schema changed,
the older classes with an upcaster from each to the next. It is checked when it is built (every
chain of upcasters must end at a current type) and again when a store opens (every wire name
found in the log must be decodable), so a missing upcaster stops start-up instead of failing
a read months later.

Records are msgpack arrays in ``StoredEvent`` field order, so one ``Decoder`` call turns a row
into a typed ``StoredEvent`` with its payload already decoded through the tagged union.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import msgspec.inspect as mi

from ledger.errors import InvalidPayloadError, SchemaError, UnknownEventTypeError
from ledger.store.records import (
    NO_METADATA,
    Event,
    Metadata,
    StoredEvent,
    split_wire_name,
    wire_name,
)

RECORD_ENCODER = msgspec.msgpack.Encoder(uuid_format="bytes")
"""The one encoder of canonical bytes: records and their hashes depend on it, on every backend."""


_NO_METADATA_BYTES = RECORD_ENCODER.encode(NO_METADATA)


class Upcaster(msgspec.Struct, frozen=True):
    """Turns a payload of an older schema (``source``) into the next one (``target``)."""

    source: type[Event]
    target: type[Event]
    convert: Callable[[Any], Event]


class EventRegistry:
    """The event types one store reads and writes."""

    def __init__(self, types: Iterable[type[Event]], *, upcasters: Iterable[Upcaster] = ()):
        self._current: dict[str, type[Event]] = {}
        for event_type in types:
            name, _ = split_wire_name(wire_name(event_type))
            if name in self._current:
                raise SchemaError(f"two current classes for event type {name!r}")
            self._current[name] = event_type
        if not self._current:
            raise SchemaError("a registry needs at least one event type")
        self._upcasters = {u.source: u for u in upcasters}
        self._by_tag = {wire_name(t): t for t in (*self._current.values(), *self._upcasters)}
        for legacy in self._upcasters:
            self._check_chain(legacy)
        union = functools.reduce(operator.or_, self._by_tag.values())
        self._record_decoder = msgspec.msgpack.Decoder(StoredEvent[union])  # type: ignore[valid-type]
        self._encodings: dict[type, _Encoding] = {
            t: _Encoding.of(t) for t in self._current.values()}

    def _check_chain(self, legacy: type[Event]) -> None:
        seen: set[type[Event]] = set()
        event_type = legacy
        while event_type in self._upcasters:
            if event_type in seen:
                raise SchemaError(f"upcasters from {wire_name(legacy)} loop")
            seen.add(event_type)
            source_name, source_version = split_wire_name(wire_name(event_type))
            event_type = self._upcasters[event_type].target
            name, version = split_wire_name(wire_name(event_type))
            if name != source_name or version <= source_version:
                raise SchemaError(f"upcaster {wire_name(legacy)} -> {wire_name(event_type)} "
                                  "must go to a newer version of the same type")
        if self._current.get(split_wire_name(wire_name(event_type))[0]) is not event_type:
            raise SchemaError(f"upcasters from {wire_name(legacy)} do not reach a current type")

    # --- types --------------------------------------------------------------------------

    @property
    def types(self) -> tuple[type[Event], ...]:
        return tuple(self._current.values())

    def wire_names_of(self, type_names: Iterable[str]) -> list[str]:
        """Every wire name (all schema versions) of the named types, for type filters."""
        wanted = set(type_names)
        unknown = wanted - self._current.keys()
        if unknown:
            raise UnknownEventTypeError(f"unknown event type(s): {', '.join(sorted(unknown))}")
        return [tag for tag in self._by_tag if split_wire_name(tag)[0] in wanted]

    def check_stored(self, wire_names: Iterable[str]) -> None:
        """Raise ``SchemaError`` unless every wire name found in a log can be decoded."""
        missing = sorted(set(wire_names) - self._by_tag.keys())
        if missing:
            raise SchemaError(
                "the log holds event types this program cannot decode (register them, or an "
                f"upcaster from each to its current version): {', '.join(missing)}"
            )

    # --- encoding -----------------------------------------------------------------------

    def encode_payload(self, payload: object) -> tuple[str, int, bytes]:
        """Validate ``payload``; return its wire name, schema version and canonical bytes.

        The bytes are decoded again with the type's strict decoder, so nothing enters the log
        that a reader could not decode; amounts must be finite ``Decimal`` values, because
        msgspec would silently accept a float there.
        """
        encoding = self._encodings.get(type(payload))
        if encoding is None:
            raise UnknownEventTypeError(
                f"{type(payload).__name__} is not a current event type of this store's registry"
            )
        try:
            data = RECORD_ENCODER.encode(payload)
            encoding.decoder.decode(data)
        except (TypeError, msgspec.EncodeError, msgspec.ValidationError) as exc:
            raise InvalidPayloadError(f"{type(payload).__name__}: {exc}") from None
        if encoding.check is not None:
            encoding.check(payload, type(payload).__name__)
        return encoding.wire_name, encoding.schema_version, data

    @staticmethod
    def encode_metadata(metadata: Metadata) -> bytes:
        if metadata is NO_METADATA:
            return _NO_METADATA_BYTES
        if not isinstance(metadata, Metadata):
            raise InvalidPayloadError(f"metadata must be Metadata, not {type(metadata).__name__}")
        occurred_at = metadata.occurred_at
        if occurred_at is not None and (
            not isinstance(occurred_at, datetime) or occurred_at.utcoffset() is None
        ):
            raise InvalidPayloadError("metadata.occurred_at must be a timezone-aware datetime")
        try:
            return RECORD_ENCODER.encode(metadata)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidPayloadError(f"metadata: {exc}") from None

    # --- decoding -----------------------------------------------------------------------

    def decode_stored(self, record: bytes) -> StoredEvent[Event]:
        """The record exactly as written: its payload in the schema it was stored with."""
        event: StoredEvent[Event] = self._record_decoder.decode(record)
        return event

    def decode_record(self, record: bytes) -> StoredEvent[Event]:
        """The record with its payload upcast to the current schema."""
        event: StoredEvent[Event] = self._record_decoder.decode(record)
        upcaster = self._upcasters.get(type(event.payload)) if self._upcasters else None
        if upcaster is None:
            return event
        payload = event.payload
        while upcaster is not None:
            payload = upcaster.convert(payload)
            upcaster = self._upcasters.get(type(payload))
        return msgspec.structs.replace(event, payload=payload)

    def decode_records(self, records: Iterable[bytes]) -> list[StoredEvent[Event]]:
        if self._upcasters:
            return [self.decode_record(r) for r in records]
        decode = self._record_decoder.decode
        return [decode(r) for r in records]


class _Encoding:
    """What appending a current type's payload needs, worked out once per type."""

    __slots__ = ("check", "decoder", "schema_version", "wire_name")

    def __init__(self, decoder: msgspec.msgpack.Decoder[Any], check: _AmountCheck | None,
                 wire: str) -> None:
        self.decoder, self.check, self.wire_name = decoder, check, wire
        self.schema_version = split_wire_name(wire)[1]

    @classmethod
    def of(cls, event_type: type[Event]) -> _Encoding:
        return cls(msgspec.msgpack.Decoder(event_type), _amount_check(mi.type_info(event_type)),
                   wire_name(event_type))


# --- amounts ---------------------------------------------------------------------------------

_AmountCheck = Callable[[object, str], None]


def _check_decimal(value: object, path: str) -> None:
    if not isinstance(value, Decimal):
        raise InvalidPayloadError(
            f"{path} is a {type(value).__name__} ({value!r}); amounts must be Decimal, "
            "parsed from strings"
        )
    if not value.is_finite():
        raise InvalidPayloadError(f"{path} is {value}; amounts must be finite")


def _amount_check(info: mi.Type) -> _AmountCheck | None:
    """A function that checks every Decimal inside values of this type, or None if there is none."""
    if isinstance(info, mi.DecimalType):
        return _check_decimal
    if isinstance(info, mi.StructType):
        return _struct_check(info)
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        item = _amount_check(info.item_type)
        if item is None:
            return None

        def check_items(value: Any, path: str) -> None:
            for i, element in enumerate(value):
                item(element, f"{path}[{i}]")

        return check_items
    if isinstance(info, mi.DictType):
        dict_value = _amount_check(info.value_type)
        if dict_value is None:
            return None

        def check_values(value: Any, path: str) -> None:
            for key, element in value.items():
                dict_value(element, f"{path}[{key!r}]")

        return check_values
    if isinstance(info, mi.UnionType):
        return _union_check(info)
    return None


def _struct_check(info: mi.StructType) -> _AmountCheck | None:
    plain = [f.name for f in info.fields if isinstance(f.type, mi.DecimalType)]
    nested = [(f.name, c) for f in info.fields
              if not isinstance(f.type, mi.DecimalType) and (c := _amount_check(f.type))]
    if not plain and not nested:
        return None
    # The common case, plain Decimal fields, costs one C call and a type test per field; the
    # messages come from the slow path, which runs only when something is wrong.
    get_plain = operator.attrgetter(*plain, "__class__") if plain else None

    def check_struct(value: object, path: str) -> None:
        if get_plain is not None:
            for amount in get_plain(value)[:-1]:
                if amount.__class__ is not Decimal or not amount.is_finite():
                    for name in plain:
                        _check_decimal(getattr(value, name), f"{path}.{name}")
        for name, check in nested:
            check(getattr(value, name), f"{path}.{name}")

    return check_struct


_CONTAINER_CLASSES: dict[type, type] = {
    mi.ListType: list, mi.VarTupleType: tuple, mi.SetType: set, mi.FrozenSetType: frozenset,
    mi.DictType: dict,
}


def _union_check(info: mi.UnionType) -> _AmountCheck | None:
    """Dispatch on the value's class: a number where a Decimal may stand, a Struct, a container."""
    takes_decimal = any(isinstance(m, mi.DecimalType) for m in info.types)
    takes_number = any(isinstance(m, mi.IntType | mi.FloatType) for m in info.types)
    by_class: dict[type, _AmountCheck] = {}
    for member in info.types:
        check = _amount_check(member)
        if check is None or isinstance(member, mi.DecimalType):
            continue
        cls = member.cls if isinstance(member, mi.StructType) else _CONTAINER_CLASSES[type(member)]
        by_class[cls] = check
    if not (takes_decimal or by_class):
        return None

    def check_union(value: object, path: str) -> None:
        if isinstance(value, Decimal) or (
            takes_decimal and not takes_number and isinstance(value, float | int)
        ):
            _check_decimal(value, path)
        elif (check := by_class.get(type(value))) is not None:
            check(value, path)

    return check_union
