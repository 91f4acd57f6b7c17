"""Scalar Avro primitives in pure Python for the few header fields of each message.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; writers return ``bytes``.

Invariants: readers raise only :class:`DecodeError` (truncation, negative or out-of-buffer
lengths, varints over 10 bytes or 64 bits, invalid UTF-8), never IndexError; writers produce
exactly the bytes fastavro writes for the same value.
"""

from __future__ import annotations

from schemas.errors import DecodeError, EncodeError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """One zig-zag varint."""
    try:
        byte = buf[pos]
        if byte < 0x80:  # most header longs are one byte
            return (byte >> 1) ^ -(byte & 1), pos + 1
        unsigned, shift = byte & 0x7F, 7
        while True:
            pos += 1
            byte = buf[pos]
            unsigned |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 63:
                raise DecodeError("varint longer than 10 bytes")
    except IndexError:
        raise DecodeError("truncated varint") from None
    if unsigned >> 64:
        raise DecodeError("varint overflows 64 bits")
    return (unsigned >> 1) ^ -(unsigned & 1), pos + 1


def read_int(buf: bytes, pos: int) -> tuple[int, int]:
    """One zig-zag varint that must fit an Avro ``int``."""
    value, pos = read_long(buf, pos)
    if not INT32_MIN <= value <= INT32_MAX:
        raise DecodeError(f"int value {value} out of 32-bit range")
    return value, pos


def read_string(buf: bytes, pos: int) -> tuple[str, int]:
    """A length-prefixed UTF-8 string."""
    try:
        size = buf[pos]
    except IndexError:
        raise DecodeError("truncated string length") from None
    if size < 0x80 and not size & 1:  # short non-negative length: skip the generic varint read
        size >>= 1
        pos += 1
    else:
        size, pos = read_long(buf, pos)
    end = pos + size
    if size < 0 or end > len(buf):
        raise DecodeError(f"string length {size} exceeds the {len(buf) - pos} bytes left")
    try:
        return buf[pos:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string is not UTF-8: {exc.reason}") from None


def read_string_map(buf: bytes, pos: int) -> tuple[dict[str, str], int]:
    """A ``map<string, string>``: blocks of entries, ended by a zero count."""
    result: dict[str, str] = {}
    while True:
        count, pos = read_long(buf, pos)
        if count == 0:
            return result, pos
        if count < 0:  # a negative count is followed by the block's byte size
            count = -count
            size, pos = read_long(buf, pos)
            if size < 0 or pos + size > len(buf):
                raise DecodeError(f"map block size {size} exceeds the buffer")
        if count > len(buf) - pos:  # each entry takes at least two bytes
            raise DecodeError(f"map block count {count} exceeds the buffer")
        for _ in range(count):
            key, pos = read_string(buf, pos)
            result[key], pos = read_string(buf, pos)


def write_long(value: int) -> bytes:
    """One zig-zag varint."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise EncodeError(f"long value {value} out of 64-bit range")
    unsigned = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    if unsigned < 0x80:
        return bytes((unsigned,))
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def write_int(value: int) -> bytes:
    """One zig-zag varint for an Avro ``int``."""
    if not INT32_MIN <= value <= INT32_MAX:
        raise EncodeError(f"int value {value} out of 32-bit range")
    return write_long(value)


def write_string(value: str) -> bytes:
    """A length-prefixed UTF-8 string."""
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"string is not encodable as UTF-8: {exc.reason}") from None
    return write_long(len(data)) + data


def write_string_map(value: dict[str, str]) -> bytes:
    """A ``map<string, string>`` as one block (what fastavro writes)."""
    if not value:
        return b"\x00"
    parts = [write_long(len(value))]
    for key, item in value.items():
        parts += (write_string(key), write_string(item))
    parts.append(b"\x00")
    return b"".join(parts)
