"""Column options are checked on every command, and no column is silently left out or mixed up
(issue 14: ``--id-column rowid`` for ``row_id`` used to train on the id; a numeric column with
one stray text cell, or a True/False column, used to be dropped without a word)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowad import load
from flowad.cli import app

SMALL = ["--epochs", "2", "--set", "n_couplings=1", "--set", "hidden=[8]", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("columns")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    df["site"] = np.where(np.arange(60) < 30, "north", "south")
    df["row_id"] = np.arange(60) + 1000
    df["is_anomaly"] = (np.arange(60) % 20 == 0).astype(int)
    df.to_csv(folder / "train.csv", index=False)
    stray = df.astype({"b": object})
    stray.loc[7, "b"] = "n/a?"
    stray.to_csv(folder / "stray.csv", index=False)
    flags = df.copy()
    flags["flag"] = np.arange(60) % 3 == 0
    flags.to_csv(folder / "flags.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def models(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    out = {"realnvp": folder / "r.flowad", "adaflow": folder / "a.flowad"}
    base = ["--id-column", "row_id", "--label-column", "is_anomaly"]
    assert _run("fit", files / "train.csv", "-o", out["realnvp"], *base, *SMALL)[0] == 0
    assert _run("fit", files / "train.csv", "-o", out["adaflow"], "-m", "adaflow", "--domain-column", "site", *base, "--epochs", "2", "-q")[0] == 0
    return out


def _run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _one_line_error(args: list[object], message: str) -> str:
    code, out = _run(*args)
    assert code == 2, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("flowad: error: "), out
    assert re.search(message, lines[0]), lines[0]
    return lines[0]


AVAILABLE = re.escape("available: ['a', 'b', 'site', 'row_id', 'is_anomaly']")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--id-column", "rowid"], r"Id column 'rowid' is not in the data \(--id-column\); " + AVAILABLE),
        (["--label-column", "label"], r"Label column 'label' is not in the data \(--label-column\); " + AVAILABLE),
        (["-m", "adaflow", "--domain-column", "zone"], r"Domain column 'zone' is not in the data \(--domain-column\)"),
        (["--columns", "a,bb"], r"Columns \['bb'\] are not in the data \(--columns\); " + AVAILABLE),
        (["--columns", "a,row_id", "--id-column", "row_id"], r"Column 'row_id' is given both to --columns and to --id-column"),
        (["--id-column", "row_id", "--label-column", "row_id"], r"given both to --id-column and to --label-column"),
        (["--domain-column", "site"], r"--domain-column applies to multi-domain models \(--model adaflow\); robust-realnvp models one domain"),
        (["--seed", str(2**70)], r"random_state must be an int in \[0, 2\*\*63 - 2\], got 1180591620717411303424"),
        (["--set", "lipschitz_k=Infinity"], r"lipschitz_k must be None or a float > 0 and finite, got inf"),
        (["--set", "lr=1e6", "--epochs", "30"], r"Training diverged: the mean loss of epoch \d+ is .* lr=1000000.0"),
    ],
)
def test_fit_checks_every_column_option_and_parameter(files: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    _one_line_error(["fit", files / "train.csv", "-o", tmp_path / "m.flowad", *SMALL, *extra], message)
    assert not (tmp_path / "m.flowad").exists()


def test_fit_with_the_right_names_leaves_id_label_and_text_out(files: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.flowad"
    code, out = _run("fit", files / "train.csv", "-o", model, "--id-column", "row_id", "--label-column", "is_anomaly", "--epochs", "2")
    assert code == 0, out
    assert list(load(model).feature_names_in_) == ["a", "b"]
    assert "features (a, b); left out text column(s) ['site']" in out


@pytest.mark.parametrize("command", ["fit", "score", "adapt", "translate"])
def test_a_stray_text_cell_is_reported_with_its_column_row_and_value(files: Path, models: dict[str, Path], tmp_path: Path, command: str) -> None:
    data = files / "stray.csv"
    args: list[object] = {
        "fit": ["fit", data, "-o", tmp_path / "m.flowad", "--id-column", "row_id", "--label-column", "is_anomaly", *SMALL],
        "score": ["score", models["realnvp"], data, "-o", tmp_path / "s.csv"],
        "adapt": ["adapt", models["adaflow"], data, "--domain", "east", "-o", tmp_path / "m.flowad"],
        "translate": ["translate", models["adaflow"], data, "--source", "north", "--target", "south", "-o", tmp_path / "t.csv"],
    }[command]
    _one_line_error(args, r"Column 'b' holds numbers \(59 cells\) but also text that is not a number at row 7: 'n/a\?'")


def test_fit_with_explicit_columns_reports_a_stray_text_cell_too(files: Path, tmp_path: Path) -> None:
    _one_line_error(["fit", files / "stray.csv", "-o", tmp_path / "m.flowad", "--columns", "a,b", *SMALL], r"Column 'b' .* at row 7: 'n/a\?'")
    _one_line_error(["fit", files / "stray.csv", "-o", tmp_path / "m.flowad", "--columns", "a,site", *SMALL], r"Column 'site' is text")


def test_boolean_columns_are_features_as_0_and_1_like_in_the_api(files: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.flowad"
    code, out = _run("fit", files / "flags.csv", "-o", model, "--id-column", "row_id", "--label-column", "is_anomaly", *SMALL)
    assert code == 0, out
    det = load(model)
    assert list(det.feature_names_in_) == ["a", "b", "flag"]
    assert _run("score", model, files / "flags.csv", "-o", tmp_path / "s.csv", "--id-column", "row_id", "-q")[0] == 0
    df = pd.read_csv(files / "flags.csv")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")["anomaly_score"], det.decision_function(df[["a", "b", "flag"]]))
    as_numbers = df[["a", "b", "flag"]].astype({"flag": float})
    np.testing.assert_allclose(det.decision_function(df[["a", "b", "flag"]]), det.decision_function(as_numbers))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["score", "{realnvp}", "{data}", "-o", "{tmp}/s.csv", "--id-column", "rowid"], r"Id column 'rowid' is not in the data \(--id-column\)"),
        (["score", "{adaflow}", "{data}", "-o", "{tmp}/s.csv", "--domain-column", "zone"], r"Domain column 'zone' is not in the data"),
        (["score", "{realnvp}", "{data}", "-o", "{tmp}/s.csv", "--columns", "a,zz"], r"Columns \['zz'\] are not in the data"),
        (["adapt", "{adaflow}", "{data}", "--domain", "d", "-o", "{tmp}/m.flowad", "--columns", "a,zz"], r"Columns \['zz'\] are not in the data"),
        (["translate", "{adaflow}", "{data}", "--source", "north", "--target", "south", "-o", "{tmp}/t.csv", "--id-column", "rowid"],
         r"Id column 'rowid' is not in the data"),
        (["score", "{realnvp}", "{data}", "-o", "{tmp}/s.csv", "--id-column", "a", "--columns", "a,b"], r"Column 'a' is given both"),
    ],
)
def test_other_commands_check_their_column_options(files: Path, models: dict[str, Path], tmp_path: Path, command: list[str], message: str) -> None:
    args = [a.format(data=files / "train.csv", tmp=tmp_path, **models) for a in command]
    _one_line_error(args, message)


def test_missing_cells_are_reported_by_column_not_dropped(files: Path, tmp_path: Path) -> None:
    df = pd.read_csv(files / "flags.csv")
    df["flag"] = df["flag"].astype(object)
    df.loc[4, "flag"] = None  # a True/False column with a blank cell is read as text by pandas
    df.loc[9, "a"] = np.nan
    df.to_csv(tmp_path / "blank.csv", index=False)
    message = r"Feature column\(s\) \['a', 'flag'\] have empty or missing cells \(2 in all, first in column 'a' at row 9\)"
    _one_line_error(["fit", tmp_path / "blank.csv", "-o", tmp_path / "m.flowad", "--id-column", "row_id", "--label-column", "is_anomaly", *SMALL], message)


def test_numbers_stored_as_text_are_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["a,b,name"] + [f"{x:.4f},\"{y:.4f}\",n{i}" for i, (x, y) in enumerate(rng.normal(size=(40, 2)))]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    frame = pd.read_csv(tmp_path / "t.csv", dtype={"b": str})
    assert not pd.api.types.is_numeric_dtype(frame["b"])
    from flowad.cli._common import check_numeric, default_features

    assert default_features(frame, []) == (["a", "b"], ["name"])
    assert check_numeric(frame[["a", "b"]])["b"].dtype == np.float64
