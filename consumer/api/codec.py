"""The ranking API's wire forms: request parsing, bounds, columnar batching and rendering.

Two request forms carry the same job. JSON (``application/json``)::

    {"user_id": 42, "model": "demo-lr", "candidates": [1001, 1002], "context": {"page": "home"},
     "top_k": 50, "request_id": "optional"}

and the Avro binary form (``application/vnd.kafka.avro.v2+binary`` or
``application/octet-stream``): one Confluent-framed ``ScoringJob``, exactly what the stream path
reads. Both end as a `RankRequest`; `to_columns` concatenates a micro-batch of them into the
`JobColumns` the shared scoring path consumes, with numpy only (no Python work per candidate).

Every request is checked here, alone, before it can join a micro-batch: a request that passes
cannot make the batch it joins fail. JSON is parsed by orjson, which refuses what cannot be
scored at the byte level (invalid UTF-8, lone surrogates such as ``"\\ud800"``, nesting deeper than
1,024 levels, ``NaN``) with a message, never an exception of another kind. Then the shape and
types of the body, and the documented bounds (`Bounds`) on every string and map: an oversized
``request_id`` or model name, or a context with too many or too long keys or values, is
refused with the reason rather than echoed back or hashed.

Limits the stream path shares (empty or oversized candidate lists, negative ids, ``top_k``
range) are left to `consumer.stream.jobs.validate` so both paths reject exactly the same jobs
with the same reasons. A body that can never become a job raises `PoisonMessageError` (kind
``decode``, or ``unknown_schema``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from consumer.errors import PoisonMessageError, TransportError
from schemas.errors import RegistryError, UnknownSchemaIdError
from schemas.records import JobColumns
from schemas.serde import JobDecoder

JSON_TYPES = frozenset({"application/json"})
AVRO_TYPES = frozenset({"application/vnd.kafka.avro.v2+binary", "application/octet-stream"})
DEFAULT_TOP_K = 50  # the ScoringJob schema's default
MAX_BODY_BYTES = 1 << 20  # 1 MiB: ~100,000 candidate ids in JSON; larger bodies get 413
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The documented bounds on a request's strings and map (characters, not bytes)."""

    request_id_chars: int = 128
    model_chars: int = 128
    context_keys: int = 64
    context_key_chars: int = 128
    context_value_chars: int = 512


BOUNDS = Bounds()
_ID_PREFIX = os.urandom(8).hex()  # generated request ids: unique per process, then a counter
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """A request id for a caller that sent none (32 hex digits, unique per server process)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


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
    if value is None and key not in body:
        raise _bad(f"{key} is required")
    if value is None:
        hint = " (leave it out for the default)" if default is not None else ""
        raise _bad(f"{key} must be an integer, not null{hint}")
    if type(value) is float and value.is_integer() and not bounds[0] <= value <= bounds[1]:
        raise _bad(f"{key} is out of range")  # orjson reads integers past 64 bits as floats
    if type(value) is not int:  # bool is an int subclass: refuse it too
        raise _bad(f"{key} must be an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise _bad(f"{key} is out of range")
    return value


def _candidates(value: Any) -> NDArray[np.int64]:
    if not isinstance(value, list) or not set(map(type, value)) <= {int}:
        raise _bad("candidates must be an array of integers")  # bools, floats, nulls refused
    try:
        return np.array(value, dtype=np.int64)
    except OverflowError as exc:
        raise _bad("candidate id is out of range") from exc


def _string(value: Any, key: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(f"{key} must be a non-empty string")
    if len(value) > limit:
        raise _bad(f"{key} is longer than {limit} characters")
    return value


def check_context(context: Any, bounds: Bounds = BOUNDS) -> dict[str, str]:
    """`context` if it is a bounded map of strings; else `PoisonMessageError`."""
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise _bad("context must be an object of strings")
    if len(context) > bounds.context_keys:
        raise _bad(f"context has more than {bounds.context_keys} keys")
    if context and max(map(len, context)) > bounds.context_key_chars:
        raise _bad(f"a context key is longer than {bounds.context_key_chars} characters")
    if context and max(map(len, context.values())) > bounds.context_value_chars:
        raise _bad(f"a context value is longer than {bounds.context_value_chars} characters")
    return context


def check_bounds(request: RankRequest, bounds: Bounds = BOUNDS) -> RankRequest:
    """`request` if its strings and context are within `bounds`; else `PoisonMessageError`."""
    _string(request.request_id, "request_id", bounds.request_id_chars)
    _string(request.model, "model", bounds.model_chars)
    check_context(request.context, bounds)
    return request


def parse_json(body: bytes, now_ms: int) -> RankRequest:
    """A JSON request; ``created_at`` is the time it arrived."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"malformed JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    request_id = doc.get("request_id")
    if request_id is not None:
        _string(request_id, "request_id", BOUNDS.request_id_chars)
    if "candidates" not in doc:
        raise _bad("candidates is required")
    return RankRequest(
        request_id=request_id or new_request_id(),
        user_id=_integer(doc, "user_id", None, _INT64),
        model=_string(doc.get("model"), "model", BOUNDS.model_chars),
        created_at_ms=now_ms,
        context=check_context(doc.get("context", {})),
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
    request = RankRequest(
        request_id=job.request_id,
        user_id=job.user_id,
        model=job.model,
        created_at_ms=job.created_at_ms,
        context=job.context,
        candidates=np.asarray(job.candidates, np.int64),
        top_k=job.top_k,
    )
    return check_bounds(request)


def to_columns(requests: list[RankRequest]) -> JobColumns:
    """One columnar batch of the requests, in order; candidates concatenated."""
    n = len(requests)
    sizes = np.fromiter((r.candidates.size for r in requests), np.int64, n)
    splits = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=splits[1:])
    return JobColumns(
        request_ids=[r.request_id for r in requests],
        user_ids=np.fromiter((r.user_id for r in requests), np.int64, n),
        models=[r.model for r in requests],
        created_at_ms=np.fromiter((r.created_at_ms for r in requests), np.int64, n),
        contexts=[r.context for r in requests],
        candidates=np.concatenate([r.candidates for r in requests]),
        row_splits=splits,
        top_k=np.fromiter((r.top_k for r in requests), np.int32, n),
    )


def render(request: RankRequest, ranked: RankedItems, timings_ms: dict[str, float]) -> bytes:
    """The JSON response body of a ranked request.

    Scores are the float32 scores widened to float64 (the digits Python's ``repr`` prints),
    as the stream path's Avro ``float`` reads back.
    """
    items = [
        {"item_id": i, "score": s}
        for i, s in zip(ranked.item_ids.tolist(), ranked.scores.tolist(), strict=True)
    ]
    return orjson.dumps({
        "request_id": request.request_id,
        "user_id": request.user_id,
        "model": request.model,
        "model_version": ranked.model_version,
        "items": items,
        "degraded": ranked.degraded,
        "timings_ms": {k: round(v, 3) for k, v in timings_ms.items()},
    })  # fmt: skip


def render_error(request_id: str | None, kind: str, reason: str) -> bytes:
    """The JSON body of a failed request."""
    return orjson.dumps({"request_id": request_id, "error": kind, "reason": reason})
