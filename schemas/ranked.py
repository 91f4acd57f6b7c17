"""Encoding and decoding framed ``RankedList`` messages (the scorer's output).

:class:`RankedListEncoder` turns the scorer's dense top-k matrices into messages with no
per-item Python: the zig-zag varints of all item ids and the little-endian float32 scores are
laid out as one byte table, interleaved by a single boolean gather, and each message is one
``bytes.join`` of its header fields, its slice of that blob and its trailer. A writer schema
other than the bundled layout is written by fastavro instead. :class:`RankedListDecoder` is for
downstream readers and tests and always resolves the writer schema against the bundled one.

Invariants: encoder output is byte-for-byte what fastavro ``schemaless_writer`` produces after the
frame header (scores are written bit-exact, so NaN payloads survive); only the first
``counts[i]`` entries of row ``i`` are written, in the given (best-first) order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from schemas.errors import DecodeError, EncodeError
from schemas.fallback import read_record, write_record
from schemas.framing import frame_header, read_header
from schemas.parsed import ParsedSchema, bundled
from schemas.primitives import write_long, write_string
from schemas.records import RankedList
from schemas.registry import SchemaRegistry
from schemas.varint import used_cells, zigzag_table

_BOOLS = (b"\x00", b"\x01")


class RankedListEncoder:
    """Writes batches of ranked lists framed with ``schema_id``."""

    def __init__(self, registry: SchemaRegistry, schema_id: int = 2) -> None:
        self.schema_id = schema_id
        self._writer: ParsedSchema = registry.schema_for_id(schema_id)
        self._header = frame_header(schema_id)
        self._fast = self._writer.canonical == bundled("RankedList").canonical

    def encode_batch(
        self,
        request_ids: Sequence[str],
        user_ids: NDArray[np.int64],
        models: Sequence[str],
        model_versions: Sequence[str],
        item_ids: NDArray[np.int64],
        scores: NDArray[np.float32],
        counts: NDArray[np.int32],
        created_at_ms: NDArray[np.int64],
        scored_at_ms: int | NDArray[np.int64],
        degraded: NDArray[np.bool_] | None = None,
    ) -> list[bytes]:
        """One message per row; row ``i`` holds ``item_ids[i, :counts[i]]`` best first."""
        n = len(request_ids)
        counts64 = _check_shapes(n, item_ids, scores, counts)
        columns: dict[str, list[Any]] = {
            "user_id": _column(user_ids, n, np.int64, "user_ids"),
            "created_at": _column(created_at_ms, n, np.int64, "created_at_ms"),
            "scored_at": _column(scored_at_ms, n, np.int64, "scored_at_ms"),
            "degraded": _column(False if degraded is None else degraded, n, bool, "degraded"),
        }
        if len(models) != n or len(model_versions) != n:
            raise EncodeError("models and model_versions need one entry per request id")
        if not self._fast:
            return self._encode_with_fastavro(
                request_ids, models, model_versions, item_ids, scores, counts64, columns
            )
        blob, offsets = _item_blob(item_ids, scores, counts64)
        header = self._header
        # Model names, versions, the scoring time and the list length repeat across a batch:
        # each distinct value is encoded once (a batch is usually one model, one time stamp).
        strings = {v: write_string(v) for v in {*models, *model_versions}}
        scored = {v: write_long(v) for v in set(columns["scored_at"])}
        lengths = {c: write_long(c) if c else b"" for c in set(counts64.tolist())}
        return [
            b"".join(
                (
                    header,
                    write_string(request_ids[i]),
                    write_long(columns["user_id"][i]),
                    strings[models[i]],
                    strings[model_versions[i]],
                    lengths[count],
                    blob[offsets[i] : offsets[i + 1]],
                    b"\x00",
                    write_long(columns["created_at"][i]),
                    scored[columns["scored_at"][i]],
                    _BOOLS[columns["degraded"][i]],
                )
            )
            for i, count in enumerate(counts64.tolist())
        ]

    def _encode_with_fastavro(
        self,
        request_ids: Sequence[str],
        models: Sequence[str],
        model_versions: Sequence[str],
        item_ids: NDArray[np.int64],
        scores: NDArray[np.float32],
        counts: NDArray[np.int64],
        columns: dict[str, list[Any]],
    ) -> list[bytes]:
        messages = []
        for i, count in enumerate(counts.tolist()):
            ids, row_scores = item_ids[i, :count].tolist(), scores[i, :count].tolist()
            record = {
                "request_id": request_ids[i],
                "model": models[i],
                "model_version": model_versions[i],
                "items": [{"item_id": a, "score": s} for a, s in zip(ids, row_scores, strict=True)],
            } | {name: values[i] for name, values in columns.items()}
            messages.append(write_record(self._header, self._writer, record))
        return messages


def _column(values: Any, n: int, dtype: type[Any], name: str) -> list[Any]:
    """A per-row argument (or a scalar for every row) as a list of ``n`` Python values."""
    array = np.asarray(values, dtype)
    if array.ndim > 1 or (array.ndim == 1 and len(array) != n):
        raise EncodeError(f"{name} must be a scalar or have shape ({n},), got {array.shape}")
    return np.broadcast_to(array, (n,)).tolist()  # type: ignore[no-any-return]


def _check_shapes(
    n: int, item_ids: NDArray[np.int64], scores: NDArray[np.float32], counts: NDArray[np.int32]
) -> NDArray[np.int64]:
    if item_ids.ndim != 2 or item_ids.shape[0] != n or scores.shape != item_ids.shape:
        raise EncodeError(
            f"item_ids and scores must both be (n={n}, kmax), got {item_ids.shape} and "
            f"{scores.shape}"
        )
    if item_ids.dtype.kind not in "iu" or scores.dtype.kind != "f":
        raise EncodeError(f"bad dtypes: item_ids {item_ids.dtype}, scores {scores.dtype}")
    counts64 = np.asarray(counts).astype(np.int64, copy=False)
    if counts64.shape != (n,):
        raise EncodeError(f"counts must have shape ({n},), got {counts64.shape}")
    if n and (counts64.min() < 0 or counts64.max() > item_ids.shape[1]):
        raise EncodeError(f"counts must lie in [0, {item_ids.shape[1]}]")
    return counts64


def _item_blob(
    item_ids: NDArray[np.int64], scores: NDArray[np.float32], counts: NDArray[np.int64]
) -> tuple[bytes, list[int]]:
    """Encoded items of all rows back to back, and each row's byte offsets into the blob."""
    used = np.arange(item_ids.shape[1])[None, :] < counts[:, None]
    ids = item_ids[used].astype(np.int64, copy=False)
    floats = np.ascontiguousarray(scores[used], "<f4").view(np.uint8).reshape(-1, 4)
    table, lengths = zigzag_table(ids)
    cells = np.concatenate((table, floats), axis=1)
    width = table.shape[1]
    keep = np.ones(cells.shape, bool)  # float bytes always kept, varint bytes up to their length
    keep[:, :width] = used_cells(lengths, width)
    blob = cells[keep].tobytes()
    item_ends = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lengths + 4, out=item_ends[1:])
    row_splits = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=row_splits[1:])
    return blob, item_ends[row_splits].tolist()


class RankedListDecoder:
    """Reads framed RankedList messages written with any registered, resolvable schema."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._reader = bundled("RankedList")

    def decode(self, payload: bytes) -> RankedList:
        """One message; raises DecodeError or UnknownSchemaIdError."""
        schema_id = read_header(payload)
        writer = self._registry.schema_for_id(schema_id)
        try:
            record = read_record(payload, writer, self._reader)
        except DecodeError as exc:
            raise DecodeError(exc.reason, schema_id=schema_id) from exc
        items = record["items"]
        return RankedList(
            request_id=record["request_id"],
            user_id=record["user_id"],
            model=record["model"],
            model_version=record["model_version"],
            item_ids=np.array([item["item_id"] for item in items], np.int64),
            scores=np.array([item["score"] for item in items], np.float32),
            created_at_ms=record["created_at"],
            scored_at_ms=record["scored_at"],
            degraded=record["degraded"],
        )
