"""Batch decoding of framed ``ScoringJob`` messages into :class:`JobColumns`.

Fast path (writer schema with exactly the bundled ScoringJob layout, by canonical fingerprint):
the header fields are read with the scalar readers of :mod:`schemas.primitives`; the rest of
every message (``candidates`` blocks and ``top_k``) is concatenated across the batch and all its
varints are decoded in one vectorized pass (:func:`schemas.varint.decode_zigzag`); a short walk
over block counts then cuts each message's candidates out of that pass. Any other writer schema
goes through fastavro ``schemaless_reader(writer, reader)`` so schema evolution (added fields,
missing ``top_k`` -> 50) is resolved against the bundled reader schema.

Invariants: ``decode_batch`` never raises for a bad payload (each ends in ``indices`` or in
``errors``, exactly once, in input order); it only raises :class:`RegistryError` when the registry
cannot be reached, because then the messages are not at fault and must be retried. Both paths
produce identical values for identical bytes, and both reject trailing bytes after the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from schemas.errors import DecodeError, RegistryError, SchemaError, UnknownSchemaIdError
from schemas.fallback import read_record
from schemas.framing import HEADER_SIZE, read_header
from schemas.parsed import ParsedSchema, bundled
from schemas.primitives import INT32_MAX, INT32_MIN, read_long, read_string, read_string_map
from schemas.records import DecodedJobs, JobColumns
from schemas.registry import SchemaRegistry
from schemas.varint import WORD_PADDING, decode_zigzag

_NO_ITEMS = np.empty(0, np.int64)
_PADDING = b"\x80" * WORD_PADDING  # never terminates a varint, spares decode_zigzag a copy


@dataclass(slots=True)
class _Row:
    """One decoded (or, for the fast path, half-decoded) job."""

    position: int
    schema_id: int
    request_id: str
    user_id: int
    model: str
    created_at_ms: int
    context: dict[str, str]
    candidates: NDArray[np.int32] | NDArray[np.int64] = field(default_factory=lambda: _NO_ITEMS)
    top_k: int = 0


class JobDecoder:
    """Decodes batches of framed ScoringJob payloads; caches the writer schema of each id."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._reader = bundled("ScoringJob")
        self._writers: dict[int, ParsedSchema] = {}
        self._unknown: set[int] = set()  # ids found unknown during the current batch

    def decode_batch(self, payloads: Sequence[bytes | None]) -> DecodedJobs:
        """Decode every payload; undecodable ones are reported in ``errors``, never raised."""
        rows: list[_Row] = []
        tails: list[tuple[_Row, bytes]] = []
        errors: list[tuple[int, SchemaError]] = []
        self._unknown.clear()
        for position, payload in enumerate(payloads):
            try:
                self._decode_one(position, payload, rows, tails)
            except RegistryError:
                raise
            except SchemaError as exc:
                errors.append((position, exc))
            except Exception as exc:  # a bug must not turn one message into a crash loop
                errors.append(
                    (position, DecodeError(f"internal error {type(exc).__name__}: {exc}"))
                )
        failed = _decode_tails(tails)
        errors.extend(failed.items())
        errors.sort(key=lambda entry: entry[0])
        return _assemble([row for row in rows if row.position not in failed], errors)

    def is_fast(self, schema_id: int) -> bool:
        """Whether payloads written with ``schema_id`` take the vectorized path."""
        return self._writer(schema_id).canonical == self._reader.canonical

    def _writer(self, schema_id: int) -> ParsedSchema:
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        if schema_id in self._unknown:  # one registry round trip per unknown id and batch
            raise UnknownSchemaIdError(schema_id)
        try:
            writer = self._writers[schema_id] = self._registry.schema_for_id(schema_id)
        except UnknownSchemaIdError:
            self._unknown.add(schema_id)
            raise
        return writer

    def _decode_one(
        self,
        position: int,
        payload: bytes | None,
        rows: list[_Row],
        tails: list[tuple[_Row, bytes]],
    ) -> None:
        if payload is None:
            raise DecodeError("payload is null (tombstone)")
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        schema_id = read_header(payload)
        writer = self._writer(schema_id)
        try:
            if writer.canonical == self._reader.canonical:
                row, tail = _read_header_fields(position, schema_id, payload)
                tails.append((row, tail))
            else:
                row = self._read_with_fastavro(position, schema_id, payload, writer)
        except DecodeError as exc:
            raise DecodeError(exc.reason, schema_id=schema_id) from exc
        rows.append(row)

    def _read_with_fastavro(
        self, position: int, schema_id: int, payload: bytes, writer: ParsedSchema
    ) -> _Row:
        record = read_record(payload, writer, self._reader)
        top_k = record["top_k"]
        if not INT32_MIN <= top_k <= INT32_MAX:  # fastavro does not range-check ints
            raise DecodeError(f"top_k {top_k} out of 32-bit range")
        try:
            candidates = np.asarray(record["candidates"], np.int64).reshape(-1)
            user_id, created_at_ms = np.array([record["user_id"], record["created_at"]], np.int64)
        except OverflowError as exc:
            raise DecodeError(f"long value out of 64-bit range: {exc}") from exc
        return _Row(
            position,
            schema_id,
            record["request_id"],
            int(user_id),
            record["model"],
            int(created_at_ms),
            record["context"],
            candidates,
            top_k,
        )


def _read_header_fields(position: int, schema_id: int, payload: bytes) -> tuple[_Row, bytes]:
    """Fields before ``candidates``; returns the row and the undecoded rest of the body."""
    request_id, pos = read_string(payload, HEADER_SIZE)
    user_id, pos = read_long(payload, pos)
    model, pos = read_string(payload, pos)
    created_at_ms, pos = read_long(payload, pos)
    context, pos = read_string_map(payload, pos)
    if pos >= len(payload):
        raise DecodeError("truncated before candidates")
    if payload[-1] >= 0x80:  # the last byte must end top_k's varint
        raise DecodeError("truncated varint at end of message")
    row = _Row(position, schema_id, request_id, user_id, model, created_at_ms, context)
    return row, payload[pos:]


def _decode_tails(tails: list[tuple[_Row, bytes]]) -> dict[int, SchemaError]:
    """Fill candidates and top_k of every fast-path row; returns the rows that failed."""
    if not tails:
        return {}
    sizes = np.fromiter((len(tail) for _, tail in tails), np.int64, len(tails))
    stops = np.cumsum(sizes)
    joined = b"".join([*(tail for _, tail in tails), _PADDING])
    varints = decode_zigzag(np.frombuffer(joined, np.uint8))
    # each tail ends on a terminator, so no varint spans two tails
    first = np.searchsorted(varints.ends, stops - sizes).tolist()
    stop = (np.searchsorted(varints.ends, stops - 1) + 1).tolist()
    poisoned = set(np.searchsorted(stops - 1, varints.ends[varints.bad]).tolist())
    failed: dict[int, SchemaError] = {}
    values, ends = varints.values, varints.ends
    for index, (row, _) in enumerate(tails):
        try:
            if index in poisoned:
                raise DecodeError("varint longer than 10 bytes or over 64 bits")
            row.candidates, row.top_k = _walk_blocks(values, ends, first[index], stop[index])
        except DecodeError as exc:
            failed[row.position] = DecodeError(exc.reason, schema_id=row.schema_id)
    return failed


def _walk_blocks(
    values: NDArray[np.int32] | NDArray[np.int64], ends: NDArray[np.int64], j: int, stop: int
) -> tuple[NDArray[np.int32] | NDArray[np.int64], int]:
    """Candidates and top_k from varints ``values[j:stop]`` of one message."""
    blocks: list[NDArray[np.int32] | NDArray[np.int64]] = []
    while True:
        if j >= stop:
            raise DecodeError("truncated candidates array")
        count = int(values[j])
        j += 1
        if count == 0:
            break
        if count < 0:  # negative count: the block's byte size follows
            count = -count
            if j + 1 + count > stop:
                raise DecodeError(f"candidates block of {count} items exceeds the message")
            size = int(values[j])
            j += 1
            if int(ends[j + count - 1] - ends[j - 1]) != size:
                raise DecodeError(f"candidates block byte size {size} does not match its items")
        elif j + count > stop:
            raise DecodeError(f"candidates block of {count} items exceeds the message")
        blocks.append(values[j : j + count])
        j += count
    if j >= stop:
        raise DecodeError("truncated before top_k")
    top_k = int(values[j])
    if not INT32_MIN <= top_k <= INT32_MAX:
        raise DecodeError(f"top_k {top_k} out of 32-bit range")
    if j + 1 != stop:
        raise DecodeError("trailing bytes after the record")
    if len(blocks) == 1:
        return blocks[0], top_k
    return np.concatenate(blocks or [_NO_ITEMS], dtype=np.int64), top_k


def _assemble(rows: list[_Row], errors: list[tuple[int, SchemaError]]) -> DecodedJobs:
    if not rows:
        return DecodedJobs(JobColumns.empty(), np.empty(0, np.int64), errors)
    counts = np.fromiter((len(row.candidates) for row in rows), np.int64, len(rows))
    row_splits = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=row_splits[1:])
    columns = JobColumns(
        request_ids=[row.request_id for row in rows],
        user_ids=np.array([row.user_id for row in rows], np.int64),
        models=[row.model for row in rows],
        created_at_ms=np.array([row.created_at_ms for row in rows], np.int64),
        contexts=[row.context for row in rows],
        candidates=np.concatenate([row.candidates for row in rows], dtype=np.int64),
        row_splits=row_splits,
        top_k=np.array([row.top_k for row in rows], np.int32),
    )
    indices = np.fromiter((row.position for row in rows), np.int64, len(rows))
    return DecodedJobs(columns, indices, errors)
