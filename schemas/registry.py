"""Where schema ids come from: the :class:`SchemaRegistry` seam and its static implementation.

Two implementations satisfy the protocol: :class:`StaticRegistry` (bundled ``.avsc`` files under
configured ids; no network) and :class:`~schemas.http_registry.HttpSchemaRegistry` (a
Confluent-compatible Schema Registry), re-exported here.

Invariants: an id, once known, always maps to the same schema; ``schema_for_id`` raises
:class:`UnknownSchemaIdError` for ids it does not know and never returns ``None``; the static
registry never mints ids (ids are configuration shared by producers and consumers).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from schemas.errors import SchemaNotRegisteredError, UnknownSchemaIdError
from schemas.http_registry import HttpSchemaRegistry
from schemas.parsed import ParsedSchema, bundled, load_bundled, parse

__all__ = [
    "DEFAULT_IDS",
    "HttpSchemaRegistry",
    "ParsedSchema",
    "SchemaRegistry",
    "StaticRegistry",
    "load_bundled",
]

#: Ids of the bundled schemas in static mode.
DEFAULT_IDS: Mapping[str, int] = {"ScoringJob": 1, "RankedList": 2}

SchemaLike = ParsedSchema | Mapping[str, Any] | str


class SchemaRegistry(Protocol):
    """Resolves schema ids found on the wire, and ids to write under."""

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        """The writer schema registered under ``schema_id``; raises UnknownSchemaIdError."""
        ...

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        """The id to frame ``schema`` with when producing to ``subject``."""
        ...


class StaticRegistry:
    """An in-process registry of configured ids (default: ScoringJob 1, RankedList 2)."""

    def __init__(self, schemas: Mapping[int, SchemaLike] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, ParsedSchema] = {}
        if schemas is None:
            schemas = {schema_id: bundled(name) for name, schema_id in DEFAULT_IDS.items()}
        for schema_id, schema in schemas.items():
            self.register(schema_id, schema)

    def register(self, schema_id: int, schema: SchemaLike) -> ParsedSchema:
        """Add ``schema`` under ``schema_id`` (re-registering the same layout is a no-op)."""
        if not 0 <= schema_id < 2**31:
            raise ValueError(f"schema id must fit a non-negative int32, got {schema_id}")
        parsed = parse(schema)
        with self._lock:
            known = self._by_id.get(schema_id)
            if known is not None and known.canonical != parsed.canonical:
                raise ValueError(f"schema id {schema_id} is already bound to {known.fullname}")
            self._by_id[schema_id] = parsed
        return parsed

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaIdError(schema_id) from None

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        """Lowest id whose schema has the same canonical form; the subject is not checked."""
        with self._lock:
            matches = [i for i, s in self._by_id.items() if s.canonical == schema.canonical]
        if not matches:
            raise SchemaNotRegisteredError(subject, schema.fullname)
        return min(matches)

    def ids(self) -> list[int]:
        """Registered ids, ascending."""
        return sorted(self._by_id)
