"""The ranking API's wire forms: request parsing, columnar batching and response rendering.

Two request forms carry the same job. JSON (``application/json``)::

    {"user_id": 42, "model": "demo-lr", "candidates": [1001, 1002], "context": {"page": "home"},
     "top_k": 50, "request_id": "optional"}

and the Avro binary form (``application/vnd.kafka.avro.v2+binary`` or
``application/octet-stream``): one Confluent-framed ``ScoringJob``, exactly what the stream path
reads. Both end as a `RankRequest`; `to_columns` concatenates a micro-batch of them into the
`JobColumns` the shared scoring path consumes, with numpy only (no Python work per candidate).

This module checks only what the shared path cannot: the shape and types of the body. Limits
(empty or oversized candidate lists, negative ids, ``top_k`` range) are left to
`consumer.stream.jobs.validate` so both paths reject exactly the same jobs with the same
reasons. A body that can never become a job raises `PoisonMessageError` (kind ``decode``, or
``unknown_schema``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from consumer.errors import PoisonMessageError, TransportError
from schemas.errors import RegistryError, UnknownSchemaIdError
from schemas.records import JobColumns
from schemas.serde import JobDecoder

JSON_TYPES = frozenset({"application/json"})
AVRO_TYPES = frozenset({"application/vnd.kafka.avro.v2+binary", "application/octet-stream"})
DEFAULT_TOP_K = 50  # the ScoringJob schema's default
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class RankRequest:
    """One parsed ranking request, either form."""

    request_id: str
    user_id: int
    model: str
    created_at_ms: int
    context: dict[str, str]
    candidates: NDArray[np.int64]
    top_k: int


@dataclass(frozen=True, slots=True)
class RankedItems:
    """One ranked answer, best first: ``scores[i]`` is the probability of ``item_ids[i]``."""

    model_version: str
    item_ids: NDArray[np.int64]
    scores: NDArray[np.float32]
    degraded: bool


def _bad(reason: str) -> PoisonMessageError:
    return PoisonMessageError("decode", reason)


def _integer(body: dict[str, Any], key: str, default: int | None, bounds: tuple[int, int]) -> int:
    value = body.get(key, default)
    if value is None:
        raise _bad(f"{key} is required")
    if type(value) is not int:  # bool is an int subclass: refuse it too
        raise _bad(f"{key} must be an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise _bad(f"{key} is out of range")
    return value


def _candidates(value: Any) -> NDArray[np.int64]:
    if not isinstance(value, list):
        raise _bad("candidates must be an array of integers")
    if not set(map(type, value)) <= {int}:  # one C-level pass; bools, floats, nulls refused
        raise _bad("candidates must be an array of integers")
    try:
        return np.array(value, dtype=np.int64)
    except OverflowError as exc:
        raise _bad("candidate id is out of range") from exc


def _context(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _bad("context must be an object of strings")
    return value


def parse_json(body: bytes, now_ms: int) -> RankRequest:
    """A JSON request; ``created_at`` is the time it arrived."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"malformed JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model must be a non-empty string")
    request_id = doc.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("request_id must be a string")
    if "candidates" not in doc:
        raise _bad("candidates is required")
    return RankRequest(
        request_id=request_id or uuid.uuid4().hex,
        user_id=_integer(doc, "user_id", None, _INT64),
        model=model,
        created_at_ms=now_ms,
        context=_context(doc.get("context", {})),
        candidates=_candidates(doc["candidates"]),
        top_k=_integer(doc, "top_k", DEFAULT_TOP_K, _INT32),
    )


def parse_avro(decoder: JobDecoder, body: bytes) -> RankRequest:
    """A framed ScoringJob, decoded by the stream path's decoder (its created_at is kept)."""
    try:
        decoded = decoder.decode_batch([body])
    except RegistryError as exc:  # the registry, not the request, is at fault: retriable
        raise TransportError(f"schema registry unavailable: {exc}") from exc
    if decoded.errors:
        error = decoded.errors[0][1]
        kind = "unknown_schema" if isinstance(error, UnknownSchemaIdError) else "decode"
        raise PoisonMessageError(kind, str(error))
    job = decoded.jobs.row(0)
    return RankRequest(
        request_id=job.request_id,
        user_id=job.user_id,
        model=job.model,
        created_at_ms=job.created_at_ms,
        context=job.context,
        candidates=np.asarray(job.candidates, np.int64),
        top_k=job.top_k,
    )


def to_columns(requests: list[RankRequest]) -> JobColumns:
    """One columnar batch of the requests, in order; candidates concatenated."""
    sizes = np.fromiter((r.candidates.size for r in requests), np.int64, len(requests))
    splits = np.zeros(len(requests) + 1, np.int64)
    np.cumsum(sizes, out=splits[1:])
    return JobColumns(
        request_ids=[r.request_id for r in requests],
        user_ids=np.fromiter((r.user_id for r in requests), np.int64, len(requests)),
        models=[r.model for r in requests],
        created_at_ms=np.fromiter((r.created_at_ms for r in requests), np.int64, len(requests)),
        contexts=[r.context for r in requests],
        candidates=np.concatenate([r.candidates for r in requests]),
        row_splits=splits,
        top_k=np.fromiter((r.top_k for r in requests), np.int32, len(requests)),
    )


def render(
    request: RankRequest, ranked: RankedItems, timings_ms: dict[str, float]
) -> dict[str, Any]:
    """The JSON response body of a ranked request."""
    items = [
        {"item_id": i, "score": s}
        for i, s in zip(ranked.item_ids.tolist(), ranked.scores.tolist(), strict=True)
    ]
    return {
        "request_id": request.request_id,
        "user_id": request.user_id,
        "model": request.model,
        "model_version": ranked.model_version,
        "items": items,
        "degraded": ranked.degraded,
        "timings_ms": {k: round(v, 3) for k, v in timings_ms.items()},
    }
