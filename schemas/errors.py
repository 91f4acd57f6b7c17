"""Exceptions raised by the wire-contract package, sorted by what the caller must do.

::

    SchemaError                      root: anything this package raises on purpose
    ├── DecodeError                  poison message: dead-letter it, still commit
    ├── UnknownSchemaIdError         poison message (id never registered): dead-letter it
    ├── EncodeError                  bug or bad record on the producing side: fail the batch
    ├── InvalidSchemaError           schema text that is not valid Avro: fatal config error
    ├── SchemaNotRegisteredError     static registry has no id for a schema: fatal config error
    └── RegistryError                registry unreachable or bad response: retriable transport

Invariants: every error keeps its context as attributes (never only in the message), and
wrapping sites use ``raise ... from exc`` so the original cause stays on ``__cause__``.
"""

from __future__ import annotations


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class DecodeError(SchemaError):
    """A payload could not be decoded (bad framing, truncated or malformed Avro body)."""

    def __init__(self, reason: str, *, schema_id: int | None = None) -> None:
        self.reason = reason
        self.schema_id = schema_id
        where = "" if schema_id is None else f" (schema id {schema_id})"
        super().__init__(f"cannot decode payload{where}: {reason}")


class UnknownSchemaIdError(SchemaError):
    """The registry has no schema under this id."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"unknown schema id {schema_id}")


class EncodeError(SchemaError):
    """A record does not fit the writer schema (wrong shapes, out-of-range values...)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot encode record: {reason}")


class InvalidSchemaError(SchemaError):
    """Schema text that does not parse as Avro."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid Avro schema: {reason}")


class SchemaNotRegisteredError(SchemaError):
    """A static registry holds no id for a schema (static ids are configured, never minted)."""

    def __init__(self, subject: str, fullname: str) -> None:
        self.subject = subject
        self.fullname = fullname
        super().__init__(f"no id registered for schema {fullname} (subject {subject!r})")


class RegistryError(SchemaError):
    """The schema registry is unreachable or answered something unusable. Retry later."""

    def __init__(self, reason: str, *, url: str, status: int | None = None) -> None:
        self.reason = reason
        self.url = url
        self.status = status
        code = "" if status is None else f" (HTTP {status})"
        super().__init__(f"schema registry error at {url}{code}: {reason}")
