"""``flowad bench audio-features``: extraction speed report on a few generated seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("librosa", reason="the audio extra (soundfile, librosa) is not installed")

from flowad.cli import app  # noqa: E402


def test_command_writes_report(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "audio-features", "--seconds", "20", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["files"] == 2 and abs(result["audio_seconds"] - 20.0) < 1e-6
    assert result["vectors"] == 2 * (1 + 160_000 // 256 - 10)
    assert result["seconds_per_hour"] > 0 and "seconds per hour" in (tmp_path / "report.txt").read_text()


def test_command_reports_an_empty_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "audio-features", "--data", str(tmp_path), "--seconds", "1"])
    assert res.exit_code == 2 and "No audio files" in res.output
