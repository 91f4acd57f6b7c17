"""Encoding ``ScoringJob`` rows as framed Avro messages (producers, load generators, tests).

With a writer schema of the bundled ScoringJob layout the header fields are written by
:mod:`schemas.primitives` and the candidates in one vectorized pass; any other writer schema
(an older or newer version registered under another id) is written by fastavro, with missing
fields taking the writer's defaults.

Invariants: output is byte-for-byte what fastavro ``schemaless_writer`` produces after the
5-byte frame header; values that do not fit the schema raise :class:`EncodeError`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from schemas.errors import EncodeError
from schemas.fallback import write_record
from schemas.framing import frame_header
from schemas.parsed import ParsedSchema, bundled
from schemas.primitives import INT64_MAX, write_int, write_long, write_string, write_string_map
from schemas.records import ScoringJob
from schemas.registry import SchemaRegistry
from schemas.varint import encode_zigzag


class JobEncoder:
    """Writes :class:`ScoringJob` rows framed with ``schema_id``.

    ``candidate_cache`` > 0 keeps the encoded candidate arrays of that many distinct lists
    (least recently used dropped first), keyed by their bytes: for producers that send the same
    candidate lists again and again, such as load generators drawing from a pool of lists.
    """

    def __init__(
        self, registry: SchemaRegistry, schema_id: int = 1, candidate_cache: int = 0
    ) -> None:
        if candidate_cache < 0:
            raise ValueError("candidate_cache must be >= 0")
        self.schema_id = schema_id
        self._writer: ParsedSchema = registry.schema_for_id(schema_id)
        self._header = frame_header(schema_id)
        self._fast = self._writer.canonical == bundled("ScoringJob").canonical
        self._cache_size = candidate_cache
        self._blocks: OrderedDict[bytes, bytes] = OrderedDict()

    def encode(self, job: ScoringJob) -> bytes:
        """One framed message."""
        candidates = as_int64_array(job.candidates, "candidates")
        if self._fast:
            return self._encode_fast(job, candidates)
        return self._encode_with_fastavro(job, candidates)

    def _candidate_block(self, candidates: NDArray[np.int64]) -> bytes:
        """The encoded ``candidates`` array: count, varints and the end-of-array 0."""
        if not self._cache_size:
            return _array_block(candidates)
        key = candidates.tobytes()
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _array_block(candidates)
            if len(self._blocks) > self._cache_size:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(key)
        return block

    def _encode_fast(self, job: ScoringJob, candidates: NDArray[np.int64]) -> bytes:
        return b"".join(
            (
                self._header,
                write_string(job.request_id),
                write_long(job.user_id),
                write_string(job.model),
                write_long(job.created_at_ms),
                write_string_map(job.context),
                self._candidate_block(candidates),
                write_int(job.top_k),
            )
        )

    def _encode_with_fastavro(self, job: ScoringJob, candidates: NDArray[np.int64]) -> bytes:
        record: dict[str, Any] = {
            "request_id": job.request_id,
            "user_id": job.user_id,
            "model": job.model,
            "created_at": job.created_at_ms,
            "context": job.context,
            "candidates": candidates.tolist(),
            "top_k": job.top_k,
        }
        return write_record(self._header, self._writer, record)


def _array_block(candidates: NDArray[np.int64]) -> bytes:
    if not len(candidates):
        return b"\x00"
    return b"".join((write_long(len(candidates)), encode_zigzag(candidates), b"\x00"))


def as_int64_array(values: NDArray[Any] | Sequence[int], name: str) -> NDArray[np.int64]:
    """``values`` as a 1-D int64 array; raises EncodeError for non-integers or overflow."""
    try:
        array = np.asarray(values)
    except (OverflowError, ValueError) as exc:
        raise EncodeError(f"{name}: {exc}") from exc
    if array.ndim != 1:
        raise EncodeError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, np.int64)
    if array.dtype.kind not in "iu":
        raise EncodeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > INT64_MAX:
        raise EncodeError(f"{name} holds values above the int64 range")
    return array.astype(np.int64, copy=False)
