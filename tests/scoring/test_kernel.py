"""The vectorized kernel against the per-candidate reference, ranking and the item cache."""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

import numpy as np
import pytest

from scoring import item_cache, kernel, value_grid
from scoring.batch import ScoringBatch
from scoring.errors import InputError
from scoring.features import ItemTable, UserFeatures
from scoring.item_index import ItemIndex
from scoring.kernel import Scorer
from scoring.kernel_baseline import BaselineScorer
from scoring.model import LRModel
from scoring.reference import reference_logits, reference_predict
from scoring.synthetic import (
    demo_spec,
    heavy_items,
    heavy_spec,
    heavy_users,
    make_batch,
    random_model,
)
from tests.scoring.conftest import N_USERS, batch_of


def mixed_batch(items: ItemTable, seed: int) -> ScoringBatch:
    """Random jobs over known and unknown items, with the odd edge cases mixed in."""
    rng = np.random.default_rng(seed)
    ids = np.concatenate([items.ids, np.arange(10**9, 10**9 + 40, dtype=np.int64)])
    base = make_batch(rng, demo_spec(), ids, N_USERS, n_jobs=37, mean_candidates=30)
    contexts = list(base.contexts)
    contexts[0] = {}  # empty context
    return replace(base, contexts=contexts, top_k=rng.integers(0, 60, 37).astype(np.int32))


def test_predict_equals_reference(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    batch = mixed_batch(items, seed=1)
    users = user_table.take(batch.user_ids)
    got = Scorer(chunk_jobs=4).predict(model, batch, users, items)
    want = reference_predict(model, batch, users, items)
    assert got.dtype == np.float32
    assert got.shape == batch.candidates.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.ptp(want) > 0.01  # the comparison is not between constants


def test_edge_cases_equal_reference(model: LRModel, items: ItemTable) -> None:
    known = items.ids[:5].tolist()
    batch = batch_of(
        [[known[0]], [known[1], 777, known[1]], [], [known[2], known[3]]],
        top_k=[5, 1, 3, 10],
        contexts=[{}, {"device": "web", "hour": "3", "page": "home"}, {"page": "x"}, {}],
    )
    users = UserFeatures(  # segment missing (0) for job 1, no country column, NaN age for job 3
        categorical={"segment": np.array([5, 0, 7, 9], np.uint64)},
        dense={"age": np.array([20.0, 30.0, 40.0, np.nan], np.float32)},
    )
    got = Scorer().predict(model, batch, users, items)
    np.testing.assert_allclose(got, reference_predict(model, batch, users, items), atol=1e-5)
    assert got[1] == got[3]  # a duplicate candidate scores exactly like the original


def test_item_without_any_feature_columns(model: LRModel, user_table: UserFeatures) -> None:
    items = ItemTable.from_raw([3, 1, 2], {}, {})
    batch = batch_of([[1, 2, 3, 4]], top_k=[2])
    users = user_table.take(batch.user_ids)
    np.testing.assert_allclose(
        Scorer().predict(model, batch, users, items),
        reference_predict(model, batch, users, items),
        atol=1e-5,
    )


def test_rank_orders_by_logit_and_counts(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    batch = mixed_batch(items, seed=2)
    users = user_table.take(batch.user_ids)
    scorer = Scorer(chunk_jobs=8)
    ranked = scorer.rank(model, batch, users, items)
    logits = scorer.logits(model, batch, users, items)
    lengths = np.diff(batch.row_splits)
    np.testing.assert_array_equal(ranked.counts, np.minimum(batch.top_k, lengths))
    assert ranked.item_ids.shape[1] == min(int(batch.top_k.max()), int(lengths.max()))
    for j in range(batch.n_jobs):
        a, b = int(batch.row_splits[j]), int(batch.row_splits[j + 1])
        order = sorted(range(a, b), key=lambda i: (-logits[i], i))[: ranked.counts[j]]
        ids, scores = ranked.row(j)
        np.testing.assert_array_equal(ids, batch.candidates[order])
        np.testing.assert_allclose(
            scores, 1 / (1 + np.exp(-logits[order].astype(np.float64))), rtol=1e-6
        )
        assert (ranked.item_ids[j, ranked.counts[j] :] == -1).all()
        assert np.isnan(ranked.scores[j, ranked.counts[j] :]).all()


def test_rank_breaks_ties_by_position(model: LRModel, items: ItemTable) -> None:
    a, b, c = items.ids[:3].tolist()
    # duplicates tie exactly; the earlier copy must win, also across the top-k boundary
    batch = batch_of([[a, b, a, c, b, a], [c, c, c]], top_k=[4, 2])
    users = UserFeatures({}, {})
    logits = Scorer().logits(model, batch, users, items)
    ranked = Scorer().rank(model, batch, users, items)
    job0 = sorted(range(6), key=lambda i: (-logits[i], i))[:4]
    np.testing.assert_array_equal(ranked.item_ids[0], batch.candidates[job0])
    assert ranked.counts.tolist() == [4, 2]
    assert ranked.item_ids[1, :2].tolist() == [c, c]


def test_rank_with_no_candidates_or_zero_k(model: LRModel, items: ItemTable) -> None:
    batch = batch_of([[], [int(items.ids[0])]], top_k=[3, 0])
    ranked = Scorer().rank(model, batch, UserFeatures({}, {}), items)
    assert ranked.item_ids.shape == (2, 0)
    assert ranked.scores.shape == (2, 0)
    assert ranked.counts.tolist() == [0, 0]


def test_rank_width_is_the_largest_count(model: LRModel, items: ItemTable) -> None:
    batch = batch_of([items.ids[:2].tolist(), items.ids[:9].tolist()], top_k=[50, 3])
    ranked = Scorer().rank(model, batch, UserFeatures({}, {}), items)
    assert ranked.item_ids.shape == (2, 3)
    assert ranked.counts.tolist() == [2, 3]
    assert ranked.item_ids[0, 2] == -1


def test_item_partials_are_cached_per_model_version_and_token(
    model: LRModel, items: ItemTable, user_table: UserFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = item_cache.partial_logits

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kernel, "partial_logits", spy)
    batch = batch_of([items.ids[:10].tolist()], top_k=[3])
    users = user_table.take(batch.user_ids)
    scorer = Scorer()
    first = scorer.predict(model, batch, users, items)
    scorer.predict(model, batch, users, items)
    same_content = ItemTable(items.ids, items.categorical, items.dense, items.token)
    scorer.predict(model, batch, users, same_content)
    assert len(calls) == 1
    assert scorer.items.hits == 2

    heavier = replace(model, version="v2", weights=model.weights * np.float32(2.0))
    second = scorer.predict(heavier, batch, users, items)
    assert len(calls) == 2
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, reference_predict(heavier, batch, users, items), atol=1e-5)


def test_same_version_with_new_weights_is_not_served_stale(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    batch = batch_of([items.ids[:20].tolist()], top_k=[3])
    users = user_table.take(batch.user_ids)
    scorer = Scorer()
    scorer.predict(model, batch, users, items)
    changed = replace(model, weights=model.weights + np.float32(0.5))
    np.testing.assert_allclose(
        scorer.logits(changed, batch, users, items),
        reference_logits(changed, batch, users, items),
        atol=1e-4,
    )


def test_item_cache_is_bounded(model: LRModel, items: ItemTable) -> None:
    scorer = Scorer(max_item_tables=2)
    batch = batch_of([[1]], top_k=[1])
    for token in range(5):
        scorer.predict(model, batch, UserFeatures({}, {}), replace(items, token=token))
    assert len(scorer.items) == 2


def test_user_columns_must_match_jobs(model: LRModel, items: ItemTable) -> None:
    batch = batch_of([[1], [2]], top_k=[1, 1])
    users = UserFeatures({"segment": np.array([1, 2, 3], np.uint64)}, {})
    with pytest.raises(InputError, match="3 rows for 2 jobs"):
        Scorer().predict(model, batch, users, items)


def test_chunk_size_does_not_change_results(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    batch = mixed_batch(items, seed=3)
    users = user_table.take(batch.user_ids)
    results = [Scorer(chunk_jobs=c).logits(model, batch, users, items) for c in (1, 5, 64)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@functools.cache
def heavy_tables(uniform_fields: bool) -> tuple[LRModel, ItemTable, UserFeatures]:
    spec = heavy_spec()
    model = random_model("heavy", "1", spec, hash_bits=16, seed=21)
    items = heavy_items(4000, spec, seed=22, uniform_fields=uniform_fields)
    return model, items, heavy_users(300, spec, seed=23)


def heavy_case(
    seed: int, uniform_fields: bool = False, n_jobs: int = 23
) -> tuple[LRModel, ItemTable, ScoringBatch, UserFeatures, list[list[int]]]:
    """The production-shaped spec at small size: unknown ids, duplicates, an empty job and
    missing values (user, context and item) included."""
    spec = heavy_spec()
    model, items, users_all = heavy_tables(uniform_fields)
    rng = np.random.default_rng(seed)
    ids = np.concatenate([items.ids, np.arange(10**9, 10**9 + 30, dtype=np.int64)])
    base = make_batch(rng, spec, ids, 300, n_jobs=n_jobs, mean_candidates=80)
    lists = [base.candidates[a:b].tolist() for a, b in itertools.pairwise(base.row_splits)]
    lists[2] = []
    lists[5] = [*lists[5], *lists[5][:7]]  # duplicates within a job
    contexts = [dict(c) for c in base.contexts]
    contexts[1] = {}
    batch = replace(
        batch_of(lists, top_k=[50] * len(lists), contexts=contexts), user_ids=base.user_ids
    )
    return model, items, batch, users_all.take(batch.user_ids), lists


@pytest.mark.parametrize("chunk_jobs", [1, 3, 16])
def test_heavy_spec_equals_reference(chunk_jobs: int) -> None:
    model, items, batch, users, lists = heavy_case(24)
    assert (batch.candidates >= 10**9).any()  # unknown items are scored too
    scorer = Scorer(chunk_jobs=chunk_jobs)
    assert scorer.item_state(model, items).rows.by_id
    for _ in range(2):  # cold, then warm cross rows
        got = scorer.logits(model, batch, users, items)
        np.testing.assert_allclose(
            got, reference_logits(model, batch, users, items), atol=1e-5, rtol=0
        )
    dup = int(batch.row_splits[5])
    n5 = len(lists[5]) - 7
    np.testing.assert_array_equal(got[dup : dup + 7], got[dup + n5 : dup + n5 + 7])
    baseline = BaselineScorer().logits(model, batch, users, items)
    np.testing.assert_allclose(got, baseline, atol=1e-5, rtol=0)
    ranked = scorer.rank(model, batch, users, items)
    assert ranked.counts[2] == 0


def test_uniform_item_fields_equal_reference() -> None:
    """Item field values spread evenly over their vocabularies (no dominant values)."""
    model, items, batch, users, _ = heavy_case(25, uniform_fields=True)
    got = Scorer().logits(model, batch, users, items)
    np.testing.assert_allclose(got, reference_logits(model, batch, users, items), atol=1e-5)


def test_sparse_item_ids_are_looked_up_by_row(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    spread = replace(items, ids=items.ids * 10**9 - 7, token=items.token + 1)
    object.__setattr__(spread, "index", ItemIndex(spread.ids))
    base = mixed_batch(items, seed=6)
    known = np.isin(base.candidates, items.ids)
    candidates = np.where(known, base.candidates * 10**9 - 7, base.candidates)
    batch = replace(base, candidates=candidates)
    users = user_table.take(batch.user_ids)
    scorer = Scorer()
    assert not scorer.item_state(model, spread).rows.by_id
    got = scorer.logits(model, batch, users, spread)
    np.testing.assert_allclose(got, reference_logits(model, batch, users, spread), atol=1e-5)
    assert not known.all()  # unknown ids found through the index too


def test_high_cardinality_job_fields_fall_back_to_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job-side field with more values than a cross keeps rows for (context.country has 60,
    drawn uniformly) is hashed per candidate from then on: scores stay exact before, across and
    after the switch, and low-cardinality fields keep their rows."""
    monkeypatch.setattr(value_grid, "MAX_LEFT_VALUES", 40)
    scorer = Scorer()
    hashed_after: list[set[str]] = []
    for seed in range(26, 30):
        model, items, batch, users, _ = heavy_case(seed, n_jobs=30)
        got = scorer.logits(model, batch, users, items)
        np.testing.assert_allclose(
            got, reference_logits(model, batch, users, items), atol=1e-5, rtol=0
        )
        fields = scorer.item_state(model, items).encoded.fields
        firsts = [model.spec.job_crosses()[c][0] for f in fields for c in f.columns.tolist()]
        hashed = [k.hashed for f in fields for k in f.crosses]
        hashed_after.append({a for a, h in zip(firsts, hashed, strict=True) if h})
    assert "context.country" not in hashed_after[0]  # 30 jobs: fewer than 40 countries yet
    assert "context.country" in hashed_after[-1]
    assert not {"user.gender", "user.platform", "context.device"} & hashed_after[-1]
    assert all(k.weights.size == 0 for f in fields for k in f.crosses if k.hashed)


def test_baseline_kernel_equals_reference_and_the_kernel(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    batch = mixed_batch(items, seed=4)
    users = user_table.take(batch.user_ids)
    baseline = BaselineScorer(chunk_jobs=4)
    got = baseline.logits(model, batch, users, items)
    np.testing.assert_allclose(got, reference_logits(model, batch, users, items), atol=1e-5)
    np.testing.assert_allclose(got, Scorer().logits(model, batch, users, items), atol=1e-5)
    ranked = baseline.rank(model, batch, users, items)
    np.testing.assert_array_equal(ranked.counts, Scorer().rank(model, batch, users, items).counts)
    state = baseline.baseline_item_state(model, items)
    assert state.right.shape == (len(items) + 1, len(model.spec.job_crosses()))
    assert baseline.baseline_item_state(model, items) is state
