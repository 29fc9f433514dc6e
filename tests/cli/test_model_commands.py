"""`flowad fit / score / info / adapt / translate` end to end on real files in a temp folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowad import load
from flowad.cli import app

SMALL = ["--epochs", "3", "--set", "n_couplings=2", "--set", "hidden=[8]", "-q"]
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["site"] = np.where(np.arange(200) < 100, "north", "south")
    df.loc[df.site == "south", ["a", "b"]] += 3.0
    df["rid"] = [f"r{i}" for i in range(200)]
    df["y"] = 0
    df.to_csv(folder / "train.csv", index=False)
    df.to_parquet(folder / "train.parquet", index=False)
    np.save(folder / "train.npy", df[["a", "b", "c"]].to_numpy())
    np.savez(folder / "train.npz", X=df[["a", "b", "c"]].to_numpy(), y=df["y"].to_numpy())
    return folder


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("name", ["train.csv", "train.parquet", "train.npy", "train.npz"])
def test_fit_score_round_trip_every_format(files: Path, tmp_path: Path, name: str) -> None:
    model = tmp_path / "m.flowad"
    extra = {"train.csv": ["--id-column", "rid", "--label-column", "y"], "train.parquet": ["--id-column", "rid", "--label-column", "y"], "train.npz": ["--label-column", "y"]}
    code, out = run("fit", files / name, "-o", model, *extra.get(name, []), *SMALL)
    assert code == 0, out
    det = load(model)
    expected = ["a", "b", "c", "site"] if name.endswith(("csv", "parquet")) else ["x0", "x1", "x2"]
    assert list(det.feature_names_in_) == [c for c in expected if c != "site"]  # 'site' is text, not a feature
    scores_file = tmp_path / "scores.csv"
    code, out = run("score", model, files / name, "-o", scores_file, "-q")
    assert code == 0, out
    scores = pd.read_csv(scores_file)
    assert list(scores.columns) == ["id", "anomaly_score", "log_density", "label"]
    assert len(scores) == 200 and np.isfinite(scores["anomaly_score"]).all()
    np.testing.assert_allclose(scores["anomaly_score"], -scores["log_density"])
    assert set(scores["label"]) <= {0, 1}


def test_score_keeps_row_ids_and_matches_python_api(files: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.flowad"
    assert run("fit", files / "train.csv", "-o", model, "--id-column", "rid", "--label-column", "y", "--columns", "a,b,c", *SMALL)[0] == 0
    assert run("score", model, files / "train.csv", "-o", tmp_path / "s.parquet", "--id-column", "rid", "-q")[0] == 0
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert scores["id"].tolist()[:3] == ["r0", "r1", "r2"]
    df = pd.read_csv(files / "train.csv")
    det = load(model)
    np.testing.assert_allclose(scores["anomaly_score"], det.decision_function(df[["a", "b", "c"]]))
    np.testing.assert_array_equal(scores["label"], det.predict(df[["a", "b", "c"]]))


def test_adaflow_fit_adapt_score_translate_info(files: Path, tmp_path: Path) -> None:
    model = tmp_path / "ada.flowad"
    code, out = run("fit", files / "train.csv", "-o", model, "-m", "adaflow", "--domain-column", "site", "--id-column", "rid", "--label-column", "y", "--epochs", "3", "-q")
    assert code == 0, out
    code, out = run("score", model, files / "train.csv", "-o", tmp_path / "s.csv", "--domain-column", "site", "--id-column", "rid", "-q")
    assert code == 0, out
    before = (model).read_bytes()
    code, out = run("adapt", model, files / "train.csv", "--domain", "east", "--columns", "a,b,c")
    assert code == 0, out
    assert model.read_bytes() != before and "east" in load(model).domains_
    code, out = run("info", model)
    assert code == 0 and "'east'" in out and "'north'" in out and "adaflow" in out
    w = load(model).mixture_weights_["east"]
    assert "'east': threshold" in out and f"flow weight {w:g} in w*p_flow + (1-w)*p_gauss" in out
    code, out = run("translate", model, files / "train.csv", "--source", "north", "--target", "south", "-o", tmp_path / "t.csv", "--id-column", "rid", "-q")
    assert code == 0, out
    moved = pd.read_csv(tmp_path / "t.csv")
    assert list(moved.columns) == ["id", "a", "b", "c"] and len(moved) == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "{model}", "{files}/missing.csv", "-o", "{tmp}/s.csv"], "does not exist"),
        (["score", "{tmp}/nope.flowad", "{files}/train.csv", "-o", "{tmp}/s.csv"], "does not exist"),
        (["score", "{files}/train.csv", "{files}/train.csv", "-o", "{tmp}/s.csv"], "not a readable flowad model"),
        (["score", "{model}", "{files}/train.npy", "-o", "{tmp}/s.csv"], "lacks the model's feature columns"),
        (["score", "{model}", "{files}/train.csv", "-o", "{tmp}/s.csv", "--columns", "a,zz"], r"Columns \['zz'\] are not in the data"),
        (["score", "{model}", "{files}/train.csv", "-o", "{tmp}/s.xlsx"], "Unsupported file type"),
        (["score", "{model}", "{files}/train.csv", "-o", "{tmp}/no/dir/s.csv"], "Output folder"),
        (["score", "{model}", "{files}/train.csv", "-o", "{tmp}/s.csv", "--domain", "x"], "single-domain RobustRealNVP model"),
        (["fit", "{files}/train.csv", "-o", "{tmp}/m.flowad", "-m", "lstm"], "--model must be one of"),
        (["fit", "{files}/train.csv", "-o", "{tmp}/m.flowad", "--contamination", "0.9"], "contamination must be"),
        (["fit", "{files}/train.csv", "-o", "{tmp}/m.flowad", "-m", "adaflow", "--domain-column", "zone"], "Domain column 'zone' is not in the data"),
        (["fit", "{files}/train.csv", "-o", "{tmp}/m.flowad", "--set", "oops"], "--set expects KEY=VALUE"),
        (["adapt", "{model}", "{files}/train.csv", "--domain", "d"], "no domains to adapt"),
        (["translate", "{model}", "{files}/train.csv", "--source", "a", "--target", "b", "-o", "{tmp}/t.csv"], "cannot translate"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(files: Path, tmp_path: Path, args: list[str], message: str) -> None:
    model = tmp_path / "m.flowad"
    assert run("fit", files / "train.csv", "-o", model, "--id-column", "rid", "--label-column", "y", "--columns", "a,b,c", *SMALL)[0] == 0
    args = [a.format(model=model, files=files, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("flowad: error: "), result.output
    assert re.search(message, lines[0]), lines[0]


def test_help_texts() -> None:
    for cmd in ("fit", "score", "info", "adapt", "translate", "demo"):
        code, out = run(cmd, "--help")
        assert code == 0 and "Usage" in out


def test_dask_options_need_dask_and_a_folder_needs_dask(files: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.flowad"
    assert run("fit", files / "train.parquet", "-o", model, "--id-column", "rid", "--label-column", "y", *SMALL)[0] == 0
    code, out = run("score", model, files / "train.parquet", "-o", tmp_path / "s.csv", "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and out.strip() == "flowad: error: --scheduler and --workers apply to --dask runs; add --dask."
    code, out = run("score", model, files, "-o", tmp_path / "s.csv")
    assert code == 2 and out.startswith("flowad: error: ") and "is a folder; add --dask" in out
    code, out = run("adapt", model, files, "--domain", "x", "-o", tmp_path / "a.flowad")
    assert code == 2 and "is a folder; add --dask" in out


def test_dask_score_refuses_bad_options_before_starting_a_cluster(files: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    model = tmp_path / "m.flowad"
    assert run("fit", files / "train.parquet", "-o", model, "--id-column", "rid", "--label-column", "y", *SMALL)[0] == 0
    code, out = run("score", model, files, "-o", tmp_path / "out", "--dask", "--on-bad", "ignore")
    assert code == 2 and out.strip() == "flowad: error: --on-bad must be 'stop' or 'skip', got 'ignore'."
    code, out = run("score", model, files, "-o", tmp_path / "out", "--dask", "--scheduler", "tcp://h:1", "--workers", "2")
    assert code == 2 and "Give --scheduler or --workers, not both" in out
