"""The impressions file: logged (user, item, context, label) rows, read and written.

Impressions file: CSV with a header row and one impression per row.

    user_id,item_id,label,context.device,context.hour,context.page
    17,1001,1,ios,hour-9,home

- ``user_id``, ``item_id``: int64 ids; ``label``: ``1`` (clicked) or ``0``;
- ``context.<field>``: the job's context value for ``<field>`` (empty cell: absent);
- any other column is an error, so a misspelt column cannot silently drop a feature.

`make_impressions` writes synthetic feature files, a spec and impressions whose labels are drawn
from a known "true" model, so a fitted model can be checked against it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from consumer.errors import ConfigError
from consumer.features.files import write_entity_csv
from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel, spec_to_json
from scoring.spec import FeatureSpec
from scoring.synthetic import (
    demo_spec,
    random_contexts,
    random_items,
    random_users,
    zipf_candidates,
)

CONTEXT_PREFIX = "context."
REQUIRED = ("user_id", "item_id", "label")


@dataclass(frozen=True, slots=True)
class Impressions:
    """Logged impressions, one entry per row of the impressions file."""

    user_ids: NDArray[np.int64]
    item_ids: NDArray[np.int64]
    labels: NDArray[np.bool_]
    contexts: list[dict[str, str]]

    def __len__(self) -> int:
        return int(self.labels.size)

    def take(self, rows: NDArray[np.intp]) -> Impressions:
        return Impressions(
            self.user_ids[rows],
            self.item_ids[rows],
            self.labels[rows],
            [self.contexts[i] for i in rows.tolist()],
        )

    def as_batch(self) -> ScoringBatch:
        """One scoring job per impression (its item the only candidate), as the scorer sees it."""
        n = len(self)
        return ScoringBatch(
            user_ids=self.user_ids,
            contexts=self.contexts,
            candidates=self.item_ids,
            row_splits=np.arange(n + 1, dtype=np.int64),
            top_k=np.ones(n, np.int32),
        )


def read_impressions(path: Path) -> Impressions:
    """Parse an impressions file (format in the module docstring) or raise ``ConfigError``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read impressions: {exc}", key=str(path)) from exc
    if header is None or not rows:
        raise ConfigError("impressions file has no rows", key=str(path))
    columns = _check_header(header, path)
    users, items, labels, contexts = [], [], [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ConfigError(
                f"line {line}: {len(row)} cells, header has {len(header)}", key=str(path)
            )
        try:
            users.append(int(row[columns["user_id"]]))
            items.append(int(row[columns["item_id"]]))
        except ValueError as exc:
            raise ConfigError(f"line {line}: ids must be integers: {exc}", key=str(path)) from exc
        label = row[columns["label"]].strip()
        if label not in ("0", "1"):
            raise ConfigError(f"line {line}: label must be 0 or 1, got {label!r}", key=str(path))
        labels.append(label == "1")
        contexts.append(
            {
                k[len(CONTEXT_PREFIX) :]: row[i]
                for k, i in columns.items()
                if k.startswith(CONTEXT_PREFIX) and row[i]
            }
        )
    try:
        return Impressions(
            np.array(users, np.int64), np.array(items, np.int64), np.array(labels), contexts
        )
    except OverflowError as exc:
        raise ConfigError(f"id out of int64 range: {exc}", key=str(path)) from exc


def _check_header(header: list[str], path: Path) -> dict[str, int]:
    columns = {name: i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in header if c not in REQUIRED and not c.startswith(CONTEXT_PREFIX)]
    if missing or unknown or len(columns) != len(header):
        raise ConfigError(
            f"impressions header needs {list(REQUIRED)} and 'context.<field>' columns, each once;"
            f" missing {missing}, unknown {unknown}",
            key=str(path),
        )
    return columns


@dataclass(frozen=True, slots=True)
class SyntheticImpressions:
    impressions: Path
    users_file: Path
    items_file: Path
    spec_file: Path
    truth: LRModel  # the model the labels were drawn from


def make_impressions(
    root: Path, n_rows: int = 50_000, seed: int = 7, n_items: int = 2_000, n_users: int = 1_000
) -> SyntheticImpressions:
    """Write synthetic feature files, a spec and impressions labelled by a known true model.

    Impressions come in jobs of ~10 Zipf-popular items sharing a user and context; about 2% name
    items absent from the items file (new items). Labels are Bernoulli draws of the kernel's
    probabilities under a random "true" model, so a fitted model can be checked against it.
    """
    spec = demo_spec()
    rng = np.random.default_rng(seed)
    raw_items, raw_users = random_items(n_items, spec, seed), random_users(n_users, spec, seed + 1)
    items = ItemTable.from_raw(raw_items.ids, raw_items.categorical, raw_items.dense)
    n_jobs = max(n_rows // 10, 1)
    cands, splits = zipf_candidates(rng, items.ids, n_jobs, mean_candidates=10)
    new = rng.random(cands.size) < 0.02
    cands[new] = 10**12 + rng.integers(0, 50, int(new.sum()))
    batch = ScoringBatch(
        user_ids=rng.integers(0, n_users, n_jobs).astype(np.int64),
        contexts=random_contexts(rng, spec, n_jobs),
        candidates=cands,
        row_splits=splits,
        top_k=np.ones(n_jobs, np.int32),
    )
    truth = _true_model(spec, seed)
    users = UserFeatures.from_raw(raw_users.categorical, raw_users.dense).take(batch.user_ids)
    labels = rng.random(cands.size) < Scorer().predict(truth, batch, users, items)
    out = SyntheticImpressions(
        root / "impressions.csv", root / "users.csv", root / "items.csv", root / "spec.json", truth
    )
    write_entity_csv(
        out.users_file,
        "user_id",
        np.asarray(raw_users.ids, np.int64),
        raw_users.categorical,
        raw_users.dense,
    )
    write_entity_csv(
        out.items_file,
        "item_id",
        np.asarray(raw_items.ids, np.int64),
        raw_items.categorical,
        raw_items.dense,
    )
    out.spec_file.write_text(json.dumps(spec_to_json(spec), indent=2) + "\n", encoding="utf-8")
    _write_impressions(out.impressions, spec, batch, labels)
    return out


def _true_model(spec: FeatureSpec, seed: int, bits: int = 16) -> LRModel:
    rng = np.random.default_rng(seed + 2)
    return LRModel(
        name="truth",
        version=str(seed),
        created_at="2026-01-01T00:00:00+00:00",
        hash_bits=bits,
        spec=spec,
        bias=-1.0,
        weights=rng.normal(0.0, 0.6, 1 << bits).astype(np.float32),
        dense_weights=rng.normal(0.0, 0.5, len(spec.dense)).astype(np.float32),
    )


def _write_impressions(
    path: Path, spec: FeatureSpec, batch: ScoringBatch, labels: NDArray[np.bool_]
) -> None:
    job = np.repeat(np.arange(batch.n_jobs), batch.counts())
    fields = list(spec.context_fields)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REQUIRED, *(f"{CONTEXT_PREFIX}{f}" for f in fields)])
        for j, item, label in zip(
            job.tolist(), batch.candidates.tolist(), labels.tolist(), strict=True
        ):
            ctx = batch.contexts[j]
            user = int(batch.user_ids[j])
            writer.writerow([user, item, int(label), *(ctx.get(f, "") for f in fields)])
