"""The hash spec: fixed test vectors, an independent pure-Python implementation, vectorization."""

from __future__ import annotations

import numpy as np
import pytest

from scoring import hashing as h

MASK = (1 << 64) - 1


# An implementation written from the spec text alone, sharing no code with scoring.
def py_fnv(data: bytes) -> int:
    x = 0xCBF29CE484222325
    for b in data:
        x = ((x ^ b) * 0x100000001B3) % (1 << 64)
    return x


def py_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % (1 << 64)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % (1 << 64)
    return z ^ (z >> 31)


def py_str(s: str) -> int:
    return py_fnv(s.encode("utf-8")) or 1


def py_int(x: int) -> int:
    return py_mix((x % (1 << 64) + 0x9E3779B97F4A7C15) % (1 << 64)) or 1


def py_key(field: str, v: int) -> int:
    return py_mix(v ^ py_fnv(field.encode("utf-8")))


def py_cross(a: int, b: int) -> int:
    return py_mix(a ^ 0xD6E8FEB86659FD93) ^ py_mix(b ^ 0xA0761D6478BD642F)


STRINGS = ["", "a", "foobar", "ios", "héllo wörld", "日本語", "segment-17", "x" * 300]

# Published FNV-1a 64 vectors and the first splitmix64 output for seed 0.
KNOWN_VECTORS = [
    ("", 0xCBF29CE484222325),
    ("a", 0xAF63DC4C8601EC8C),
    ("foobar", 0x85944171F73967E8),
]


@pytest.mark.parametrize(("text", "expected"), KNOWN_VECTORS)
def test_fnv_matches_published_vectors(text: str, expected: int) -> None:
    assert h.hash_string(text) == expected
    assert py_str(text) == expected


def test_int_hash_is_splitmix64() -> None:
    assert int(h.hash_ints(np.array([0], dtype=np.int64))[0]) == 0xE220A8397B1DCDAF


def test_fixed_vectors_for_keys_crosses_and_indices() -> None:
    # Frozen outputs: a change here breaks every trained model, so it must be deliberate.
    seg = h.feature_keys("user.segment", np.array([h.hash_string("segment-3")], dtype=np.uint64))
    item = h.feature_keys("item.id", h.hash_ints(np.array([42], dtype=np.int64)))
    assert int(seg[0]) == py_key("user.segment", py_str("segment-3"))
    assert int(item[0]) == py_key("item.id", py_int(42))
    cross = h.cross_keys(seg, item)
    assert int(cross[0]) == py_cross(int(seg[0]), int(item[0]))
    assert int(h.to_index(cross, 22)[0]) == py_cross(int(seg[0]), int(item[0])) >> 42
    assert (int(seg[0]), int(item[0]), int(cross[0])) == FROZEN


FROZEN = (0xFDD73CE2A25068CC, 0xD934208403E3CD18, 0xF094B0DBFB281268)


def test_documented_vectors() -> None:
    # The table in scoring/HASHING.md.
    assert h.hash_string("héllo") == 0xA35FF71F960240E0
    assert int(h.hash_ints(np.array([-1, 42], dtype=np.int64))[0]) == 0xE4D971771B652C20
    assert int(h.hash_ints(np.array([-1, 42], dtype=np.int64))[1]) == 0xBDD732262FEB6E95
    assert h.field_seed("user.segment") == 0x551D1BD4CF30C48D
    assert h.field_seed("item.id") == 0xCBB7996B5BEE9485
    cross = np.array([FROZEN[2]], dtype=np.uint64)
    assert int(h.to_index(cross, 22)[0]) == 3941676
    assert int(h.to_index(np.array([FROZEN[0]], dtype=np.uint64), 22)[0]) == 4158927


def test_frozen_vector_literals() -> None:
    assert py_str("ios") == 0x2BA2EA192BD6DA66
    assert py_int(1) == 0x910A2DEC89025CC1
    assert h.hash_string("ios") == 0x2BA2EA192BD6DA66
    assert int(h.hash_ints(np.array([1], dtype=np.int64))[0]) == 0x910A2DEC89025CC1


def test_hash_strings_matches_independent_implementation() -> None:
    got = h.hash_strings(STRINGS)
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == [py_str(s) for s in STRINGS]


def test_hash_strings_vectorized_equals_scalar() -> None:
    rng = np.random.default_rng(3)
    values = ["".join(chr(c) for c in rng.integers(32, 0x3000, size=n)) for n in range(40)]
    assert [int(v) for v in h.hash_strings(values)] == [h.hash_string(v) for v in values]


def test_hash_ints_matches_independent_implementation() -> None:
    xs = [0, 1, -1, 42, 2**63 - 1, -(2**63), 123456789012345]
    got = h.hash_ints(np.array(xs, dtype=np.int64))
    assert [int(v) for v in got] == [py_int(x) for x in xs]


def test_hash_optional_strings_maps_none_to_zero() -> None:
    got = h.hash_optional_strings(["a", None, "b"])
    assert [int(v) for v in got] == [py_str("a"), 0, py_str("b")]


def test_cross_keys_broadcast_and_order_matters() -> None:
    a = h.feature_keys("user.segment", h.hash_strings(["s1", "s2"]))
    b = h.feature_keys("item.category", h.hash_strings(["c1", "c2", "c3"]))
    grid = h.cross_keys(a[:, None], b[None, :])
    assert grid.shape == (2, 3)
    assert int(grid[1, 2]) == py_cross(int(a[1]), int(b[2]))
    assert int(h.cross_keys(b[:1], a[:1])[0]) != int(grid[0, 0])


@pytest.mark.parametrize("bits", [7, 31])
def test_to_index_rejects_bits_out_of_range(bits: int) -> None:
    with pytest.raises(ValueError, match="hash_bits"):
        h.to_index(np.array([1], dtype=np.uint64), bits)


def test_to_index_takes_top_bits() -> None:
    keys = np.array([MASK, 1 << 63, 12345], dtype=np.uint64)
    assert h.to_index(keys, 8).tolist() == [255, 128, 0]
