"""Kubernetes' protobuf request bodies (``application/vnd.kubernetes.protobuf``), read into the JSON form.

kubectl 1.32 and later (client-go's typed clients) send built-in kinds as protobuf and do not
fall back to JSON when a server answers 415, so ``kubectl create rolebinding``, ``create
namespace``, ``auth can-i`` and the like only work against a server that reads protobuf. A
body is the magic ``k8s\\0`` then a ``runtime.Unknown`` (``typeMeta`` 1 with ``apiVersion`` 1
and ``kind`` 2; ``raw`` 2: the object's own encoding). The object is read with the message
schemas in ``protobuf_schema.json.gz``: for every message the kinds the sandbox serves can
hold, field number -> (JSON name, type, message type, repeated, pointer in Go), taken from
the descriptors kubectl carries (``python -m sandbox.protobuf_schema <kubectl>``
writes it again).

Protobuf carries every field that is not a pointer in Go, zero or not, where JSON leaves
a zero out (``omitempty``): such a field's ``0``, ``false`` or ``""`` is left out here too, as
is the zero time (JSON's ``null``). A pointer field is only sent when set, so its ``0`` or
``false`` is kept (``replicas: 0``, ``allowPrivilegeEscalation: false``), and objects are kept
even empty (``podSelector: {}`` selects every pod). A
body that is not a Kubernetes protobuf envelope is a 400; a kind or field the schemas do not
know is a 415 (the sandbox cannot read it: send JSON), never a silently dropped field.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sandbox import errors

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
RUNTIME = "k8s.io.apimachinery.pkg.runtime"
SCHEMA_FILE = Path(__file__).with_name("protobuf_schema.json.gz")
# Field types of descriptor.proto's FieldDescriptorProto.Type.
DOUBLE, FLOAT, INT64, UINT64, INT32, FIXED64, FIXED32, BOOL, STRING, GROUP, MESSAGE, BYTES, UINT32, ENUM, SFIXED32, SFIXED64, \
    SINT32, SINT64 = range(1, 19)
Field = tuple[str, int, str, bool, bool]  # JSON name, type, message type (or ""), repeated, pointer in Go


class Unreadable(Exception):
    """The body is protobuf, but of a kind or with a field the schemas do not know."""


# ---- the wire format ------------------------------------------------------------------


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order: an int for varints and fixed sizes, bytes for length-delimited."""
    found: list[tuple[int, int, Any]] = []
    at = 0
    value: int | bytes
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = int.from_bytes(data[at:at + 8], "little"), at + 8
        elif wire == 5:
            value, at = int.from_bytes(data[at:at + 4], "little"), at + 4
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if at > len(data) or number == 0:
            raise ValueError("truncated message")
        found.append((number, wire, value))
    return found


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _scalar(kind: int, wire: int, value: Any) -> Any:
    if kind in (INT64, INT32, ENUM):
        return _signed(value & (2**64 - 1))
    if kind in (UINT64, UINT32, FIXED64, FIXED32):
        return value
    if kind in (SINT32, SINT64):
        return (value >> 1) ^ -(value & 1)
    if kind == SFIXED32:
        return _signed(value, 32)
    if kind == SFIXED64:
        return _signed(value)
    if kind == BOOL:
        return bool(value)
    if kind == DOUBLE:
        return struct.unpack("<d", value.to_bytes(8, "little"))[0]
    if kind == FLOAT:
        return struct.unpack("<f", value.to_bytes(4, "little"))[0]
    if kind == STRING:
        return value.decode("utf-8")
    if kind == BYTES:
        return base64.b64encode(value).decode()
    raise ValueError(f"unsupported field type {kind}")


def _values(kind: int, wire: int, value: Any) -> list[Any]:
    """One field's values: a packed repeated scalar carries several in one length-delimited value."""
    if wire == 2 and kind not in (STRING, BYTES, MESSAGE):
        items, at = [], 0
        while at < len(value):
            if kind in (DOUBLE, FIXED64, SFIXED64):
                items.append(_scalar(kind, 1, int.from_bytes(value[at:at + 8], "little")))
                at += 8
            elif kind in (FLOAT, FIXED32, SFIXED32):
                items.append(_scalar(kind, 5, int.from_bytes(value[at:at + 4], "little")))
                at += 4
            else:
                number, at = _varint(value, at)
                items.append(_scalar(kind, 0, number))
        return items
    return [_scalar(kind, wire, value)]


# ---- schemas and Kubernetes' special messages ------------------------------------------


@cache
def schemas() -> dict[str, Any]:
    """``{"messages": {name: {number: Field}}, "maps": [entry message names], "kinds": {"group/version/Kind": name}}``."""
    raw = json.loads(gzip.decompress(SCHEMA_FILE.read_bytes()))
    messages = {name: {int(number): (f[0], f[1], f[2], bool(f[3]), bool(f[4])) for number, f in table.items()}
                for name, table in raw["messages"].items()}
    return {"messages": messages, "maps": frozenset(raw["maps"]), "kinds": raw["kinds"]}


def _time(data: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields(data):
        if number == 1:
            seconds = _signed(value)
        elif number == 2:
            nanos = _signed(value)
    if not seconds and not nanos:
        return None  # Go's zero time, which JSON writes as null
    stamp = datetime.fromtimestamp(seconds, UTC)
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(name: str, data: bytes) -> tuple[bool, Any]:
    """(handled, value) for the messages whose JSON form is not an object of their fields."""
    if name in (f"{META}.Time", f"{META}.MicroTime"):
        return True, _time(data, micro=name.endswith("MicroTime"))
    found = {number: value for number, _, value in fields(data)}
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, found.get(1, b"").decode()
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        if found.get(1, 0) == 1:
            return True, found.get(3, b"").decode()
        return True, _signed(found.get(2, 0) & (2**64 - 1))
    if name == f"{META}.Duration":
        return True, _duration(_signed(found.get(1, 0)))
    if name in (f"{RUNTIME}.RawExtension", f"{META}.FieldsV1"):
        raw = found.get(1, b"")
        try:
            return True, json.loads(raw) if raw else None
        except ValueError:
            raise Unreadable(f"{name} that is not JSON") from None
    return False, None


def _duration(nanoseconds: int) -> str:
    seconds, rest = divmod(abs(nanoseconds), 10**9)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}{'.' + f'{rest:09d}'.rstrip('0') if rest else ''}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return ("-" if nanoseconds < 0 else "") + text


def message(name: str, data: bytes) -> Any:
    """The JSON form of one encoded message of type ``name``."""
    handled, value = _special(name, data)
    if handled:
        return value
    schema = schemas()["messages"].get(name)
    if schema is None:
        raise Unreadable(name)
    obj: dict[str, Any] = {}
    plain: set[str] = set()
    for number, wire, raw in fields(data):
        field = schema.get(number)
        if field is None:
            raise Unreadable(f"field {number} of {name}")
        key, kind, type_name, repeated, pointer = field
        if not pointer and kind != MESSAGE:
            plain.add(key)
        if kind == MESSAGE and type_name in schemas()["maps"]:
            entry = message(type_name, raw)
            obj.setdefault(key, {})[entry.get("key", "")] = entry.get("value", _map_default(type_name))
            continue
        values = [message(type_name, raw)] if kind == MESSAGE else _values(kind, wire, raw)
        if repeated:
            obj.setdefault(key, []).extend(values)
        else:
            obj[key] = values[-1]
    if name in schemas()["maps"]:
        return obj  # a map entry keeps its empty key or value
    return {k: v for k, v in obj.items() if v is not None and not (k in plain and v in ("", 0, False))}


def _map_default(entry: str) -> Any:
    value = schemas()["messages"][entry].get(2)
    if value is None:
        return None
    return "" if value[1] in (STRING, BYTES) else 0 if value[1] != BOOL else False


def decode(body: bytes) -> dict[str, Any]:
    """The object a protobuf request body carries, in its JSON form with ``apiVersion`` and ``kind``.

    Raises ``ApiError`` 400 for a body that is no Kubernetes protobuf envelope, 415 for one the schemas cannot read.
    """
    if not body.startswith(MAGIC):
        raise errors.bad_request("error decoding request body: provided data does not appear to be a protobuf message, "
                                 "expected prefix [107 56 115 0]")
    try:
        envelope = {number: value for number, _, value in fields(body[len(MAGIC):])}
        type_meta = {number: value.decode() for number, _, value in fields(envelope.get(1, b""))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        if envelope.get(3) or (envelope.get(4) and envelope[4].decode() != CONTENT_TYPE):
            raise Unreadable("an encoded or nested content type")
        name = schemas()["kinds"].get(f"{api_version}/{kind}")
        if name is None:
            raise Unreadable(f"{api_version}, Kind={kind}")
        obj = message(name, envelope.get(2, b""))
    except Unreadable as unknown:
        raise errors.ApiError(415, "UnsupportedMediaType", f"the sandbox cannot read this protobuf body ({unknown}); send "
                              "application/json or application/yaml") from None
    except (ValueError, UnicodeDecodeError, struct.error) as broken:
        raise errors.bad_request(f"error decoding request body: {broken}") from None
    return {"kind": kind, "apiVersion": api_version, **obj}
