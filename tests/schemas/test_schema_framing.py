"""Confluent wire framing: magic byte 0, 4-byte big-endian schema id, body."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import DecodeError, EncodeError
from schemas.framing import HEADER_SIZE, frame, frame_header, read_header


def test_header_layout() -> None:
    assert frame_header(1) == b"\x00\x00\x00\x00\x01"
    assert frame_header(0x01020304) == b"\x00\x01\x02\x03\x04"
    assert frame(2, b"body") == b"\x00\x00\x00\x00\x02body"


@given(st.integers(0, 2**31 - 1), st.binary(max_size=20))
def test_read_header_inverts_frame(schema_id: int, body: bytes) -> None:
    payload = frame(schema_id, body)
    assert read_header(payload) == schema_id
    assert payload[HEADER_SIZE:] == body


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "null"),
        (b"", "shorter"),
        (b"\x00\x00\x00\x01", "shorter"),
        (b"\x01\x00\x00\x00\x01", "magic byte is 1"),
        (b"\xff\x00\x00\x00\x01\x02", "magic byte is 255"),
    ],
)
def test_bad_frames(payload: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        read_header(payload)
    assert reason in info.value.reason


@pytest.mark.parametrize("schema_id", [-1, 2**31])
def test_ids_outside_int32_cannot_be_framed(schema_id: int) -> None:
    with pytest.raises(EncodeError):
        frame_header(schema_id)
