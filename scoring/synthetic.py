"""Deterministic synthetic data for demos, tests and benchmarks (seeded numpy generators only).

Raw columns look like what a CSV export of a feature store holds: strings and floats with some
values missing (``None``). Item popularity follows a Zipf law so candidate lists repeat popular
items like real retrieval output does.

Invariants: the same arguments (seed or generator state) always give the same data; candidate
lists are unique within a job; raw columns have one entry per id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures, content_token
from scoring.hashing import hash_strings
from scoring.model import LRModel
from scoring.spec import ITEM, DenseFeature, FeatureSpec

MISSING_RATE: Final = 0.05
_VOCAB: Final = {
    "segment": 40, "country": 60, "age_bucket": 8, "category": 300, "brand": 3000,
    "seller": 8000, "price_bucket": 20, "device": 3, "hour": 24, "page": 6,
}  # fmt: skip
_DEFAULT_VOCAB: Final = 100


@dataclass(frozen=True, slots=True)
class RawColumns:
    """Raw rows keyed by id: string columns and numeric columns, ``None`` where missing."""

    ids: list[int]
    categorical: dict[str, list[str | None]]
    dense: dict[str, list[float | None]]


def demo_spec() -> FeatureSpec:
    """A realistic spec: 8 user/context x item crosses, 3 item x item crosses, 4 dense features."""
    return FeatureSpec(
        user_fields=("segment", "country", "age_bucket"),
        item_fields=("category", "brand", "seller", "price_bucket"),
        context_fields=("device", "hour", "page"),
        crosses=(
            ("user.segment", "item.category"),
            ("user.segment", "item.brand"),
            ("user.country", "item.seller"),
            ("user.age_bucket", "item.category"),
            ("context.device", "item.category"),
            ("context.hour", "item.category"),
            ("context.page", "item.id"),
            ("context.device", "item.id"),
            ("item.category", "item.brand"),
            ("item.category", "item.price_bucket"),
            ("item.brand", "item.seller"),
        ),
        dense=(
            DenseFeature("user.age", mean=38.0, std=12.0, default=38.0),
            DenseFeature("user.activity", mean=1.5, std=1.0, default=0.0),
            DenseFeature("item.price", mean=3.5, std=1.2, default=3.5),
            DenseFeature("item.ctr", mean=0.03, std=0.02, default=0.01),
        ),
    )


def random_model(
    name: str, version: str, spec: FeatureSpec, hash_bits: int = 22, seed: int = 0
) -> LRModel:
    """A model with small random weights (a trained model's scale), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return LRModel(
        name=name,
        version=version,
        created_at="2026-01-01T00:00:00+00:00",
        hash_bits=hash_bits,
        spec=spec,
        bias=float(rng.normal(-3.0, 0.2)),
        weights=rng.normal(0.0, 0.1, size=1 << hash_bits).astype(np.float32),
        dense_weights=rng.normal(0.0, 0.3, size=len(spec.dense)).astype(np.float32),
    )


def _strings(rng: np.random.Generator, field: str, n: int) -> list[str | None]:
    vocab = _VOCAB.get(field, _DEFAULT_VOCAB)
    codes = rng.zipf(1.3, size=n) % vocab
    missing = rng.random(n) < MISSING_RATE
    return [
        None if m else f"{field}-{c}" for c, m in zip(codes.tolist(), missing.tolist(), strict=True)
    ]


def _numbers(rng: np.random.Generator, feature: DenseFeature, n: int) -> list[float | None]:
    values = rng.normal(feature.mean, feature.std, size=n)
    missing = rng.random(n) < MISSING_RATE
    return [None if m else v for v, m in zip(values.tolist(), missing.tolist(), strict=True)]


def _table(
    ids: list[int], fields: tuple[str, ...], dense: list[DenseFeature], seed: int
) -> RawColumns:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return RawColumns(
        ids=ids,
        categorical={f: _strings(rng, f, n) for f in fields},
        dense={d.field: _numbers(rng, d, n) for d in dense},
    )


def random_items(n_items: int, spec: FeatureSpec, seed: int) -> RawColumns:
    """``n_items`` items with ids drawn from ``1..4*n_items`` (unique, shuffled order)."""
    rng = np.random.default_rng(seed)
    ids = (rng.choice(4 * n_items, size=n_items, replace=False) + 1).tolist()
    item_dense = [d for d in spec.dense if d.group == "item"]
    return _table(ids, spec.item_fields, item_dense, seed + 1)


def random_users(n_users: int, spec: FeatureSpec, seed: int) -> RawColumns:
    """``n_users`` users with ids ``0..n_users-1``."""
    user_dense = [d for d in spec.dense if d.group == "user"]
    return _table(list(range(n_users)), spec.user_fields, user_dense, seed)


def random_contexts(
    rng: np.random.Generator, spec: FeatureSpec, n_jobs: int
) -> list[dict[str, str]]:
    """One context per job; each field is absent with probability ``MISSING_RATE``."""
    contexts: list[dict[str, str]] = []
    for _ in range(n_jobs):
        present = rng.random(len(spec.context_fields)) >= MISSING_RATE
        codes = rng.integers(0, 1 << 30, size=len(spec.context_fields)).tolist()
        contexts.append(
            {
                f: f"{f}-{code % _VOCAB.get(f, _DEFAULT_VOCAB)}"
                for f, code, keep in zip(spec.context_fields, codes, present.tolist(), strict=True)
                if keep
            }
        )
    return contexts


def zipf_candidates(
    rng: np.random.Generator,
    item_ids: NDArray[np.int64],
    n_jobs: int,
    mean_candidates: int = 700,
    a: float = 1.1,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Candidate lists with Zipf item popularity, unique within each job: (candidates, row_splits).

    Job sizes are uniform in ``[mean/2, 3*mean/2]`` (capped at the number of items).
    """
    n_items = item_ids.size
    popularity = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** a
    cdf = np.cumsum(popularity[rng.permutation(n_items)])
    cdf /= cdf[-1]
    low, high = max(mean_candidates // 2, 1), max(3 * mean_candidates // 2, 1)
    sizes = np.minimum(rng.integers(low, high + 1, size=n_jobs), n_items)
    lists = [item_ids[_unique_draws(rng, cdf, int(size))] for size in sizes.tolist()]
    splits = np.zeros(n_jobs + 1, dtype=np.int64)
    np.cumsum(sizes, out=splits[1:])
    candidates = np.concatenate(lists) if lists else np.empty(0, np.int64)
    return candidates.astype(np.int64), splits


def _unique_draws(
    rng: np.random.Generator, cdf: NDArray[np.float64], size: int
) -> NDArray[np.int64]:
    """``size`` distinct rows drawn by popularity, in first-drawn order."""
    drawn = np.empty(0, dtype=np.int64)
    while True:
        more = np.searchsorted(cdf, rng.random(2 * size + 16), side="right")
        drawn = np.concatenate([drawn, np.minimum(more, cdf.size - 1)])
        _, first = np.unique(drawn, return_index=True)
        if first.size >= size:
            return drawn[np.sort(first)[:size]]


def make_batch(
    rng: np.random.Generator,
    spec: FeatureSpec,
    item_ids: NDArray[np.int64],
    n_users: int,
    n_jobs: int,
    mean_candidates: int = 700,
    top_k: int = 50,
) -> ScoringBatch:
    """A micro-batch of ``n_jobs`` jobs for random users ``0..n_users-1``."""
    candidates, splits = zipf_candidates(rng, item_ids, n_jobs, mean_candidates)
    return ScoringBatch(
        user_ids=rng.integers(0, n_users, size=n_jobs).astype(np.int64),
        contexts=random_contexts(rng, spec, n_jobs),
        candidates=candidates,
        row_splits=splits,
        top_k=np.full(n_jobs, top_k, dtype=np.int32),
    )


# --- the heavy, production-shaped workload --------------------------------------------------------

HEAVY_ITEM_VOCAB: Final = {
    "genre": 50, "category": 200, "brand": 1000, "seller": 5000, "creator": 20000,
}  # fmt: skip
HEAVY_USER_VOCAB: Final = {
    "gender": 2, "platform": 4, "age_bucket": 8, "tenure": 12, "region": 20, "segment": 40,
    "language": 70, "interest": 100,
}  # fmt: skip
HEAVY_DENSE: Final = 16
HEAVY_CROSSES: Final = (
    ("user.gender", "item.genre"), ("user.gender", "item.category"),
    ("user.platform", "item.genre"), ("user.age_bucket", "item.genre"),
    ("user.age_bucket", "item.category"), ("user.tenure", "item.category"),
    ("user.region", "item.brand"), ("user.segment", "item.category"),
    ("user.segment", "item.brand"), ("user.language", "item.genre"),
    ("user.interest", "item.category"), ("user.interest", "item.seller"),
    ("context.country", "item.genre"), ("context.country", "item.category"),
    ("context.country", "item.brand"), ("context.country", "item.seller"),
    ("context.country", "item.creator"), ("context.country", "item.id"),
    ("context.device", "item.genre"), ("context.device", "item.category"),
    ("context.device", "item.brand"), ("context.hour", "item.genre"),
    ("context.hour", "item.category"), ("context.hour", "item.brand"),
)  # fmt: skip


def heavy_spec() -> FeatureSpec:
    """Production-shaped: 12 user x item and 12 context x item crosses, 5 item fields, 16 dense."""
    return FeatureSpec(
        user_fields=tuple(HEAVY_USER_VOCAB),
        item_fields=tuple(HEAVY_ITEM_VOCAB),
        context_fields=("country", "device", "hour"),
        crosses=HEAVY_CROSSES,
        dense=tuple(
            DenseFeature(f"item.d{i:02d}", mean=0.5 * i, std=1.0 + 0.1 * i, default=0.5 * i)
            for i in range(HEAVY_DENSE)
        ),
    )


def _coded_column(
    rng: np.random.Generator, field: str, vocab: int, n: int, uniform: bool = False
) -> NDArray[np.uint64]:
    """Value hashes of ``n`` strings ``f"{field}-{code}"`` drawn like ``_strings`` draws them
    (Zipf(1.3) folded into the vocabulary, or uniform over it; 5% missing -> 0), hashing each
    vocabulary entry once."""
    codes = rng.integers(0, vocab, size=n) if uniform else rng.zipf(1.3, size=n) % vocab
    codes[rng.random(n) < MISSING_RATE] = vocab  # the trailing 0: missing
    table = np.append(hash_strings([f"{field}-{c}" for c in range(vocab)]), np.uint64(0))
    return table[codes]


def _coded_columns(
    rng: np.random.Generator,
    fields: tuple[str, ...],
    vocab: Mapping[str, int],
    n: int,
    uniform: bool = False,
) -> dict[str, NDArray[np.uint64]]:
    return {f: _coded_column(rng, f, vocab.get(f, _DEFAULT_VOCAB), n, uniform) for f in fields}


def heavy_items(
    n_items: int, spec: FeatureSpec, seed: int, uniform_fields: bool = False
) -> ItemTable:
    """``n_items`` items with ids from ``1..4*n_items``, built from codes, not per-item strings.

    Equals ``ItemTable.from_raw`` of the strings ``f"{field}-{code}"`` (``None`` where missing)
    and float columns (NaN where missing); a million items build in seconds, not minutes. Field
    values are Zipf-distributed within their vocabularies, or uniform with ``uniform_fields``.
    """
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(4 * n_items, size=n_items, replace=False) + 1).astype(np.int64)
    categorical = _coded_columns(rng, spec.item_fields, HEAVY_ITEM_VOCAB, n_items, uniform_fields)
    dense: dict[str, NDArray[np.float32]] = {}
    for d in spec.dense:
        if d.group == ITEM:
            values = rng.normal(d.mean, d.std, size=n_items).astype(np.float32)
            values[rng.random(n_items) < MISSING_RATE] = np.nan
            dense[d.field] = values
    return ItemTable(ids, categorical, dense, content_token(ids, categorical, dense))


def heavy_users(n_users: int, spec: FeatureSpec, seed: int) -> UserFeatures:
    """``n_users`` users (rows ``0..n_users-1``), categorical only, built from codes."""
    rng = np.random.default_rng(seed)
    return UserFeatures(_coded_columns(rng, spec.user_fields, HEAVY_USER_VOCAB, n_users), {})
