"""Vectorized zig-zag varints agree with fastavro and the scalar primitives."""

from __future__ import annotations

import io

import fastavro
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import DecodeError, EncodeError
from schemas.primitives import read_int, read_long, read_string, write_int
from schemas.primitives import write_long as primitive_write_long
from schemas.varint import decode_zigzag, encode_zigzag
from tests.schemas.schemas_testlib import INT64_EDGES, int64s, write_long


def fastavro_longs(values: list[int]) -> bytes:
    out = io.BytesIO()
    for value in values:
        fastavro.schemaless_writer(out, "long", value)
    return out.getvalue()


def as_buffer(data: bytes) -> np.ndarray[tuple[int], np.dtype[np.uint8]]:
    return np.frombuffer(data, np.uint8)


@given(st.lists(int64s, max_size=60))
def test_encode_matches_fastavro(values: list[int]) -> None:
    assert encode_zigzag(np.array(values, np.int64)) == fastavro_longs(values)


@given(st.lists(int64s, max_size=60))
def test_decode_inverts_fastavro(values: list[int]) -> None:
    decoded = decode_zigzag(as_buffer(fastavro_longs(values)))
    assert decoded.values.tolist() == values
    assert len(decoded.bad) == 0


@given(st.lists(st.integers(-(2**27), 2**27 - 1), min_size=1, max_size=60))
def test_four_byte_values_take_the_narrow_path(values: list[int]) -> None:
    decoded = decode_zigzag(as_buffer(fastavro_longs(values)))
    assert decoded.values.dtype == np.int32
    assert decoded.values.tolist() == values


@given(st.lists(st.integers(-(2**27), 2**27 - 1), min_size=1, max_size=60))
def test_four_byte_values_encode_like_fastavro(values: list[int]) -> None:
    assert encode_zigzag(np.array(values, np.int64)) == fastavro_longs(values)


# Every 1..5-byte boundary, where the narrow (<= 4 bytes) encoder hands over to the wide one.
BOUNDARIES = [s * (2**b) + d for b in (6, 13, 20, 27) for s in (1, -1) for d in (-1, 0, 1)]


@pytest.mark.parametrize("value", BOUNDARIES)
def test_encode_at_length_boundaries(value: int) -> None:
    assert encode_zigzag(np.array([value], np.int64)) == fastavro_longs([value])
    assert encode_zigzag(np.array([0, value, 1], np.int64)) == fastavro_longs([0, value, 1])


@given(int64s)
def test_scalar_primitives_match_fastavro(value: int) -> None:
    data = fastavro_longs([value])
    assert primitive_write_long(value) == data
    assert read_long(data + b"tail", 0) == (value, len(data))


def test_ends_mark_each_last_byte() -> None:
    data = fastavro_longs([0, 64, -(2**63)])
    assert decode_zigzag(as_buffer(data)).ends.tolist() == [0, 2, 12]


def test_unterminated_tail_is_ignored() -> None:
    decoded = decode_zigzag(as_buffer(b"\x04\x80\x80"))
    assert decoded.values.tolist() == [2]


def test_empty_and_all_continuation_buffers() -> None:
    assert decode_zigzag(as_buffer(b"")).values.tolist() == []
    assert decode_zigzag(as_buffer(b"\xff" * 20)).values.tolist() == []


@pytest.mark.parametrize(
    "bad",
    [b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x02", b"\x80" * 14 + b"\x00"],
)
def test_over_long_or_overflowing_varints_are_flagged(bad: bytes) -> None:
    decoded = decode_zigzag(as_buffer(b"\x02" + bad + b"\x04"))
    assert decoded.bad.tolist() == [1]
    assert decoded.values[[0, 2]].tolist() == [1, 2]
    with pytest.raises(DecodeError, match="varint"):
        read_long(bad, 0)


def test_largest_ten_byte_varint_is_valid() -> None:
    data = b"\xff" * 9 + b"\x01"
    assert decode_zigzag(as_buffer(data)).values.tolist() == [-(2**63)]
    assert read_long(data, 0) == (-(2**63), 10)


def test_scalar_readers_report_truncation_and_bad_lengths() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        read_long(b"\x80", 0)
    with pytest.raises(DecodeError, match="exceeds"):
        read_string(b"\x08ab", 0)
    with pytest.raises(DecodeError, match="exceeds"):
        read_string(b"\x01ab", 0)  # length -1
    with pytest.raises(DecodeError, match="UTF-8"):
        read_string(b"\x02\xff", 0)
    with pytest.raises(DecodeError, match="32-bit"):
        read_int(primitive_write_long(2**31), 0)


def test_writers_refuse_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        primitive_write_long(2**63)
    with pytest.raises(EncodeError):
        write_int(-(2**31) - 1)


@pytest.mark.parametrize("value", INT64_EDGES)
def test_reference_writer_agrees_with_fastavro(value: int) -> None:
    assert write_long(value) == fastavro_longs([value])
