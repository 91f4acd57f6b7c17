"""Parsed Avro schemas and the bundled ``.avsc`` files.

A :class:`ParsedSchema` is the one schema object that crosses this package: it keeps the schema
JSON as written, its Parsing Canonical Form and CRC-64-AVRO fingerprint (which identify the binary
layout), and two fastavro-parsed forms: ``parsed`` as written and ``plain`` with every
``logicalType`` removed, so timestamps decode as the raw ``long`` milliseconds the records carry.

Invariants: a ParsedSchema is immutable; two schemas with the same ``fingerprint`` encode the same
bytes for the same values (defaults, docs and logical types do not change the layout); every parse
uses its own fastavro name table, so two versions of one record name never collide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.errors import InvalidSchemaError

#: Bundled schema files by record name.
BUNDLED_FILES: Mapping[str, str] = {
    "ScoringJob": "scoring_job.avsc",
    "RankedList": "ranked_list.avsc",
}


@dataclass(frozen=True, slots=True, eq=False)
class ParsedSchema:
    """An Avro schema ready for fastavro, with its layout identity."""

    raw: Mapping[str, Any]
    canonical: str
    fingerprint: str
    parsed: Any = field(repr=False)
    plain: Any = field(repr=False)

    @property
    def fullname(self) -> str:
        """Namespace-qualified name of the top-level type."""
        name = str(self.raw.get("name", self.raw.get("type", "")))
        namespace = self.raw.get("namespace")
        return f"{namespace}.{name}" if namespace and "." not in name else name

    def to_json(self) -> str:
        """The schema as compact JSON text, as a registry stores it."""
        return json.dumps(self.raw, separators=(",", ":"))

    def same_layout(self, other: ParsedSchema) -> bool:
        """True when both schemas write identical bytes for identical values."""
        return self.fingerprint == other.fingerprint


def parse(schema: ParsedSchema | Mapping[str, Any] | str) -> ParsedSchema:
    """Parse a schema given as JSON text, a JSON-like mapping or an already parsed schema."""
    if isinstance(schema, ParsedSchema):
        return schema
    try:
        raw = json.loads(schema) if isinstance(schema, str) else schema
        if not isinstance(raw, Mapping):
            raise InvalidSchemaError("top-level schema must be a JSON object")
        raw = json.loads(json.dumps(raw))  # private deep copy: callers cannot mutate it later
        canonical = to_parsing_canonical_form(raw)
        return ParsedSchema(
            raw=raw,
            canonical=canonical,
            fingerprint=fingerprint(canonical, "CRC-64-AVRO"),
            parsed=fastavro.parse_schema(raw, named_schemas={}),
            plain=fastavro.parse_schema(strip_logical_types(raw), named_schemas={}),
        )
    except InvalidSchemaError:
        raise
    except Exception as exc:  # fastavro raises a zoo of types for bad schemas
        raise InvalidSchemaError(str(exc) or type(exc).__name__) from exc


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations (the layout is unchanged)."""
    if isinstance(schema, Mapping):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(item) for item in schema]
    return schema


def load_bundled(name: str) -> dict[str, Any]:
    """The bundled schema JSON for ``"ScoringJob"`` or ``"RankedList"`` (a fresh copy)."""
    try:
        filename = BUNDLED_FILES[name]
    except KeyError:
        raise KeyError(f"no bundled schema {name!r}; known: {sorted(BUNDLED_FILES)}") from None
    text = resources.files("schemas").joinpath(filename).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def bundled(name: str) -> ParsedSchema:
    """The bundled schema ``name``, parsed once per process."""
    return parse(load_bundled(name))
