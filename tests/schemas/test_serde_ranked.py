"""RankedList serde: the vectorized encoder writes fastavro's bytes; the decoder reads them back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from schemas import (
    DecodeError,
    EncodeError,
    RankedListDecoder,
    RankedListEncoder,
    StaticRegistry,
    load_bundled,
)
from tests.schemas.schemas_testlib import fastavro_frame, int64s, plain, texts

SCHEMA = plain("RankedList")
REGISTRY = StaticRegistry()
scores32 = st.floats(width=32, allow_nan=False)


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    """Random encode_batch arguments: n rows, kmax columns, counts in [0, kmax]."""
    n, kmax = draw(st.integers(0, 6)), draw(st.integers(0, 8))
    cells = n * kmax
    return {
        "request_ids": draw(st.lists(texts, min_size=n, max_size=n)),
        "user_ids": np.array(draw(st.lists(int64s, min_size=n, max_size=n)), np.int64),
        "models": draw(st.lists(texts, min_size=n, max_size=n)),
        "model_versions": draw(st.lists(texts, min_size=n, max_size=n)),
        "item_ids": np.array(
            draw(st.lists(int64s, min_size=cells, max_size=cells)), np.int64
        ).reshape(n, kmax),
        "scores": np.array(
            draw(st.lists(scores32, min_size=cells, max_size=cells)), np.float32
        ).reshape(n, kmax),
        "counts": np.array(draw(st.lists(st.integers(0, kmax), min_size=n, max_size=n)), np.int32),
        "created_at_ms": np.array(draw(st.lists(int64s, min_size=n, max_size=n)), np.int64),
        "scored_at_ms": draw(int64s),
        "degraded": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_),
    }


def records(args: dict[str, Any]) -> list[dict[str, Any]]:
    """fastavro records for the same arguments."""
    out = []
    for i, count in enumerate(args["counts"].tolist()):
        items = zip(
            args["item_ids"][i, :count].tolist(), args["scores"][i, :count].tolist(), strict=True
        )
        out.append(
            {
                "request_id": args["request_ids"][i],
                "user_id": int(args["user_ids"][i]),
                "model": args["models"][i],
                "model_version": args["model_versions"][i],
                "items": [{"item_id": a, "score": s} for a, s in items],
                "created_at": int(args["created_at_ms"][i]),
                "scored_at": args["scored_at_ms"],
                "degraded": bool(args["degraded"][i]),
            }
        )
    return out


@given(batches())
def test_encoder_matches_fastavro_byte_for_byte(args: dict[str, Any]) -> None:
    messages = RankedListEncoder(REGISTRY).encode_batch(**args)
    assert messages == [fastavro_frame(2, SCHEMA, record) for record in records(args)]


@given(batches())
def test_decoder_round_trip(args: dict[str, Any]) -> None:
    messages = RankedListEncoder(REGISTRY).encode_batch(**args)
    decoder = RankedListDecoder(REGISTRY)
    for i, message in enumerate(messages):
        ranked = decoder.decode(message)
        count = int(args["counts"][i])
        assert ranked.request_id == args["request_ids"][i]
        assert ranked.user_id == args["user_ids"][i]
        assert ranked.model_version == args["model_versions"][i]
        assert ranked.item_ids.dtype == np.int64
        assert ranked.scores.dtype == np.float32
        np.testing.assert_array_equal(ranked.item_ids, args["item_ids"][i, :count])
        np.testing.assert_array_equal(ranked.scores, args["scores"][i, :count])
        assert ranked.created_at_ms == args["created_at_ms"][i]
        assert ranked.scored_at_ms == args["scored_at_ms"]
        assert ranked.degraded == args["degraded"][i]


def small_batch(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "request_ids": ["a", "b"],
        "user_ids": np.array([1, 2], np.int64),
        "models": ["m", "m"],
        "model_versions": ["v1", "v1"],
        "item_ids": np.array([[5, 6, 7], [8, 9, 10]], np.int64),
        "scores": np.array([[0.9, 0.5, 0.1], [0.7, 0.6, 0.2]], np.float32),
        "counts": np.array([3, 1], np.int32),
        "created_at_ms": np.array([100, 200], np.int64),
        "scored_at_ms": 300,
    }
    args.update(changes)
    return args


def test_degraded_defaults_to_false_and_scored_at_may_be_per_row() -> None:
    scored: NDArray[np.int64] = np.array([301, 302], np.int64)
    messages = RankedListEncoder(REGISTRY).encode_batch(**small_batch(scored_at_ms=scored))
    decoded = [RankedListDecoder(REGISTRY).decode(m) for m in messages]
    assert [r.degraded for r in decoded] == [False, False]
    assert [r.scored_at_ms for r in decoded] == [301, 302]
    assert decoded[1].item_ids.tolist() == [8]


def test_nan_scores_are_written_bit_exact() -> None:
    odd_nan = np.array([0x7FC00001], np.uint32).view(np.float32)
    scores = np.array([[odd_nan[0], 1.0, 0.0], [np.inf, -np.inf, 0.0]], np.float32)
    [first, second] = RankedListEncoder(REGISTRY).encode_batch(**small_batch(scores=scores))
    assert first.find(np.float32(odd_nan[0]).tobytes()) > 0
    assert RankedListDecoder(REGISTRY).decode(second).scores[0] == np.inf


@pytest.mark.parametrize(
    "changes",
    [
        {"counts": np.array([4, 1], np.int32)},
        {"counts": np.array([-1, 1], np.int32)},
        {"counts": np.array([1], np.int32)},
        {"scores": np.zeros((2, 2), np.float32)},
        {"item_ids": np.zeros((2, 3), np.float64)},
        {"models": ["m"]},
        {"user_ids": np.array([1, 2, 3], np.int64)},
        {"created_at_ms": np.zeros((2, 1), np.int64)},
        {"request_ids": ["a", "\ud800"]},
    ],
)
def test_bad_arguments_raise_encode_error(changes: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        RankedListEncoder(REGISTRY).encode_batch(**small_batch(**changes))


def previous_version() -> dict[str, Any]:
    schema = load_bundled("RankedList")
    schema["fields"] = schema["fields"][:-1]  # before "degraded" existed
    return schema


def test_other_writer_schema_goes_through_fastavro() -> None:
    registry = StaticRegistry()
    registry.register(7, previous_version())
    messages = RankedListEncoder(registry, schema_id=7).encode_batch(**small_batch())
    old = registry.schema_for_id(7).plain
    full = records(small_batch(degraded=np.zeros(2, np.bool_)))
    expected = [{k: v for k, v in r.items() if k != "degraded"} for r in full]
    assert messages == [fastavro_frame(7, old, r) for r in expected]
    ranked = RankedListDecoder(registry).decode(messages[0])
    assert ranked.degraded is False
    assert ranked.item_ids.tolist() == [5, 6, 7]


def test_decoder_errors() -> None:
    [message, _] = RankedListEncoder(REGISTRY).encode_batch(**small_batch())
    decoder = RankedListDecoder(REGISTRY)
    for bad in (message[:-1], message + b"\x00", b"\x02" + message[1:]):
        with pytest.raises(DecodeError):
            decoder.decode(bad)
    with pytest.raises(DecodeError) as info:
        decoder.decode(message[:-3])
    assert info.value.schema_id == 2
