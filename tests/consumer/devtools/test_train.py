"""`stream-scorer train`: the written artifact serves exactly like the fitted estimator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from consumer.devtools.train import (
    SyntheticImpressions,
    TrainOptions,
    add_train_parser,
    design_matrix,
    make_impressions,
    read_impressions,
    read_spec,
    train,
)
from consumer.errors import ConfigError
from consumer.features.files import gather_users, read_entity_csv
from scoring.kernel import Scorer
from scoring.model import load_model, save_model
from scoring.model import spec_to_json as spec_json
from scoring.synthetic import demo_spec, random_model

BITS = 14


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticImpressions:
    return make_impressions(tmp_path_factory.mktemp("impressions"), n_rows=12_000, seed=3)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    code: int = args.func(args)
    return code


def train_args(s: SyntheticImpressions, out: Path) -> list[str]:
    return [
        "--impressions", str(s.impressions), "--users-file", str(s.users_file),
        "--items-file", str(s.items_file), "--spec", str(s.spec_file), "--name", "ctr",
        "--version", "t1", "--hash-bits", str(BITS), "--C", "0.3", "--out", str(out),
    ]  # fmt: skip


def test_synthetic_impressions_have_both_labels_and_new_items(
    synthetic: SyntheticImpressions,
) -> None:
    imp = read_impressions(synthetic.impressions)
    assert 10_000 < len(imp) < 14_000
    assert 0.2 < imp.labels.mean() < 0.8
    items = read_entity_csv(synthetic.items_file)
    unknown = ~np.isin(imp.item_ids, items.ids)
    assert 0.005 < unknown.mean() < 0.05
    assert any("device" in c for c in imp.contexts)
    assert read_spec(synthetic.spec_file) == demo_spec()


def test_served_artifact_matches_sklearn_on_held_out_rows(
    synthetic: SyntheticImpressions, tmp_path: Path
) -> None:
    imp = read_impressions(synthetic.impressions)
    users, items = read_entity_csv(synthetic.users_file), read_entity_csv(synthetic.items_file)
    spec = read_spec(synthetic.spec_file)
    options = TrainOptions("ctr", "t1", hash_bits=BITS, c=0.3, holdout=0.25, seed=1)
    result = train(imp, users, items, spec, options, "2026-01-01T00:00:00+00:00")
    save_model(result.model, tmp_path / "ctr")

    loaded = load_model(tmp_path / "ctr")
    held = result.holdout
    assert len(held) == int(len(imp) * 0.25)
    assert (~np.isin(held.item_ids, items.ids)).any(), "new items are scored from their id"
    served = Scorer().predict(loaded, held.as_batch(), gather_users(users, held.user_ids), items)
    x = design_matrix(spec, BITS, users, items, held)
    expected = result.estimator.predict_proba(x)[:, 1]
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert np.ptp(expected) > 0.5
    assert result.holdout_auc is not None
    assert result.holdout_auc > 0.8


def test_cli_writes_a_loadable_artifact(
    synthetic: SyntheticImpressions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(train_args(synthetic, tmp_path / "models")) == 0
    model = load_model(tmp_path / "models" / "ctr")
    assert (model.name, model.version, model.hash_bits) == ("ctr", "t1", BITS)
    assert model.spec == demo_spec()
    assert np.count_nonzero(model.weights) > 1000
    out = capsys.readouterr().out
    auc = float(out.rsplit("holdout AUC ", 1)[1])
    assert auc > 0.8


def test_spec_may_be_a_model_manifest(tmp_path: Path) -> None:
    spec = demo_spec()
    save_model(random_model("m", "1", spec, hash_bits=8), tmp_path / "m")
    assert read_spec(tmp_path / "m" / "manifest.json") == spec
    (tmp_path / "spec.json").write_text(json.dumps(spec_json(spec)))
    assert read_spec(tmp_path / "spec.json") == spec


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


HEADER = "user_id,item_id,label,context.device\n"
UNKNOWN_CROSS = json.dumps({**spec_json(demo_spec()), "crosses": [["user.nope", "item.id"]]})
BAD_FILES = [
    pytest.param("--impressions", None, "cannot read impressions", id="missing"),
    pytest.param("--impressions", "", "no rows", id="empty"),
    pytest.param("--impressions", HEADER, "no rows", id="header-only"),
    pytest.param("--impressions", "user_id,item_id\n1,2\n", "missing ['label']", id="no-label"),
    pytest.param(
        "--impressions", "user_id,item_id,label,contxt.device\n1,2,1,a\n",
        "unknown ['contxt.device']", id="misspelt-column",
    ),
    pytest.param("--impressions", HEADER + "1,2,1,a\n1,3,2,a\n", "line 3", id="label-2"),
    pytest.param("--impressions", HEADER + "x,2,1,a\n", "line 2", id="id-not-a-number"),
    pytest.param("--impressions", HEADER + "1,2,1\n", "line 2: 3 cells", id="short-row"),
    pytest.param("--impressions", HEADER + f"{2**64},2,1,a\n", "int64", id="huge-id"),
    pytest.param("--impressions", HEADER + "1,2,0,a\n1,3,0,a\n", "both labels", id="one-label"),
    pytest.param("--spec", '{"user_fields": []}', "invalid feature spec", id="spec-keys"),
    pytest.param("--spec", "{", "invalid feature spec", id="spec-json"),
    pytest.param("--spec", UNKNOWN_CROSS, "unknown field", id="spec-cross"),
    pytest.param("--items-file", None, "cannot read feature file", id="missing-items"),
    pytest.param("--users-file", "user_id,age:float\n1,old\n", "'old' is not a number", id="users"),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "text", "message"), BAD_FILES)
def test_bad_input_file_exits_2_with_a_clear_message(
    flag: str,
    text: str | None,
    message: str,
    synthetic: SyntheticImpressions,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "input"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    out = tmp_path / "models"
    assert run([*train_args(synthetic, out), flag, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stream-scorer train: ")
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--hash-bits", "40"], "--hash-bits"), (["--C", "0"], "--C"), (["--name", "../x"], "--name")],
)
def test_bad_option_exits_2(
    args: list[str],
    message: str,
    synthetic: SyntheticImpressions,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run([*train_args(synthetic, tmp_path / "models"), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_scikit_learn_is_a_clear_error(
    synthetic: SyntheticImpressions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    imp = read_impressions(synthetic.impressions)
    empty = read_entity_csv(synthetic.items_file)
    with pytest.raises(ConfigError, match=r"pip install 'stream-scorer\[train\]'"):
        train(imp, empty, empty, demo_spec(), TrainOptions("ctr", "1", hash_bits=8), "now")
