"""The general path: fastavro reads and writes framed bodies for any writer schema.

Used whenever a writer schema is not exactly a bundled layout (older or newer versions), and by
the single-message RankedList decoder. Reading resolves the writer schema against the reader
schema, both without logical types, so timestamps stay ``long`` milliseconds.

Invariants: only :class:`DecodeError` / :class:`EncodeError` escape (fastavro's own exception
zoo is wrapped, cause kept); a body with bytes left after the record is a DecodeError.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.errors import DecodeError, EncodeError
from schemas.framing import HEADER_SIZE
from schemas.parsed import ParsedSchema


class _ExactReads(io.BytesIO):
    """A buffer whose short reads raise: fastavro skips writer-only fields with ``read(n)`` and
    would otherwise accept a body truncated inside such a field."""

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and 0 <= size != len(data):
            raise EOFError(f"needed {size} bytes, {len(data)} left")
        return data


def read_record(payload: bytes, writer: ParsedSchema, reader: ParsedSchema) -> dict[str, Any]:
    """The record in ``payload`` (frame header included), as ``reader`` sees it."""
    body = _ExactReads(payload)
    body.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(body, writer.plain, reader.plain)
    except Exception as exc:  # EOFError, IndexError, ValueError, SchemaResolutionError, ...
        raise DecodeError(f"{type(exc).__name__}: {exc}") from exc
    if body.tell() != len(payload):
        raise DecodeError(f"{len(payload) - body.tell()} trailing bytes after the record")
    if not isinstance(record, dict):
        raise DecodeError(f"reader schema {reader.fullname} is not a record")
    return record


def write_record(header: bytes, writer: ParsedSchema, record: dict[str, Any]) -> bytes:
    """``header`` followed by ``record`` written with ``writer`` (missing fields: defaults)."""
    out = io.BytesIO()
    out.write(header)
    try:
        schemaless_writer(out, writer.plain, record)
    except Exception as exc:  # ValueError, TypeError, OverflowError, ...
        raise EncodeError(f"{type(exc).__name__}: {exc}") from exc
    return out.getvalue()
