"""The serving contract stated in scoring/HASHING.md ("From a job to a ranked list"), checked on
the kernel: which features get a term, how context values count, how candidates are ordered."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel
from scoring.reference import reference_predict
from scoring.terms import job_terms
from scoring.topk import select_top_k
from tests.scoring.conftest import batch_of


def _logits(model: LRModel, contexts: list[dict[str, str]], users: UserFeatures,
            items: ItemTable, cands: list[int]) -> np.ndarray:  # fmt: skip
    batch = batch_of([cands] * len(contexts), [len(cands)] * len(contexts), contexts)
    same_user = users.take(np.zeros(len(contexts), dtype=np.intp))
    return Scorer().logits(model, batch, same_user, items)


def test_single_terms_are_the_user_context_and_item_fields_plus_item_id(model: LRModel) -> None:
    assert model.spec.categorical_names() == (
        *(f"user.{f}" for f in model.spec.user_fields),
        *(f"context.{f}" for f in model.spec.context_fields),
        "item.id",
        *(f"item.{f}" for f in model.spec.item_fields),
    )
    users = UserFeatures.from_raw({"segment": ["a"]}, {})
    terms = job_terms(model.spec, model.hash_bits, users, [{"device": "ios"}])
    # one single term per user and context field, present or not (missing -> no weight)
    assert terms.singles.shape == (1, len(model.spec.user_fields) + len(model.spec.context_fields))


def test_an_empty_context_value_is_present_and_unknown_keys_are_ignored(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    cands = [int(i) for i in items.ids[:20]]
    absent, empty, extra = _logits(
        model, [{}, {"device": ""}, {"not_a_field": "x", "Device": "ios"}], user_table, items, cands
    ).reshape(3, -1)
    assert not np.array_equal(absent, empty)  # "" hashes to 0xcbf29ce484222325: a value
    np.testing.assert_array_equal(absent, extra)  # keys the spec does not name change nothing
    batch = batch_of([cands], [len(cands)], [{"device": ""}])
    expected = reference_predict(model, batch, user_table.take(np.zeros(1, np.intp)), items)
    np.testing.assert_allclose(1 / (1 + np.exp(-empty.astype(np.float64))), expected, atol=2e-6)


def test_duplicates_are_each_scored_and_top_k_above_the_count_returns_all(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    a, b = int(items.ids[3]), int(items.ids[7])
    batch = batch_of([[a, b, a]], [50])
    ranked = Scorer().rank(model, batch, user_table.take(np.arange(1)), items)
    assert ranked.counts.tolist() == [3]  # top_k 50 > 3 candidates: all of them
    got = ranked.item_ids[0, :3].tolist()
    assert sorted(got) == sorted([a, b, a])
    scores = ranked.scores[0, :3]
    assert scores[got.index(a)] == scores[len(got) - 1 - got[::-1].index(a)]


def test_ranking_follows_the_float32_logit_and_ties_go_to_the_earlier_position(
    model: LRModel, items: ItemTable, user_table: UserFeatures
) -> None:
    # A bias of 40 saturates every float32 probability at 1.0: the scores tie, the logits do not.
    saturated = replace(model, bias=40.0)
    cands = [int(i) for i in items.ids[:30]]
    batch = batch_of([cands], [30])
    users = user_table.take(np.arange(1))
    logits = Scorer().logits(saturated, batch, users, items)
    ranked = Scorer().rank(saturated, batch, users, items)
    assert set(ranked.scores[0].tolist()) == {1.0}
    by_logit = sorted(range(30), key=lambda i: (-float(logits[i]), i))
    assert ranked.item_ids[0].tolist() == [cands[i] for i in by_logit]
    # equal logits: the earlier position first, also at the top-k boundary
    tied = np.array([1.0, 2.0, 2.0, 1.0, 2.0], np.float32)
    best = select_top_k(tied, np.array([0, 5]), np.array([4], np.int32))
    assert best.positions[0].tolist() == [1, 2, 4, 0]
