"""``flowad image fit / score / translate`` on tiny folders; one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import flowad.cli._image  # noqa: F401  (registers `flowad image` until flowad.cli imports it)
from flowad.cli import app
from flowad.detectors import load
from tests.images._data import domain_images, write_folder

SMALL = ["--size", "8", "--levels", "2", "--steps", "1", "--hidden", "8", "--epochs", "2", "--set", "batch_size=16", "--set", 'device="cpu"']


def _run(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imgs")
    return {
        "warm": write_folder(root / "warm", domain_images("warm", 38, 0, size=12)),
        "cool": write_folder(root / "cool", domain_images("cool", 38, 1, size=12)),
    }


@pytest.fixture(scope="module")
def model(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "img.flowad"
    result = _run("image", "fit", f"warm={folders['warm']}", f"cool={folders['cool']}", "-o", path, *SMALL, "--holdout", "0.2")
    assert result.exit_code == 0, result.output
    assert "held-out warm (8 images)" in result.output
    return path


def test_fit_writes_an_image_model(model: Path) -> None:
    det = load(model)
    assert det.image_shape_ == (3, 8, 8) and det.domains_ == ["cool", "warm"] and det.domain_counts_ == {"cool": 30, "warm": 30}


def test_score_writes_one_row_per_image_and_domain(model: Path, folders: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    result = _run("image", "score", model, folders["warm"], "-o", out, "-q")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 76 and set(table["domain"]) == {"warm", "cool"}
    assert list(table.columns) == ["file", "domain", "bits_per_dim", "anomaly_score", "label"]
    mean = table.groupby("domain")["bits_per_dim"].mean()
    assert mean["warm"] < mean["cool"]
    result = _run("image", "score", model, folders["warm"], "-o", out, "--domain", "warm", "-q")
    assert result.exit_code == 0 and len(pd.read_csv(out)) == 38


def test_translate_writes_a_grid(model: Path, folders: dict[str, Path], tmp_path: Path) -> None:
    out, save = tmp_path / "grid.png", tmp_path / "moved"
    save.mkdir()
    result = _run("image", "translate", model, folders["warm"], "--source", "warm", "--target", "cool", "-o", out, "--limit", "4", "--save-folder", save)
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(out))
    assert grid.shape == (4 * 10 + 2, 2 * 10 + 2, 3)
    assert len(list(save.glob("*.png"))) == 38


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", "fit", "warm", "-o", "{tmp}/m.flowad"], "NAME=FOLDER"),
        (["image", "fit", "a={tmp}/none", "-o", "{tmp}/m.flowad"], "does not exist"),
        (["image", "fit", "a={warm}", "-o", "{tmp}/m.flowad", "--set", "colour=1"], "Unknown hyper-parameter"),
        (["image", "fit", "a={warm}", "-o", "{tmp}/m.flowad", "--size", "12", "--levels", "3"], "divisible by 2**levels"),
        (["image", "fit", "a={warm}", "-o", "{tmp}/m.flowad", "--size", "64"], "smaller than the requested 64x64"),
        (["image", "score", "{model}", "{tmp}/empty", "-o", "{tmp}/s.csv"], "holds no image files"),
        (["image", "translate", "{model}", "{warm}", "--source", "warm", "--target", "x", "-o", "{tmp}/g.png"], "Unknown domain 'x'"),
        (["image", "translate", "{model}", "{warm}", "--source", "warm", "--target", "cool", "-o", "{tmp}/g.jpg"], ".png file"),
        (["image", "score", "{tmp}/none.flowad", "{warm}", "-o", "{tmp}/s.csv"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(args: list[str], message: str, model: Path, folders: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path, warm=folders["warm"], model=model) for a in args]
    result = _run(*filled)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("flowad: error: ") and message in lines[0], result.output


def test_a_tabular_model_is_refused(tmp_path: Path, folders: dict[str, Path]) -> None:
    from flowad.detectors import RealNVP

    path = tmp_path / "t.flowad"
    RealNVP(epochs=1, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3))).save(path)
    result = _run("image", "score", path, folders["warm"], "-o", tmp_path / "s.csv")
    assert result.exit_code == 2 and "not an image model" in result.output
