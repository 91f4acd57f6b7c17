"""Schema evolution: other writer schemas go through fastavro resolution to the bundled reader."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from schemas import (
    DecodeError,
    JobDecoder,
    JobEncoder,
    ParsedSchema,
    RegistryError,
    ScoringJob,
    StaticRegistry,
    UnknownSchemaIdError,
    load_bundled,
)
from tests.schemas.schemas_testlib import fastavro_frame, job_record

JOB = ScoringJob("r1", -5, "ctr", 1_790_000_000_123, {"k": "v"}, [10, -20, 2**40], top_k=7)


def extra_field() -> dict[str, Any]:
    schema = load_bundled("ScoringJob")
    schema["fields"].append({"name": "tenant", "type": "string", "default": "acme"})
    return schema


def without_top_k() -> dict[str, Any]:
    schema = load_bundled("ScoringJob")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "top_k"]
    return schema


def reordered_with_int_candidates() -> dict[str, Any]:
    schema = load_bundled("ScoringJob")
    fields = {f["name"]: f for f in schema["fields"]}
    fields["candidates"] = {"name": "candidates", "type": {"type": "array", "items": "int"}}
    schema["fields"] = [fields[n] for n in ("top_k", "candidates", "context", "created_at")] + [
        fields[n] for n in ("model", "user_id", "request_id")
    ]
    return schema


def registry() -> StaticRegistry:
    reg = StaticRegistry()
    reg.register(3, extra_field())
    reg.register(4, without_top_k())
    reg.register(5, reordered_with_int_candidates())
    incompatible = load_bundled("ScoringJob")
    incompatible["fields"][5] = {"name": "candidates", "type": {"type": "array", "items": "string"}}
    reg.register(6, incompatible)
    return reg


def decode_one(payload: bytes) -> ScoringJob:
    decoded = JobDecoder(registry()).decode_batch([payload])
    assert decoded.errors == []
    return decoded.jobs.row(0)


def test_writer_with_extra_field_is_resolved() -> None:
    reg = registry()
    payload = JobEncoder(reg, schema_id=3).encode(JOB)
    assert payload == fastavro_frame(3, reg.schema_for_id(3).plain, job_record(JOB))
    row = decode_one(payload)
    assert not JobDecoder(reg).is_fast(3)
    assert (row.request_id, row.user_id, row.created_at_ms, row.top_k) == (
        "r1",
        -5,
        1_790_000_000_123,
        7,
    )
    assert list(row.candidates) == [10, -20, 2**40]


def test_writer_without_top_k_gets_default_50() -> None:
    payload = JobEncoder(registry(), schema_id=4).encode(JOB)
    row = decode_one(payload)
    assert row.top_k == 50
    assert row.context == {"k": "v"}


def test_reordered_writer_with_int_items_is_promoted() -> None:
    small = ScoringJob("r2", 1, "m", 0, {}, [1, -2, 2**31 - 1], top_k=4)
    row = decode_one(JobEncoder(registry(), schema_id=5).encode(small))
    assert list(row.candidates) == [1, -2, 2**31 - 1]
    assert (row.request_id, row.top_k) == ("r2", 4)


def test_same_layout_under_another_id_takes_the_fast_path() -> None:
    reg = registry()
    reg.register(11, load_bundled("ScoringJob"))
    decoder = JobDecoder(reg)
    assert decoder.is_fast(11)
    assert not decoder.is_fast(4)
    row = decoder.decode_batch([JobEncoder(reg, 11).encode(JOB)]).jobs.row(0)
    assert row.top_k == 7


def test_mixed_batch_keeps_input_order() -> None:
    reg = registry()
    encoders = [JobEncoder(reg, i) for i in (1, 3, 4, 1, 5)]
    jobs = [
        ScoringJob(f"r{i}", i, "m", i, {}, list(range(i, i + 3)), top_k=i + 1) for i in range(5)
    ]
    payloads = [enc.encode(j) for enc, j in zip(encoders, jobs, strict=True)]
    payloads.insert(2, b"junk")
    decoded = JobDecoder(reg).decode_batch(payloads)
    assert decoded.indices.tolist() == [0, 1, 3, 4, 5]
    assert [position for position, _ in decoded.errors] == [2]
    assert decoded.jobs.request_ids == ["r0", "r1", "r2", "r3", "r4"]
    assert decoded.jobs.top_k.tolist() == [1, 2, 50, 4, 5]
    np.testing.assert_array_equal(decoded.jobs.candidates_of(3), [3, 4, 5])
    assert decoded.jobs.row_splits.tolist() == [0, 3, 6, 9, 12, 15]


def test_incompatible_writer_is_a_decode_error() -> None:
    reg = registry()
    record = job_record(JOB) | {"candidates": ["a", "b"]}
    payload = fastavro_frame(6, reg.schema_for_id(6).plain, record)
    decoded = JobDecoder(reg).decode_batch([payload])
    [(_, error)] = decoded.errors
    assert isinstance(error, DecodeError)
    assert error.schema_id == 6


def test_fallback_rejects_trailing_and_truncated_bodies() -> None:
    payload = JobEncoder(registry(), schema_id=3).encode(JOB)
    decoded = JobDecoder(registry()).decode_batch([payload + b"\x00", payload[:-2]])
    assert [type(e) for _, e in decoded.errors] == [DecodeError, DecodeError]
    first = decoded.errors[0][1]
    assert isinstance(first, DecodeError)
    assert "trailing" in first.reason


def test_fallback_range_checks_top_k() -> None:
    payload = JobEncoder(registry(), schema_id=3).encode(JOB)
    assert payload.endswith(b"\x0e\x08acme")  # top_k 7, tenant "acme"
    too_big = payload[: -len(b"\x0e\x08acme")] + b"\x80\x80\x80\x80\x10\x08acme"
    decoded = JobDecoder(registry()).decode_batch([too_big])
    [(_, error)] = decoded.errors
    assert isinstance(error, DecodeError)
    assert "32-bit" in error.reason


class FlakyRegistry:
    """Knows id 1; every other id fails like an unreachable registry."""

    def __init__(self) -> None:
        self.inner = StaticRegistry()

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        if schema_id == 1:
            return self.inner.schema_for_id(1)
        raise RegistryError("connection refused", url="http://registry")

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        return self.inner.id_for(subject, schema)


def test_unreachable_registry_propagates_instead_of_poisoning_messages() -> None:
    payload = JobEncoder(registry(), schema_id=3).encode(JOB)
    with pytest.raises(RegistryError):
        JobDecoder(FlakyRegistry()).decode_batch([payload])


def test_unknown_id_is_reported_per_message() -> None:
    payload = JobEncoder(registry(), schema_id=3).encode(JOB)
    decoded = JobDecoder(StaticRegistry()).decode_batch([payload])
    [(_, error)] = decoded.errors
    assert isinstance(error, UnknownSchemaIdError)
    assert error.schema_id == 3


class CountingRegistry(StaticRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[int] = []

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        self.lookups.append(schema_id)
        return super().schema_for_id(schema_id)


def test_registry_is_asked_once_per_id_and_once_per_unknown_id_per_batch() -> None:
    good = JobEncoder(StaticRegistry()).encode(JOB)
    unknown = b"\x00\x00\x00\x00\x09" + good[5:]
    reg = CountingRegistry()
    decoder = JobDecoder(reg)
    decoded = decoder.decode_batch([good, unknown, good, unknown])
    assert [type(e) for _, e in decoded.errors] == [UnknownSchemaIdError] * 2
    assert reg.lookups == [1, 9]
    decoder.decode_batch([unknown, good])
    assert reg.lookups == [1, 9, 9]  # unknown ids are asked again in the next batch
