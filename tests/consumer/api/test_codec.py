"""The ranking API's request forms and the columnar batch built from them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from consumer.api.codec import (
    BOUNDS,
    RankedItems,
    RankRequest,
    check_bounds,
    parse_avro,
    parse_json,
    render,
    to_columns,
)
from consumer.errors import PoisonMessageError
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobDecoder, JobEncoder


def request(i: int, candidates: list[int], top_k: int = 5) -> RankRequest:
    return RankRequest(f"r{i}", 100 + i, "m", 1_000 + i, {"page": str(i)},
                       np.array(candidates, np.int64), top_k)  # fmt: skip


def test_to_columns_concatenates_candidates_with_row_splits() -> None:
    jobs = to_columns([request(0, [5, 6, 7]), request(1, []), request(2, [9], top_k=2)])
    assert jobs.request_ids == ["r0", "r1", "r2"]
    assert jobs.user_ids.tolist() == [100, 101, 102]
    assert jobs.candidates.tolist() == [5, 6, 7, 9]
    assert jobs.row_splits.tolist() == [0, 3, 3, 4]
    assert jobs.top_k.tolist() == [5, 5, 2]
    assert jobs.top_k.dtype == np.int32
    assert jobs.created_at_ms.tolist() == [1_000, 1_001, 1_002]
    assert jobs.contexts[2] == {"page": "2"}
    assert jobs.candidates_of(2).tolist() == [9]


def test_json_defaults() -> None:
    parsed = parse_json(b'{"user_id": 3, "model": "m", "candidates": [4, 5]}', now_ms=77)
    assert (parsed.user_id, parsed.model, parsed.top_k, parsed.context) == (3, "m", 50, {})
    assert parsed.created_at_ms == 77
    assert parsed.candidates.dtype == np.int64
    assert parsed.candidates.tolist() == [4, 5]
    other = parse_json(b'{"user_id": 3, "model": "m", "candidates": [4]}', now_ms=77)
    assert parsed.request_id != other.request_id


def test_json_rejects_nested_candidate_arrays() -> None:
    with pytest.raises(PoisonMessageError, match="array of integers") as info:
        parse_json(b'{"user_id": 3, "model": "m", "candidates": [[4, 5]]}', now_ms=0)
    assert info.value.kind == "decode"


def test_avro_form_keeps_the_job_as_written() -> None:
    job = ScoringJob("a-1", 42, "m", 123, {"device": "web"}, np.array([3, 1, 2], np.int64), 7)
    framed = JobEncoder(StaticRegistry()).encode(job)
    parsed = parse_avro(JobDecoder(StaticRegistry()), framed)
    assert (parsed.request_id, parsed.user_id, parsed.model) == ("a-1", 42, "m")
    assert (parsed.created_at_ms, parsed.context, parsed.top_k) == (123, {"device": "web"}, 7)
    assert parsed.candidates.tolist() == [3, 1, 2]
    with pytest.raises(PoisonMessageError, match="cannot decode"):
        parse_avro(JobDecoder(StaticRegistry()), framed + b"\x00")


def test_render_lists_items_best_first() -> None:
    ranked = RankedItems("v3", np.array([9, 4], np.int64), np.array([0.75, 0.5], np.float32), True)
    body = orjson.loads(render(request(1, [4, 9]), ranked, {"queue": 0.12345, "total": 2.0}))
    assert body == {
        "request_id": "r1", "user_id": 101, "model": "m", "model_version": "v3",
        "items": [{"item_id": 9, "score": 0.75}, {"item_id": 4, "score": 0.5}],
        "degraded": True, "timings_ms": {"queue": 0.123, "total": 2.0},
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        b'{"user_id": 3, "model": "m", "candidates": [4], "context": {"device": "\\ud800"}}',
        b'{"user_id": 3, "model": "m", "candidates": [4], "context": {"\\udfff": "x"}}',
        b'{"user_id": 3, "model": "m\\ud800", "candidates": [4]}',
        b'{"user_id": 3, "model": "m", "candidates": [4], "request_id": "\\ud83d"}',
        b'{"user_id": 3, "model": "m", "candidates": [4], "context": {"d": "\xed\xa0\x80"}}',
    ],
    ids=["context-value", "context-key", "model", "request_id", "utf8-encoded-surrogate"],
)
def test_json_refuses_strings_that_are_not_unicode_text(body: bytes) -> None:
    with pytest.raises(PoisonMessageError, match="malformed JSON") as info:
        parse_json(body, now_ms=0)
    assert info.value.kind == "decode"


def test_json_accepts_escaped_surrogate_pairs() -> None:
    body = b'{"user_id": 3, "model": "m", "candidates": [4], "context": {"d": "\\ud83d\\ude00"}}'
    assert parse_json(body, now_ms=0).context == {"d": "\U0001f600"}


def test_json_integers_past_64_bits_are_out_of_range_not_floats() -> None:
    with pytest.raises(PoisonMessageError, match="user_id is out of range"):
        parse_json(b'{"user_id": 18446744073709551616, "model": "m", "candidates": [4]}', 0)
    with pytest.raises(PoisonMessageError, match="candidate id is out of range"):
        parse_json(b'{"user_id": 1, "model": "m", "candidates": [9223372036854775808]}', 0)


def test_generated_request_ids_are_distinct_32_hex_digits() -> None:
    ids = {parse_json(b'{"user_id": 3, "model": "m", "candidates": [4]}', 0).request_id
           for _ in range(1_000)}  # fmt: skip
    assert len(ids) == 1_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_avro_requests_are_held_to_the_same_bounds() -> None:
    encoder, decoder = JobEncoder(StaticRegistry()), JobDecoder(StaticRegistry())
    context = {f"k{i}": "v" for i in range(BOUNDS.context_keys + 1)}
    wide = ScoringJob("a-1", 42, "m", 123, context, np.array([3], np.int64), 7)
    with pytest.raises(PoisonMessageError, match="context has more than 64 keys"):
        parse_avro(decoder, encoder.encode(wide))
    fits = ScoringJob("a-2", 42, "m", 123, dict(list(context.items())[:64]), np.array([3]), 7)
    assert len(check_bounds(parse_avro(decoder, encoder.encode(fits))).context) == 64
