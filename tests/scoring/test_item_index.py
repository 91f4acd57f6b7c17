"""Id -> row lookup, both the dense table and the hash table paths."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring.item_index import ItemIndex


@pytest.mark.parametrize(
    ("ids", "dense"),
    [
        (np.arange(5, 5000, 3, dtype=np.int64), True),
        (
            np.sort(np.random.default_rng(1).choice(2**62, 5000, replace=False)).astype(np.int64),
            False,
        ),
        (np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64), False),
    ],
)
def test_lookup_finds_every_id_and_rejects_others(ids: NDArray[np.int64], dense: bool) -> None:
    index = ItemIndex(ids)
    assert index.is_dense is dense
    rng = np.random.default_rng(2)
    probes = np.concatenate([ids, rng.integers(-(2**63), 2**63 - 1, 3000), ids[:50] + 1])
    rows = index.lookup(probes)
    expected = {int(v): i for i, v in enumerate(ids)}
    assert rows.tolist() == [expected.get(int(p), ids.size) for p in probes]


def test_empty_index_knows_nothing() -> None:
    index = ItemIndex(np.empty(0, dtype=np.int64))
    assert index.lookup(np.array([0, 7], dtype=np.int64)).tolist() == [0, 0]
