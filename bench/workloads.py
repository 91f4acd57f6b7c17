"""The benchmarks' workloads: today's demo workload and the production-shaped heavy one.

    standard  the demo spec (8 user/context x item crosses, 3 item x item, 4 dense), 100k items,
              50k users, CSV feature files (`consumer.devtools.demo_data`)
    heavy     1,000,000 items with 5 categorical fields (cardinalities 50, 200, 1,000, 5,000,
              20,000) and 16 dense fields; 100,000 users with 8 categorical fields (2, 4, 8, 12,
              20, 40, 70, 100); context keys country, device, hour; 12 user x item and 12
              context x item crosses; 2**22 weights; Parquet feature snapshots

Both draw ~700 distinct candidates per job, Zipf(1.1) over the items, top 50.

The heavy spec, its vocabularies and crosses are ``scoring.synthetic``'s (`heavy_spec`), the same
definition `bench.kernel --workload heavy` measures; this module writes it as files.

Invariants: the same seed writes the same data; categorical values are ``f"{field}-{code}"``
(Zipf(1.3) codes folded into the vocabulary, 5% missing), dense values normal around the
feature's mean (5% missing), item ids a shuffled sample of ``1..4 * n_items``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from consumer.devtools.demo_data import MODEL, write_demo_data
from consumer.devtools.generator import JobShape
from consumer.features.parquet import write_entity_parquet
from scoring.model import save_model
from scoring.spec import DenseFeature
from scoring.synthetic import (
    HEAVY_ITEM_VOCAB,
    HEAVY_USER_VOCAB,
    heavy_spec,
    random_model,
)

MISSING_RATE: Final = 0.05
HEAVY_MODEL: Final = "heavy-lr"
HEAVY_ITEMS: Final = 1_000_000
HEAVY_USERS: Final = 100_000
HEAVY_CONTEXT_VOCAB: Final = {"country": 60, "device": 3, "hour": 24}


def heavy_context() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The values each context key takes in heavy jobs (drawn uniformly per job)."""
    return tuple(
        (key, tuple(f"{key}-{c}" for c in range(vocab)))
        for key, vocab in HEAVY_CONTEXT_VOCAB.items()
    )


@dataclass(frozen=True, slots=True)
class WorkloadFiles:
    """Where a written workload keeps its feature snapshots, which model its jobs name and
    what its jobs look like (all a child process needs, given the workload's name and root)."""

    users: Path
    items: Path
    model: str
    shape: JobShape


def workload_files(name: str, root: Path) -> WorkloadFiles:
    """The layout of workload ``name`` written under ``root``."""
    features = root / "features"
    if name == "heavy":
        shape = JobShape(model=HEAVY_MODEL, context=heavy_context())
        return WorkloadFiles(features / "users.parquet", features / "items.parquet", HEAVY_MODEL,
                             shape)  # fmt: skip
    if name == "standard":
        return WorkloadFiles(features / "users.csv", features / "items.csv", MODEL, JobShape())
    raise ValueError(f"unknown workload {name!r}: 'standard' or 'heavy'")


@dataclass(frozen=True, slots=True)
class WorkloadData:
    """A workload written under ``root``: model directory, feature files, ids, job shape."""

    name: str
    root: Path
    users_file: Path
    items_file: Path
    user_ids: NDArray[np.int64]
    item_ids: NDArray[np.int64]
    shape: JobShape
    items: int
    users: int
    hash_bits: int

    @property
    def models_dir(self) -> Path:
        return self.root / "models"


def _coded(rng: np.random.Generator, field: str, vocab: int, n: int) -> pa.DictionaryArray:
    codes = (rng.zipf(1.3, size=n) % vocab).astype(np.int32)
    missing = rng.random(n) < MISSING_RATE
    values = pa.array([f"{field}-{c}" for c in range(vocab)], type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=missing), values)


def _dense(rng: np.random.Generator, feature: DenseFeature, n: int) -> NDArray[np.float32]:
    values = rng.normal(feature.mean, feature.std, size=n).astype(np.float32)
    values[rng.random(n) < MISSING_RATE] = np.nan
    return values


def write_heavy_data(
    root: Path, n_items: int = HEAVY_ITEMS, n_users: int = HEAVY_USERS, seed: int = 7
) -> WorkloadData:
    """The heavy model and its Parquet snapshots under ``root`` (about 5 s for 1M items)."""
    spec = heavy_spec()
    save_model(random_model(HEAVY_MODEL, "v1", spec, 22, seed), root / "models" / HEAVY_MODEL)
    rng = np.random.default_rng(seed)
    item_ids = (rng.choice(4 * n_items, size=n_items, replace=False) + 1).astype(np.int64)
    items = {f: _coded(rng, f, v, n_items) for f, v in HEAVY_ITEM_VOCAB.items()}
    dense = {d.field: _dense(rng, d, n_items) for d in spec.dense}
    files = workload_files("heavy", root)
    write_entity_parquet(files.items, "item_id", item_ids, items, dense)
    user_ids = np.arange(n_users, dtype=np.int64)
    users = {f: _coded(rng, f, v, n_users) for f, v in HEAVY_USER_VOCAB.items()}
    write_entity_parquet(files.users, "user_id", user_ids, users, {})
    return WorkloadData("heavy", root, files.users, files.items, user_ids, item_ids, files.shape,
                        n_items, n_users, 22)  # fmt: skip


def write_standard_data(root: Path, n_items: int = 100_000, n_users: int = 50_000) -> WorkloadData:
    """Today's demo workload (CSV feature files)."""
    data = write_demo_data(root, n_items, n_users)
    return WorkloadData("standard", root, data.users_file, data.items_file, data.user_ids,
                        data.item_ids, JobShape(), n_items, n_users, 22)  # fmt: skip


def write_workload(name: str, root: Path) -> WorkloadData:
    """``standard`` or ``heavy`` under ``root``."""
    if name == "heavy":
        return write_heavy_data(root)
    if name == "standard":
        return write_standard_data(root)
    raise ValueError(f"unknown workload {name!r}: 'standard' or 'heavy'")
