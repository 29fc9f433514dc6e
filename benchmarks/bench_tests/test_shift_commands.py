"""The domain-shift and audio commands: a user mistake is one line ``flowad: error: ...`` and exit code 2, before any run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowad.cli import app

#: Arguments after ``flowad bench`` ({file}: a plain file, {dir}: an empty folder) and a part of the message.
CASES: dict[str, tuple[list[str], str]] = {
    "sound: output is a file": (["sound", "--clips", "{dir}", "--events", "{dir}", "--out", "{file}"], "is a file"),
    "sound: bad target rotation": (["sound", "--clips", "{dir}", "--events", "{dir}", "--out", "{dir}", "--target", "7"], "rotation"),
    "sound: no seed": (["sound", "--clips", "{dir}", "--events", "{dir}", "--out", "{dir}", "--seeds", "0"], "--seeds"),
    "sound: N of 1": (["sound", "--clips", "{dir}", "--events", "{dir}", "--out", "{dir}", "--n-adapt", "1"], "--n-adapt"),
    "vibration: output is a file": (["vibration", "--data", "{dir}", "--out", "{file}"], "is a file"),
    "vibration: no seed": (["vibration", "--data", "{dir}", "--out", "{dir}", "--seeds", "0"], "--seeds"),
    "vibration: N of 1": (["vibration", "--data", "{dir}", "--out", "{dir}", "--n-adapt", "1"], "--n-adapt"),
    "adaptation: no repeat": (["adaptation", "--repeats", "0"], "--repeats"),
    "adaptation: memory rows": (["adaptation", "--memory-rows", "1"], "--memory-rows"),
    "adaptation: output is a file": (["adaptation", "--out", "{file}"], "is a file"),
    "adaptation: one adaptation row": (["adaptation", "--rows", "1"], "--rows"),
    "audio-features: output is a file": (["audio-features", "--seconds", "1", "--out", "{file}"], "is a file"),
    "audio-features: no audio": (["audio-features", "--seconds", "0"], "--seconds"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mistake_is_one_line_and_exit_code_2(case: str, tmp_path: Path) -> None:
    args, message = CASES[case]
    (tmp_path / "f.txt").write_text("not a folder")
    (tmp_path / "d").mkdir()
    filled = [a.replace("{file}", str(tmp_path / "f.txt")).replace("{dir}", str(tmp_path / "d")) for a in args]
    res = CliRunner().invoke(app, ["bench", *filled])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("flowad: error:") and message in lines[-1], res.output
