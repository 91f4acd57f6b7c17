"""Confluent wire format: magic byte ``0``, 4-byte big-endian schema id, then the Avro body.

Invariants: :func:`frame_header` and :func:`read_header` are inverses for ids in
``[0, 2**31)``; ``read_header`` raises :class:`DecodeError` (never IndexError or struct.error) for
``None``, frames shorter than the header and any magic byte other than ``0``.
"""

from __future__ import annotations

from schemas.errors import DecodeError, EncodeError

MAGIC = 0
HEADER_SIZE = 5


def frame_header(schema_id: int) -> bytes:
    """The 5-byte prefix for a body written with schema ``schema_id``."""
    if not 0 <= schema_id < 2**31:
        raise EncodeError(f"schema id {schema_id} does not fit a non-negative int32")
    return bytes((MAGIC,)) + schema_id.to_bytes(4, "big")


def frame(schema_id: int, body: bytes) -> bytes:
    """A complete message: header followed by ``body``."""
    return frame_header(schema_id) + body


def read_header(payload: bytes | None) -> int:
    """The schema id of a framed ``payload``; the body starts at :data:`HEADER_SIZE`."""
    if payload is None:
        raise DecodeError("payload is null (tombstone)")
    if len(payload) < HEADER_SIZE:
        raise DecodeError(f"frame of {len(payload)} bytes is shorter than the 5-byte header")
    if payload[0] != MAGIC:
        raise DecodeError(f"magic byte is {payload[0]}, expected {MAGIC}")
    return int.from_bytes(payload[1:HEADER_SIZE], "big")
