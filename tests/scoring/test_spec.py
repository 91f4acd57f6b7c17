"""Feature spec validation."""

from __future__ import annotations

import pytest

from scoring.errors import SpecError
from scoring.spec import DenseFeature, FeatureSpec


def make(**overrides: object) -> FeatureSpec:
    args: dict[str, object] = {
        "user_fields": ("segment",),
        "item_fields": ("category",),
        "context_fields": ("device",),
        "crosses": (("user.segment", "item.category"),),
        "dense": (DenseFeature("user.age", 30.0, 10.0, 30.0),),
    }
    args.update(overrides)
    return FeatureSpec(**args)  # type: ignore[arg-type]


def test_valid_spec_splits_crosses_by_kind() -> None:
    spec = make(crosses=(("user.segment", "item.id"), ("item.category", "item.id")))
    assert spec.job_crosses() == (("user.segment", "item.id"),)
    assert spec.item_crosses() == (("item.category", "item.id"),)
    assert spec.categorical_names() == (
        "user.segment",
        "context.device",
        "item.id",
        "item.category",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"crosses": (("user.nope", "item.category"),)}, "unknown field 'user.nope'"),
        ({"crosses": (("item.category", "user.segment"),)}, "second field must be an item"),
        ({"crosses": (("user.segment", "context.device"),)}, "second field must be an item"),
        ({"crosses": (("item.category", "item.category"),)}, "with itself"),
        ({"crosses": (("user.segment", "item.category"),) * 2}, "duplicate cross"),
        ({"crosses": (("user.segment",),)}, "malformed cross"),
        ({"item_fields": ("id",)}, "must not list 'id'"),
        ({"user_fields": ("a.b",)}, "without '.'"),
        ({"user_fields": ("a", "a")}, "duplicate user field"),
        ({"dense": (DenseFeature("user.age", 1, 1, 1),) * 2}, "duplicate dense"),
    ],
)
def test_malformed_spec_is_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make(**overrides)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("context.x", 0.0, 1.0, 0.0), "must be named"),
        (("user.age", 0.0, 0.0, 0.0), "std must be"),
        (("user.age", float("nan"), 1.0, 0.0), "finite"),
    ],
)
def test_bad_dense_feature_is_rejected(args: tuple[str, float, float, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        DenseFeature(*args)


def test_dense_feature_names() -> None:
    d = DenseFeature("item.price", 1.0, 2.0, 3.0)
    assert (d.group, d.field) == ("item", "price")
