"""The cross-language feature hash: value hashes, feature keys, cross keys and table indices.

A trainer in any language must reproduce these functions bit for bit; scoring/HASHING.md holds the
same specification with test vectors. All arithmetic is on unsigned 64-bit integers modulo 2**64.

    FNV-1a 64      h = 0xcbf29ce484222325; for each byte b: h = (h XOR b) * 0x100000001b3
    mix64(z)       z = (z XOR (z >> 30)) * 0xbf58476d1ce4e5b9
                   z = (z XOR (z >> 27)) * 0x94d049bb133111eb
                   return z XOR (z >> 31)                     (the splitmix64 finalizer)

    string value   v = FNV-1a 64 over the UTF-8 bytes of the string (no terminator, no BOM)
    int64 value    v = mix64((x mod 2**64) + 0x9e3779b97f4a7c15)  (two's complement; = splitmix64)
    zero rule      a value hash of 0 is replaced by 1: 0 is reserved for "missing"

    field seed     seed(F) = FNV-1a 64 over UTF-8 of the full field name, e.g. "item.category"
    feature key    key(F, v) = mix64(v XOR seed(F))
    cross key      cross(ka, kb) = mix64(ka XOR 0xd6e8feb86659fd93)
                                   XOR mix64(kb XOR 0xa0761d6478bd642f)
                   ka is the key of the cross's first field, kb of its second (order matters)
    index          index(key, bits) = key >> (64 - bits)   (the top ``bits`` bits, 8 <= bits <= 30)

Invariants: every function here is pure and vectorized over numpy arrays (no Python loop over
elements except the per-byte-position loop of ``hash_strings``); results never depend on platform
byte order. Because the top bits of an XOR are the XOR of the top bits, the kernel precomputes
``index(mix64(ka ^ L))`` per job and ``index(mix64(kb ^ R))`` per item and combines them with one
XOR per candidate; ``to_index(cross_keys(a, b))`` gives the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

FNV_OFFSET: Final = 0xCBF29CE484222325
FNV_PRIME: Final = 0x100000001B3
MIX_C1: Final = 0xBF58476D1CE4E5B9
MIX_C2: Final = 0x94D049BB133111EB
GOLDEN_GAMMA: Final = 0x9E3779B97F4A7C15
CROSS_LEFT: Final = 0xD6E8FEB86659FD93
CROSS_RIGHT: Final = 0xA0761D6478BD642F
MIN_BITS: Final = 8
MAX_BITS: Final = 30

U64 = NDArray[np.uint64]


def _copy_u64(values: U64) -> U64:
    """A fresh uint64 ndarray (never a numpy scalar, whose arithmetic warns on wrap-around)."""
    return np.array(values, dtype=np.uint64, copy=True)


def mix64(values: U64) -> U64:
    """The splitmix64 finalizer, applied to a copy of ``values``."""
    return mix64_inplace(_copy_u64(values))


def mix64_inplace(z: U64) -> U64:
    """The splitmix64 finalizer, overwriting ``z`` (saves the allocations on hot paths)."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(MIX_C1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(MIX_C2)
    z ^= z >> np.uint64(31)
    return z


def _fnv1a_bytes(encoded: list[bytes]) -> U64:
    """FNV-1a 64 of each byte string, one numpy pass per byte position (longest strings first)."""
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    order = np.argsort(-lengths, kind="stable")
    flat = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    starts = (np.cumsum(lengths) - lengths)[order]
    sorted_lengths = lengths[order]
    h = np.full(len(encoded), FNV_OFFSET, dtype=np.uint64)
    max_len = int(sorted_lengths[0]) if len(encoded) else 0
    # active[k] = how many strings (a prefix, thanks to the sort) still have a byte at position k
    active = np.searchsorted(-sorted_lengths, -np.arange(max_len), side="left")
    for k in range(max_len):
        live = h[: active[k]]
        live ^= flat[starts[: active[k]] + k].astype(np.uint64)
        live *= np.uint64(FNV_PRIME)
    out = np.empty_like(h)
    out[order] = h
    return out


def fnv1a64(values: Sequence[str]) -> U64:
    """Raw FNV-1a 64 of the UTF-8 bytes of each string (no zero rule; used for field seeds)."""
    return _fnv1a_bytes([v.encode("utf-8") for v in values])


def hash_strings(values: Sequence[str]) -> U64:
    """Value hashes of strings: FNV-1a 64 over UTF-8, with 0 replaced by 1."""
    h = fnv1a64(values)
    return np.maximum(h, np.uint64(1), out=h)


def hash_optional_strings(values: Sequence[str | None]) -> U64:
    """Value hashes of strings where ``None`` (missing) hashes to 0."""
    present = [v for v in values if v is not None]
    out = np.zeros(len(values), dtype=np.uint64)
    if present:
        mask = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        out[mask] = hash_strings(present)
    return out


def hash_string(value: str) -> int:
    """Scalar convenience: the value hash of one string (same function as ``hash_strings``)."""
    return int(hash_strings([value])[0])


def hash_ints(values: NDArray[np.int64]) -> U64:
    """Value hashes of 64-bit integers: splitmix64 of the two's-complement bits, 0 replaced by 1."""
    z = np.array(values, dtype=np.int64, copy=True).view(np.uint64)
    z += np.uint64(GOLDEN_GAMMA)
    mix64_inplace(z)
    return np.maximum(z, np.uint64(1), out=z)


@functools.lru_cache(maxsize=1024)
def field_seed(field: str) -> int:
    """Seed of a full field name such as ``"item.category"`` (memoized: names are few)."""
    return int(fnv1a64([field])[0])


def feature_keys(field: str, value_hashes: U64) -> U64:
    """Feature keys ``mix64(v ^ seed(field))`` of value hashes of one field."""
    z = _copy_u64(value_hashes)
    z ^= np.uint64(field_seed(field))
    return mix64_inplace(z)


def cross_keys(a: U64, b: U64) -> U64:
    """Cross keys of feature keys ``a`` (first field) and ``b`` (second field); broadcasts."""
    left = _copy_u64(a)
    left ^= np.uint64(CROSS_LEFT)
    right = _copy_u64(b)
    right ^= np.uint64(CROSS_RIGHT)
    return np.bitwise_xor(mix64_inplace(left), mix64_inplace(right))


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is a supported table size exponent, else raise ``ValueError``."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"hash_bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return bits


def to_index(keys: U64, bits: int) -> NDArray[np.int64]:
    """Weight-table index of keys: their top ``bits`` bits."""
    shifted = np.asarray(keys, dtype=np.uint64) >> np.uint64(64 - check_bits(bits))
    return shifted.astype(np.int64)
