"""Writes ``protobuf_schema.json.gz`` (the message schemas ``protobuf.py`` reads bodies with) from a kubectl binary.

kubectl carries the descriptors of the Kubernetes API's ``generated.proto`` files, each a
gzipped ``FileDescriptorProto``. This reads them, keeps the messages that the kinds the
sandbox serves can hold (and ``DeleteOptions``, ``Eviction``, ``Scale``), and writes for each
field its JSON name, type, message type, whether it repeats and whether it is a pointer in Go
(gogoproto's ``nullable``, option 65001, is false for the others)::

    python -m sandbox.protobuf_schema /usr/bin/kubectl   # or a kubectl.1.NN beside it
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any

from sandbox.protobuf import MESSAGE, SCHEMA_FILE, fields
from sandbox.resources import RESOURCES

EXTRA_KINDS = (("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
               ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
               ("meta.k8s.io/v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
               ("v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"))
NULLABLE = 65001


def _descriptors(binary: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", binary):
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(binary[match.start():match.start() + 4_000_000])
        except zlib.error:
            continue
        if data[:1] == b"\x0a" and b"generated.proto" in data[:200]:
            found.append(data)
    return found


def _messages(descriptor: bytes) -> tuple[dict[str, dict[str, list[Any]]], list[str]]:
    """FileDescriptorProto: package 2, message_type 4. DescriptorProto: name 1, field 2, nested_type 3, options 7
    (map_entry 7). FieldDescriptorProto: name 1, number 3, label 4 (3 repeated), type 5, type_name 6, options 8,
    json_name 10."""
    top = fields(descriptor)
    package = next((v.decode() for n, _, v in top if n == 2), "")
    messages: dict[str, dict[str, list[Any]]] = {}
    maps: list[str] = []

    def read(data: bytes, prefix: str) -> None:
        parts = fields(data)
        name = f"{prefix}.{next(v.decode() for n, _, v in parts if n == 1)}"
        table: dict[str, list[Any]] = {}
        for number, _, value in parts:
            if number == 2:
                field = {n: v for n, _, v in fields(value)}
                json_name = (field.get(10) or field[1]).decode()
                type_name = field.get(6, b"").decode().lstrip(".")
                plain = any(n == NULLABLE and not v for n, _, v in fields(field.get(8, b"")))
                table[str(field[3])] = [json_name, field[5], type_name, int(field.get(4) == 3), int(not plain)]
            elif number == 3:
                read(value, name)
            elif number == 7 and any(n == 7 and v for n, _, v in fields(value)):
                maps.append(name)
        messages[name] = table

    for number, _, value in top:
        if number == 4:
            read(value, package)
    return messages, maps


def extract(kubectl: Path) -> dict[str, Any]:
    messages: dict[str, dict[str, list[Any]]] = {}
    maps: list[str] = []
    for descriptor in _descriptors(kubectl.read_bytes()):
        found, entry_types = _messages(descriptor)
        messages.update(found)
        maps += entry_types
    kinds = {f"{api_version}/{kind}": name for api_version, kind, name in EXTRA_KINDS}
    for resource in RESOURCES:
        name = f"k8s.io.api.{resource.group.split('.')[0] if resource.group else 'core'}.{resource.version}.{resource.kind}"
        if name in messages:
            kinds[f"{resource.api_version}/{resource.kind}"] = name
    keep: set[str] = set()
    todo = list(kinds.values())
    while todo:
        name = todo.pop()
        if name in keep or name not in messages:
            continue
        keep.add(name)
        todo += [f[2] for f in messages[name].values() if f[1] == MESSAGE]
    return {"kinds": dict(sorted(kinds.items())), "maps": sorted(m for m in maps if m in keep),
            "messages": {name: messages[name] for name in sorted(keep)}}


def main(argv: list[str]) -> None:
    schema = extract(Path(argv[1] if len(argv) > 1 else "/usr/bin/kubectl"))
    SCHEMA_FILE.write_bytes(gzip.compress(json.dumps(schema, separators=(",", ":"), sort_keys=True).encode(), mtime=0))
    print(f"{SCHEMA_FILE}: {len(schema['kinds'])} kinds, {len(schema['messages'])} messages")


if __name__ == "__main__":
    main(sys.argv)
