"""`stream-scorer train`: fit a logistic-regression model on logged impressions; write an artifact.

The impressions file format lives in `consumer.devtools.impressions`.

User and item features are joined from the same CSV feature files the scorer serves from
(``consumer.features.files.read_entity_csv``); ids absent from them get missing values, exactly
as in serving. The design matrix is built by ``scoring.training.hashed_design`` (the serving term
code), so the written model scores like the fitted estimator. The spec file is JSON: a bare spec
object or a whole ``manifest.json`` (its ``spec`` is used), keys as in the manifest.

scikit-learn (and scipy) are imported only when fitting: ``pip install 'stream-scorer[train]'``.
Bad input raises ``ConfigError``; the command prints it and exits 2.
"""

from __future__ import annotations

import argparse
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

from consumer.devtools.impressions import (
    Impressions,
    SyntheticImpressions,
    make_impressions,
    read_impressions,
)
from consumer.errors import ConfigError
from consumer.features.files import gather_users, read_entity_csv
from scoring.errors import InputError
from scoring.features import ItemTable
from scoring.hashing import MAX_BITS, MIN_BITS
from scoring.model import LRModel, save_model, spec_from_json
from scoring.spec import FeatureSpec
from scoring.synthetic import (
    demo_spec,
)
from scoring.training import hashed_design, model_from_coefficients

log = logging.getLogger(__name__)

__all__ = [
    "Impressions",
    "SyntheticImpressions",
    "TrainOptions",
    "TrainResult",
    "add_train_parser",
    "cmd_train",
    "design_matrix",
    "make_impressions",
    "read_impressions",
    "read_spec",
    "train",
]

_MISSING_SKLEARN = "scikit-learn is not installed: pip install 'stream-scorer[train]'"


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


def read_spec(path: Path) -> FeatureSpec:
    """A feature spec from JSON: a spec object, or a model manifest whose ``spec`` is used."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return spec_from_json(raw["spec"] if isinstance(raw, dict) and "spec" in raw else raw)
    except (OSError, ValueError) as exc:  # InputError is a ValueError
        raise ConfigError(f"invalid feature spec: {exc}", key=str(path)) from exc


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
    p.add_argument("--max-iter", type=int, default=1000, help="solver iterations (default 1000)")
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
    """``python -m consumer.devtools.train --make-impressions DIR``; other arguments: ``train``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["--make-impressions"]:
        gen = argparse.ArgumentParser(prog="python -m consumer.devtools.train")
        gen.add_argument("--make-impressions", required=True, metavar="DIR")
        gen.add_argument("--rows", type=int, default=50_000)
        gen.add_argument("--seed", type=int, default=7)
        args = gen.parse_args(argv)
        root = Path(args.make_impressions)
        root.mkdir(parents=True, exist_ok=True)
        made = make_impressions(root, args.rows, args.seed)
        print(f"wrote {made.impressions}, {made.users_file}, {made.items_file}, {made.spec_file}")
        return 0
    parser = argparse.ArgumentParser(prog="python -m consumer.devtools.train")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
