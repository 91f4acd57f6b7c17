"""`stream-scorer train`: fit a logistic-regression model on logged impressions; write an artifact.

Impressions file: CSV with a header row and one impression per row.

    user_id,item_id,label,context.device,context.hour,context.page
    17,1001,1,ios,hour-9,home

- ``user_id``, ``item_id``: int64 ids; ``label``: ``1`` (clicked) or ``0``;
- ``context.<field>``: the job's context value for ``<field>`` (empty cell: absent);
- any other column is an error, so a misspelt column cannot silently drop a feature.

User and item features are joined from the same CSV feature files the scorer serves from
(``consumer.features.read_entity_csv``); ids absent from them get missing values, exactly as in
serving. The design matrix is built by ``scoring.training.hashed_design`` (the serving term code),
so the written model scores like the fitted estimator. The spec file is JSON: a bare spec object or
a whole ``manifest.json`` (its ``spec`` is used), keys as in the manifest.

scikit-learn (and scipy) are imported only when fitting: ``pip install 'stream-scorer[train]'``.
Bad input raises ``ConfigError``; the command prints it and exits 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from consumer.errors import ConfigError
from consumer.features import gather_users, read_entity_csv, write_entity_csv
from scoring.batch import ScoringBatch
from scoring.errors import InputError
from scoring.features import ItemTable, UserFeatures
from scoring.hashing import MAX_BITS, MIN_BITS
from scoring.kernel import Scorer
from scoring.model import LRModel, save_model
from scoring.spec import DenseFeature, FeatureSpec
from scoring.synthetic import (
    demo_spec,
    random_contexts,
    random_items,
    random_users,
    zipf_candidates,
)
from scoring.training import hashed_design, model_from_coefficients

log = logging.getLogger(__name__)

CONTEXT_PREFIX = "context."
REQUIRED = ("user_id", "item_id", "label")
_SPEC_KEYS = frozenset({"user_fields", "item_fields", "context_fields", "crosses", "dense"})
_MISSING_SKLEARN = "scikit-learn is not installed: pip install 'stream-scorer[train]'"


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


@dataclass(frozen=True, slots=True)
class TrainOptions:
    name: str
    version: str
    hash_bits: int = 20
    c: float = 1.0
    max_iter: int = 1000
    holdout: float = 0.1
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TrainResult:
    model: LRModel
    estimator: Any  # the fitted sklearn LogisticRegression
    holdout: Impressions
    holdout_auc: float | None  # None when the holdout lacks a label class


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


def read_spec(path: Path) -> FeatureSpec:
    """A feature spec from JSON: a spec object, or a model manifest whose ``spec`` is used."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw = raw["spec"] if isinstance(raw, dict) and "spec" in raw else raw
        if not isinstance(raw, dict) or set(raw) != _SPEC_KEYS:
            raise ValueError(f"a spec object needs exactly the keys {sorted(_SPEC_KEYS)}")
        return FeatureSpec(
            user_fields=tuple(raw["user_fields"]),
            item_fields=tuple(raw["item_fields"]),
            context_fields=tuple(raw["context_fields"]),
            crosses=tuple((a, b) for a, b in raw["crosses"]),
            dense=tuple(
                DenseFeature(d["name"], float(d["mean"]), float(d["std"]), float(d["default"]))
                for d in raw["dense"]
            ),
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:  # InputError is a ValueError
        raise ConfigError(f"invalid feature spec: {exc}", key=str(path)) from exc


def spec_json(spec: FeatureSpec) -> dict[str, object]:
    """The JSON form ``read_spec`` reads."""
    return {
        "user_fields": list(spec.user_fields),
        "item_fields": list(spec.item_fields),
        "context_fields": list(spec.context_fields),
        "crosses": [list(c) for c in spec.crosses],
        "dense": [
            {"name": d.name, "mean": d.mean, "std": d.std, "default": d.default} for d in spec.dense
        ],
    }


def design_matrix(
    spec: FeatureSpec, bits: int, users: ItemTable, items: ItemTable, imp: Impressions
) -> Any:
    """The CSR design matrix (hashed slots, then standardized dense features) of ``imp``."""
    import scipy.sparse as sp  # type: ignore[import-untyped]  # comes with scikit-learn

    d = hashed_design(
        spec, bits, gather_users(users, imp.user_ids), imp.contexts, items, imp.item_ids
    )
    ones = np.ones(d.indices.size)
    sparse = sp.csr_matrix((ones, d.indices, d.indptr), shape=(d.n_rows, d.n_weights))
    return sp.hstack([sparse, sp.csr_matrix(d.dense)], format="csr")


def train(
    imp: Impressions,
    users: ItemTable,
    items: ItemTable,
    spec: FeatureSpec,
    options: TrainOptions,
    created_at: str,
) -> TrainResult:
    """Fit on ``imp`` minus a seeded random holdout; the model serves like the estimator."""
    try:
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
        from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(_MISSING_SKLEARN) from exc
    _check_options(options)
    order = np.random.default_rng(options.seed).permutation(len(imp))
    n_holdout = int(len(imp) * options.holdout)
    fit_rows, held = imp.take(order[n_holdout:]), imp.take(order[:n_holdout])
    if np.unique(fit_rows.labels).size < 2:
        raise ConfigError("impressions to fit on need both labels, 0 and 1")
    x = design_matrix(spec, options.hash_bits, users, items, fit_rows)
    estimator = LogisticRegression(C=options.c, max_iter=options.max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(x, fit_rows.labels)
    for warning in caught:
        log.warning("fit: %s", warning.message)
    model = model_from_coefficients(
        options.name,
        options.version,
        created_at,
        spec,
        options.hash_bits,
        estimator.coef_[0],
        float(estimator.intercept_[0]),
    )
    auc = None
    if np.unique(held.labels).size == 2:
        x_held = design_matrix(spec, options.hash_bits, users, items, held)
        auc = float(roc_auc_score(held.labels, estimator.predict_proba(x_held)[:, 1]))
    return TrainResult(model, estimator, held, auc)


def _check_options(options: TrainOptions) -> None:
    checks = [
        (
            MIN_BITS <= options.hash_bits <= MAX_BITS,
            f"--hash-bits must be in {MIN_BITS}..{MAX_BITS}",
        ),
        (options.c > 0, "--C must be > 0"),
        (0 <= options.holdout < 1, "--holdout must be in [0, 1)"),
        (options.max_iter >= 1, "--max-iter must be >= 1"),
        (bool(options.version), "--version must not be empty"),
        (
            bool(options.name) and "/" not in options.name and not options.name.startswith("."),
            "--name must be a non-empty directory name not starting with '.'",
        ),
    ]
    for ok, reason in checks:
        if not ok:
            raise ConfigError(reason)


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
    out.spec_file.write_text(json.dumps(spec_json(spec), indent=2) + "\n", encoding="utf-8")
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


def add_train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``train`` on the CLI's subparsers."""
    p = sub.add_parser("train", help="fit an LR model on logged impressions, write an artifact")
    p.add_argument("--impressions", required=True, help="impressions CSV (see the README)")
    p.add_argument("--users-file", help="user feature CSV, as served (default: no user features)")
    p.add_argument("--items-file", help="item feature CSV, as served (default: no item features)")
    p.add_argument("--spec", help="feature spec JSON, or a manifest.json (default: the demo spec)")
    p.add_argument("--name", required=True, help="model name (also the artifact directory name)")
    p.add_argument("--version", help="model version (default: the UTC time, YYYYMMDDTHHMMSSZ)")
    p.add_argument("--hash-bits", type=int, default=20, help="log2 of the weight table size")
    p.add_argument("--C", dest="c", type=float, default=1.0, help="inverse L2 strength")
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--holdout", type=float, default=0.1, help="share of rows held out for AUC")
    p.add_argument("--seed", type=int, default=0, help="seed of the holdout split")
    p.add_argument("--out", required=True, help="models directory: writes OUT/NAME atomically")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``train``: 0 on success, 2 on bad input (message on stderr)."""
    now = datetime.now(UTC)
    options = TrainOptions(
        args.name,
        args.version or now.strftime("%Y%m%dT%H%M%SZ"),
        args.hash_bits,
        args.c,
        args.max_iter,
        args.holdout,
        args.seed,
    )
    try:
        _check_options(options)
        spec = read_spec(Path(args.spec)) if args.spec else demo_spec()
        users, items = _entities(args.users_file), _entities(args.items_file)
        imp = read_impressions(Path(args.impressions))
        result = train(imp, users, items, spec, options, now.isoformat(timespec="seconds"))
    except (ConfigError, InputError) as exc:
        print(f"stream-scorer train: {exc}", file=sys.stderr)
        return 2
    target = Path(args.out) / options.name
    save_model(result.model, target)
    auc = "n/a" if result.holdout_auc is None else f"{result.holdout_auc:.4f}"
    print(
        f"wrote {options.name} version {options.version} to {target}: "
        f"{len(imp) - len(result.holdout)} rows fitted, holdout AUC {auc}"
    )
    return 0


def _entities(path: str | None) -> ItemTable:
    if not path:
        return ItemTable.from_raw(np.zeros(0, np.int64), {}, {})
    return read_entity_csv(Path(path))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumer.train --make-impressions DIR``; any other arguments run ``train``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["--make-impressions"]:
        gen = argparse.ArgumentParser(prog="python -m consumer.train")
        gen.add_argument("--make-impressions", required=True, metavar="DIR")
        gen.add_argument("--rows", type=int, default=50_000)
        gen.add_argument("--seed", type=int, default=7)
        args = gen.parse_args(argv)
        root = Path(args.make_impressions)
        root.mkdir(parents=True, exist_ok=True)
        made = make_impressions(root, args.rows, args.seed)
        print(f"wrote {made.impressions}, {made.users_file}, {made.items_file}, {made.spec_file}")
        return 0
    parser = argparse.ArgumentParser(prog="python -m consumer.train")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
