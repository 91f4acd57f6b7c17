"""Per-job term indices: the batched hashing equals the per-field definition, memo or not."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from scoring import terms
from scoring.features import UserFeatures
from scoring.hashing import hash_optional_strings
from scoring.spec import CONTEXT, FeatureSpec
from scoring.terms import job_terms, left_index, single_index

CONTEXTS = [
    {"device": "ios", "page": "home", "hour": "7"},
    {"device": "web", "hour": "23"},  # page missing
    {},
    {"device": "ios", "page": "feed", "hour": "7", "unused": "x"},
    {"device": "\u00e9cran", "page": "home", "hour": "0"},
]


def per_field(
    spec: FeatureSpec, users: UserFeatures, contexts: list[dict[str, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """The definition, one field at a time (what the batched pass must reproduce)."""
    n = len(contexts)
    values = {f"user.{f}": users.categorical[f] for f in spec.user_fields}
    for f in spec.context_fields:
        values[f"{CONTEXT}.{f}"] = hash_optional_strings([c.get(f) for c in contexts])
    bits = 16
    singles = [single_index(name, values[name], bits) for name in values]
    left = [left_index(a, values[a], bits) for a, _ in spec.job_crosses()]
    return np.stack(singles, axis=1).reshape(n, -1), np.stack(left, axis=1).reshape(n, -1)


def users_for(user_table: UserFeatures, n: int) -> UserFeatures:
    users = user_table.take(np.arange(n, dtype=np.int64))
    # one user with every categorical value missing (hash 0)
    categorical = {
        k: np.where(np.arange(n) == 1, np.uint64(0), v) for k, v in users.categorical.items()
    }
    return UserFeatures(categorical, users.dense)


def test_batched_job_terms_equal_the_per_field_definition(
    spec: FeatureSpec, user_table: UserFeatures
) -> None:
    users = users_for(user_table, len(CONTEXTS))
    got = job_terms(spec, 16, users, CONTEXTS)
    singles, left = per_field(spec, users, CONTEXTS)
    np.testing.assert_array_equal(got.singles, singles)
    np.testing.assert_array_equal(got.left, left)
    assert got.singles.flags.c_contiguous
    assert got.left.flags.c_contiguous
    assert (got.singles[1, : len(spec.user_fields)] == terms.MISSING).all()


def tiny_memo(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """An empty context-hash memo holding at most ``size`` strings, for this test only."""
    monkeypatch.setattr(terms, "CONTEXT_MEMO_SIZE", size)
    monkeypatch.setattr(terms, "_CONTEXT_HASHES", {})


def test_context_memo_overflow_rehashes_and_stays_exact(
    spec: FeatureSpec, user_table: UserFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_memo(monkeypatch, 4)
    users = users_for(user_table, len(CONTEXTS))
    other = [*CONTEXTS[:3], {"device": "tv", "page": "search"}, {"hour": "12"}]  # some seen
    # More distinct strings than the memo holds, batch after batch, partly remembered.
    for contexts in (CONTEXTS, other, CONTEXTS, other):
        got = job_terms(spec, 16, users, contexts)
        singles, left = per_field(spec, users, contexts)
        np.testing.assert_array_equal(got.singles, singles)
        np.testing.assert_array_equal(got.left, left)
    assert len(terms._CONTEXT_HASHES) <= len({v for c in other for v in c.values()})


def test_no_jobs_gives_empty_terms(spec: FeatureSpec, user_table: UserFeatures) -> None:
    got = job_terms(spec, 16, user_table.take(np.empty(0, np.int64)), [])
    assert got.singles.shape == (0, len(spec.user_fields) + len(spec.context_fields))
    assert got.left.shape == (0, len(spec.job_crosses()))


def test_threads_sharing_a_tiny_memo_get_exact_terms(
    spec: FeatureSpec, user_table: UserFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_memo(monkeypatch, 3)
    users = users_for(user_table, len(CONTEXTS))
    sets = [CONTEXTS, [{"device": f"d{i}", "page": f"p{i}"} for i in range(len(CONTEXTS))]]
    expected = [per_field(spec, users, c) for c in sets]
    failures: list[str] = []

    def work(offset: int) -> None:
        for i in range(150):
            which = (i + offset) % 2
            try:
                got = job_terms(spec, 16, users, sets[which])
            except Exception as exc:  # a thread's exception would not fail the test by itself
                failures.append(f"thread {offset} round {i}: {exc!r}")
                return
            if not np.array_equal(got.singles, expected[which][0]):
                failures.append(f"thread {offset} round {i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
