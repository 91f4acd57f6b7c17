"""ScoringJob serde: encoder bytes equal fastavro's, the fast decoder agrees with fastavro."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    DecodeError,
    EncodeError,
    JobDecoder,
    JobEncoder,
    ScoringJob,
    StaticRegistry,
    UnknownSchemaIdError,
)
from tests.schemas.schemas_testlib import (
    assert_job_equals_record,
    fastavro_frame,
    fastavro_read,
    hand_written_job,
    job_record,
    plain,
    scoring_jobs,
)

SCHEMA = plain("ScoringJob")
REGISTRY = StaticRegistry()


def job(candidates: object, **changes: object) -> ScoringJob:
    fields: dict[str, object] = {
        "request_id": "req-1",
        "user_id": 42,
        "model": "ctr",
        "created_at_ms": 1_790_000_000_000,
        "context": {"device": "ios"},
        "candidates": candidates,
        "top_k": 3,
    }
    fields.update(changes)
    return ScoringJob(**fields)  # type: ignore[arg-type]


@given(scoring_jobs())
def test_encoder_matches_fastavro_byte_for_byte(value: ScoringJob) -> None:
    assert JobEncoder(REGISTRY).encode(value) == fastavro_frame(1, SCHEMA, job_record(value))


@settings(max_examples=40)
@given(st.lists(scoring_jobs(), max_size=8))
def test_a_candidate_cache_changes_no_byte(jobs: list[ScoringJob]) -> None:
    plain_encoder, cached = JobEncoder(REGISTRY), JobEncoder(REGISTRY, candidate_cache=2)
    for value in [*jobs, *reversed(jobs), *jobs]:  # hits, misses and evictions
        assert cached.encode(value) == plain_encoder.encode(value)


def test_the_candidate_cache_is_keyed_by_content_and_bounded() -> None:
    encoder = JobEncoder(REGISTRY, candidate_cache=2)
    first = encoder.encode(job(np.array([5, 6, 7])))
    again = np.array([5, 6, 7])  # equal content, another array: a hit gives the same bytes
    assert encoder.encode(job(again)) == first
    for other in ([1], [2], [3]):
        encoder.encode(job(other))
    assert len(encoder._blocks) == 2
    assert encoder.encode(job([5, 6, 7])) == first
    with pytest.raises(ValueError, match="candidate_cache"):
        JobEncoder(REGISTRY, candidate_cache=-1)


@settings(max_examples=60)
@given(st.lists(scoring_jobs(), max_size=8))
def test_batch_decode_agrees_with_fastavro(jobs: list[ScoringJob]) -> None:
    payloads = [fastavro_frame(1, SCHEMA, job_record(j)) for j in jobs]
    decoded = JobDecoder(REGISTRY).decode_batch(payloads)
    assert decoded.errors == []
    assert decoded.indices.tolist() == list(range(len(jobs)))
    for i, payload in enumerate(payloads):
        record = fastavro_read(payload, SCHEMA, SCHEMA)
        assert record is not None
        assert_job_equals_record(decoded.jobs.row(i), record)


@given(
    scoring_jobs(),
    st.lists(st.integers(0, 300), max_size=5),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_multi_block_arrays_and_maps_agree_with_fastavro(
    value: ScoringJob, splits: list[int], sized: list[bool]
) -> None:
    payload = hand_written_job(value, splits, sized)
    record = fastavro_read(payload, SCHEMA, SCHEMA)
    assert record is not None
    decoded = JobDecoder(REGISTRY).decode_batch([payload])
    assert decoded.errors == []
    assert_job_equals_record(decoded.jobs.row(0), record)
    assert_job_equals_record(value, record)


def test_columns_layout() -> None:
    jobs = [job([5, 6, 7]), job([], request_id="b", top_k=1), job([-1], request_id="c")]
    decoded = JobDecoder(REGISTRY).decode_batch([JobEncoder(REGISTRY).encode(j) for j in jobs])
    columns = decoded.jobs
    assert len(columns) == 3
    assert columns.request_ids == ["req-1", "b", "c"]
    assert columns.user_ids.dtype == np.int64
    assert columns.user_ids.tolist() == [42, 42, 42]
    assert columns.created_at_ms.tolist() == [1_790_000_000_000] * 3
    assert columns.candidates.dtype == np.int64
    assert columns.candidates.tolist() == [5, 6, 7, -1]
    assert columns.row_splits.tolist() == [0, 3, 3, 4]
    assert columns.top_k.dtype == np.int32
    assert columns.top_k.tolist() == [3, 1, 3]
    assert columns.contexts == [{"device": "ios"}] * 3


def test_empty_batch() -> None:
    decoded = JobDecoder(REGISTRY).decode_batch([])
    assert len(decoded.jobs) == 0
    assert decoded.jobs.row_splits.tolist() == [0]
    assert decoded.indices.tolist() == []


def test_bad_payloads_land_in_errors_in_input_order() -> None:
    good = JobEncoder(REGISTRY).encode(job([1, 2, 3]))
    payloads = [
        None,
        good,
        b"",
        b"\x01" + good[1:],
        good[:3],
        good[:-1],
        good + b"\x00",
        b"\x00\x00\x00\x00\x63" + good[5:],
        good,
    ]
    decoded = JobDecoder(REGISTRY).decode_batch(payloads)
    assert decoded.indices.tolist() == [1, 8]
    positions = [position for position, _ in decoded.errors]
    assert positions == [0, 2, 3, 4, 5, 6, 7]
    kinds = [type(error) for _, error in decoded.errors]
    assert kinds == [DecodeError] * 6 + [UnknownSchemaIdError]
    reasons = [getattr(error, "reason", "") for _, error in decoded.errors]
    assert "null" in reasons[0]
    assert "magic" in reasons[2]
    assert "trailing" in reasons[5]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x02a", "truncated"),  # request_id "a", then nothing
        (b"\x10abc", "exceeds"),  # string longer than the buffer
        (b"\x03abc", "exceeds"),  # negative string length
        (b"\x02\xff", "UTF-8"),
        (b"\x00" + b"\xff" * 11 + b"\x00", "longer than 10"),
        (b"\x00\x02\x00\x02\x00\x02\x80", "truncated"),
    ],
)
def test_malformed_headers(body: bytes, reason: str) -> None:
    decoded = JobDecoder(REGISTRY).decode_batch([b"\x00\x00\x00\x00\x01" + body])
    [(position, error)] = decoded.errors
    assert position == 0
    assert isinstance(error, DecodeError)
    assert reason in error.reason


HEAD = b"\x00\x00\x00\x00\x01" + b"\x02r\x02\x02m\x02\x00"  # id 1, "r", 1, "m", 1, {}


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"\x06\x02\x04\x00", "truncated candidates"),  # 3 items, no end-of-array block
        (b"\x04\x02\x04\x00", "top_k"),  # [1, 2], end of array, no top_k
        (b"\x04\x02\x04", "truncated candidates"),  # no end-of-array block
        (b"\x0a\x02\x04\x00\x06", "exceeds"),  # block of 5 items, 4 varints follow
        (b"\x03\x06\x02\x04\x00\x06", "byte size"),  # size 3, items take 2 bytes
        (b"\x03\x04\x02\x00\x06", "exceeds"),  # sized block of 2, too few varints
        (b"\x04\x02" + b"\xff" * 11 + b"\x00\x00\x06", "10 bytes"),
        (b"\x00\x80\x80\x80\x80\x10", "32-bit"),  # top_k = 2**31
        (b"\x00\x06\x00", "trailing"),
        (b"\x00\x06\x80", "truncated varint"),
        (b"", "truncated before candidates"),
    ],
)
def test_malformed_candidate_regions(tail: bytes, reason: str) -> None:
    decoded = JobDecoder(REGISTRY).decode_batch([HEAD + tail])
    [(position, error)] = decoded.errors
    assert position == 0
    assert isinstance(error, DecodeError)
    assert reason in error.reason
    assert len(decoded.jobs) == 0


def test_sized_blocks_and_empty_blocks_are_decoded() -> None:
    # count -2, size 2, items 1 2; count 1, item -1; end; top_k 3
    payload = HEAD + b"\x03\x04\x02\x04\x02\x01\x00\x06"
    decoded = JobDecoder(REGISTRY).decode_batch([payload])
    assert decoded.errors == []
    assert decoded.jobs.candidates.tolist() == [1, 2, -1]
    assert decoded.jobs.top_k.tolist() == [3]
    assert fastavro_read(payload, SCHEMA, SCHEMA) == {
        "request_id": "r",
        "user_id": 1,
        "model": "m",
        "created_at": 1,
        "context": {},
        "candidates": [1, 2, -1],
        "top_k": 3,
    }


def test_one_bad_message_does_not_disturb_its_neighbours() -> None:
    encoder = JobEncoder(REGISTRY)
    first, second = encoder.encode(job([1, 2])), encoder.encode(job([3, 4], request_id="x"))
    bad = HEAD + b"\x06\x02\x04\x00\x06"  # claims three items, has two, then 0 and top_k
    decoded = JobDecoder(REGISTRY).decode_batch([first, bad, second])
    assert decoded.indices.tolist() == [0, 2]
    assert decoded.jobs.candidates.tolist() == [1, 2, 3, 4]
    assert decoded.jobs.request_ids == ["req-1", "x"]


def test_encoder_accepts_sequences_and_rejects_non_integers() -> None:
    encoder = JobEncoder(REGISTRY)
    assert encoder.encode(job([1, 2])) == encoder.encode(job(np.array([1, 2], np.uint8)))
    for bad in ([1.5], [[1]], [2**64]):
        with pytest.raises(EncodeError):
            encoder.encode(job(bad))
    with pytest.raises(EncodeError):
        encoder.encode(job([1], top_k=2**31))
    with pytest.raises(EncodeError):
        encoder.encode(job([1], request_id="\ud800"))


def test_encoder_needs_a_known_schema_id() -> None:
    with pytest.raises(UnknownSchemaIdError):
        JobEncoder(REGISTRY, schema_id=9)
