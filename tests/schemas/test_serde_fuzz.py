"""Fuzzing: mutated, truncated and extended messages never escape decode_batch.

Differential check against fastavro (with the same trailing-bytes rule): whenever the decoder
accepts a payload, fastavro reads the same values. The decoder is allowed to be stricter in
exactly two documented ways: sized array blocks whose byte size disagrees with their items, and
varints longer than 10 bytes or overflowing 64 bits (fastavro silently wraps those).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import JobDecoder, JobEncoder, ScoringJob, StaticRegistry, load_bundled
from tests.schemas.schemas_testlib import (
    assert_job_equals_record,
    fastavro_read,
    hand_written_job,
    plain,
    scoring_jobs,
)

SCHEMA = plain("ScoringJob")
REGISTRY = StaticRegistry()
EVOLVED = load_bundled("ScoringJob")
EVOLVED["fields"].append({"name": "tenant", "type": "string", "default": ""})
REGISTRY.register(3, EVOLVED)
STRICTER = ("byte size", "64 bits", "longer than 10 bytes")

mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete"]), st.integers(0, 10**6), st.integers(0, 255)
)


def mutate(payload: bytes, edits: list[tuple[str, int, int]], cut: int | None) -> bytes:
    data = bytearray(payload)
    for kind, where, value in edits:
        if not data:
            break
        i = where % len(data)
        if kind == "flip":
            data[i] ^= 1 << (value % 8)
        elif kind == "set":
            data[i] = value
        elif kind == "insert":
            data.insert(i, value)
        else:
            del data[i]
    return bytes(data if cut is None else data[: cut % (len(data) + 1)])


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    job: ScoringJob = draw(scoring_jobs())
    form = draw(st.sampled_from(["fast", "blocks", "evolved"]))
    if form == "fast":
        payload = JobEncoder(REGISTRY).encode(job)
    elif form == "blocks":
        splits = draw(st.lists(st.integers(0, 50), max_size=3))
        payload = hand_written_job(job, splits, draw(st.lists(st.booleans(), min_size=1)))
    else:
        payload = JobEncoder(REGISTRY, 3).encode(job)
    edits = draw(st.lists(mutation, max_size=4))
    return mutate(payload, edits, draw(st.none() | st.integers(0, 10**6)))


@settings(max_examples=400, deadline=None)
@given(st.lists(payloads(), min_size=1, max_size=6))
def test_every_input_is_decoded_or_reported_never_raised(batch: list[bytes]) -> None:
    decoded = JobDecoder(REGISTRY).decode_batch(batch)
    failed = [position for position, _ in decoded.errors]
    assert sorted(failed + decoded.indices.tolist()) == list(range(len(batch)))
    assert failed == sorted(failed)
    assert len(decoded.jobs) == len(decoded.indices)
    assert decoded.jobs.row_splits[-1] == len(decoded.jobs.candidates)
    for _, error in decoded.errors:
        assert "internal error" not in str(error), error
    for row, position in enumerate(decoded.indices.tolist()):
        payload = batch[position]
        writer = REGISTRY.schema_for_id(int.from_bytes(payload[1:5], "big")).plain
        record = fastavro_read(payload, writer, SCHEMA)
        assert record is not None, "decoder accepted what fastavro rejects"
        assert_job_equals_record(decoded.jobs.row(row), record)


@settings(max_examples=300, deadline=None)
@given(payloads())
def test_rejections_match_fastavro_except_documented_strictness(payload: bytes) -> None:
    decoded = JobDecoder(REGISTRY).decode_batch([payload])
    if not decoded.errors or len(payload) < 5 or payload[0] != 0:
        return
    schema_id = int.from_bytes(payload[1:5], "big")
    if schema_id not in (1, 3):
        return
    record = fastavro_read(payload, REGISTRY.schema_for_id(schema_id).plain, SCHEMA)
    if record is None:
        return
    [(_, error)] = decoded.errors
    reason = str(error)
    if "32-bit" in reason:  # fastavro does not range-check ints it reads
        assert not -(2**31) <= record["top_k"] < 2**31
        return
    assert any(s in reason for s in STRICTER), (reason, record)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_after_a_valid_header(body: bytes) -> None:
    payload = b"\x00\x00\x00\x00\x01" + body
    decoded = JobDecoder(REGISTRY).decode_batch([payload, payload])
    assert len(decoded.errors) + len(decoded.indices) == 2
    if len(decoded.indices):
        assert decoded.jobs.candidates.dtype == np.int64
