"""Shared helpers for the schemas tests: hypothesis strategies and fastavro reference coding.

The reference side always goes through fastavro with logical types stripped, so expectations are
computed independently of the code under test (only the bundled schema text is shared).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import Any

import fastavro
import numpy as np
from hypothesis import strategies as st

from schemas import ScoringJob, load_bundled
from schemas.parsed import strip_logical_types

INT64_EDGES = [0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
INT32_EDGES = [0, 1, -1, 50, 2**31 - 1, -(2**31)]

int64s = st.one_of(st.sampled_from(INT64_EDGES), st.integers(-(2**63), 2**63 - 1))
int32s = st.one_of(st.sampled_from(INT32_EDGES), st.integers(-(2**31), 2**31 - 1))
texts = st.text(max_size=12)  # hypothesis text() never yields lone surrogates
contexts = st.dictionaries(texts, texts, max_size=4)
candidate_lists = st.one_of(
    st.lists(int64s, max_size=40),
    st.lists(st.integers(0, 10_000_000), max_size=300),
)


@st.composite
def scoring_jobs(draw: st.DrawFn) -> ScoringJob:
    """Random jobs covering edge values, empty arrays and contexts, and unicode."""
    return ScoringJob(
        request_id=draw(texts),
        user_id=draw(int64s),
        model=draw(texts),
        created_at_ms=draw(int64s),
        context=draw(contexts),
        candidates=np.array(draw(candidate_lists), np.int64),
        top_k=draw(int32s),
    )


def frame_header(schema_id: int) -> bytes:
    """Confluent header, written independently of the code under test."""
    return b"\x00" + schema_id.to_bytes(4, "big")


def write_long(value: int) -> bytes:
    """Zig-zag varint, written independently of the code under test."""
    unsigned = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    out = bytearray()
    while True:
        out.append((unsigned & 0x7F) | (0x80 if unsigned > 0x7F else 0))
        unsigned >>= 7
        if not unsigned:
            return bytes(out)


def write_string(value: str) -> bytes:
    data = value.encode()
    return write_long(len(data)) + data


def plain(name: str) -> Any:
    """A bundled schema parsed by fastavro without logical types."""
    return fastavro.parse_schema(strip_logical_types(load_bundled(name)), named_schemas={})


def job_record(job: ScoringJob) -> dict[str, Any]:
    """The fastavro record dict of ``job``."""
    return {
        "request_id": job.request_id,
        "user_id": job.user_id,
        "model": job.model,
        "created_at": job.created_at_ms,
        "context": job.context,
        "candidates": [int(c) for c in job.candidates],
        "top_k": job.top_k,
    }


def fastavro_frame(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    """``record`` written by fastavro, framed with ``schema_id``."""
    out = io.BytesIO()
    out.write(frame_header(schema_id))
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


class ExactReads(io.BytesIO):
    """Short reads raise (fastavro skips fields it does not return with unchecked reads)."""

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and 0 <= size != len(data):
            raise EOFError
        return data


def fastavro_read(payload: bytes, writer: Any, reader: Any) -> dict[str, Any] | None:
    """fastavro's reading of a framed payload, or None if it fails or leaves bytes unread."""
    if len(payload) < 5 or payload[0] != 0:
        return None
    body = ExactReads(payload[5:])
    try:
        record = fastavro.schemaless_reader(body, writer, reader)
    except Exception:
        return None
    if body.tell() != len(payload) - 5 or not isinstance(record, dict):
        return None
    return record


def hand_written_job(job: ScoringJob, splits: Sequence[int], sized: Sequence[bool]) -> bytes:
    """``job`` framed with id 1, its context and candidates split into several Avro blocks.

    ``splits`` are cut points into the candidates; block ``i`` is written with a negative count
    and a byte size when ``sized[i % len(sized)]``. The context is written one entry per block.
    """
    candidates = [int(c) for c in job.candidates]
    cuts = sorted({0, len(candidates), *(min(s, len(candidates)) for s in splits)})
    parts = [frame_header(1), write_string(job.request_id), write_long(job.user_id)]
    parts += [write_string(job.model), write_long(job.created_at_ms)]
    for key, value in job.context.items():
        parts += [write_long(1), write_string(key), write_string(value)]
    parts.append(b"\x00")
    for i, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        items = b"".join(write_long(c) for c in candidates[lo:hi])
        if sized and sized[i % len(sized)]:
            parts += [write_long(-(hi - lo)), write_long(len(items)), items]
        else:
            parts += [write_long(hi - lo), items]
    parts += [b"\x00", write_long(job.top_k)]
    return b"".join(parts)


def assert_job_equals_record(job: ScoringJob, record: dict[str, Any]) -> None:
    """``job`` (decoded by the code under test) equals fastavro's ``record``."""
    assert job.request_id == record["request_id"]
    assert job.user_id == record["user_id"]
    assert job.model == record["model"]
    assert job.created_at_ms == record["created_at"]
    assert job.context == record["context"]
    assert [int(c) for c in job.candidates] == list(record["candidates"])
    assert job.top_k == record["top_k"]
