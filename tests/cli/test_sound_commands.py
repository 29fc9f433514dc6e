"""`flowad sound fit / adapt / score` on small synthetic DCASE-named folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("soundfile", reason="the audio extra (soundfile, librosa) is not installed")
pytest.importorskip("librosa", reason="the audio extra (soundfile, librosa) is not installed")

from flowad.cli import app  # noqa: E402
from flowad.features.audio import AudioFeatureConfig  # noqa: E402
from flowad.pipelines.sound import SoundDetector  # noqa: E402
from tests.pipelines.test_sound import _dcase_folder  # noqa: E402

SMALL = ["--n-mels", "16", "--context", "2", "--epochs", "3"]


def _run(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def dcase(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dcase_folder(tmp_path_factory.mktemp("dcase"))


def test_fit_adapt_score(dcase: Path, tmp_path: Path) -> None:
    model = tmp_path / "fan.flowad"
    result = _run("sound", "fit", dcase, "-o", model, "--machine", "fan", "--cache", tmp_path / "cache", *SMALL, "-q")
    assert result.exit_code == 0, result.output
    sd = SoundDetector.load(model)
    assert sd.config == AudioFeatureConfig(n_mels=16, context=2) and sd.machine == "fan"
    assert sd.domains_ == ["fan/section_00/source", "fan/section_00/target"]
    assert sd.detector.stationary_frames == 5  # the context window's frames: 2 * 2 + 1

    scores = tmp_path / "scores.csv"
    result = _run("sound", "score", model, dcase, "-o", scores, "--cache", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(scores)
    assert len(table) == 4 and np.isfinite(table["score"]).all()
    assert {"file", "machine", "section", "domain", "label", "score"} <= set(table.columns)

    adapted = tmp_path / "adapted.flowad"
    result = _run("sound", "adapt", model, dcase / "fan" / "train", "--domain", "pooled", "-o", adapted)
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output
    assert SoundDetector.load(adapted).domains_[-1] == "pooled"
    result = _run("sound", "score", adapted, dcase, "-o", scores, "--domain", "pooled", "--split", "all", "-q")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(scores)) == 10
    worst = tmp_path / "worst.csv"
    result = _run(
        "sound",
        "score",
        adapted,
        dcase,
        "-o",
        worst,
        "--domain",
        "pooled",
        "--split",
        "all",
        "--aggregate",
        "max",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(worst)["score"] > pd.read_csv(scores)["score"]).all()  # the worst frame is above the mean


def test_one_line_errors(tmp_path: Path, dcase: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("sound", "fit", empty, "-o", tmp_path / "m.flowad", "-q")
    assert result.exit_code == 2 and "No audio files" in result.output
    result = _run("sound", "fit", dcase, "-o", tmp_path / "m.flowad", "--machine", "valve", "-q")
    assert result.exit_code == 2 and "machines found" in result.output
    result = _run("sound", "fit", dcase, "-o", tmp_path / "m.flowad", "--set", "wings=2", "-q")
    assert result.exit_code == 2 and "Unknown hyper-parameter" in result.output
    result = _run("sound", "score", tmp_path / "missing.flowad", dcase, "-o", tmp_path / "s.csv")
    assert result.exit_code == 2 and "does not exist" in result.output
    model = tmp_path / "m.flowad"
    assert _run("sound", "fit", dcase, "-o", model, *SMALL, "-q").exit_code == 0
    result = _run("sound", "score", model, dcase, "-o", tmp_path / "s.csv", "--domain", "elsewhere")
    assert result.exit_code == 2 and "elsewhere" in result.output
    result = _run("sound", "score", model, dcase, "-o", tmp_path / "s.csv", "--split", "dev")
    assert result.exit_code == 2 and "--split" in result.output
    result = _run("sound", "score", model, dcase, "-o", tmp_path / "s.csv", "--aggregate", "sum")
    assert result.exit_code == 2 and "--aggregate" in result.output
