"""Every benchmark command reports a user mistake as one line ``flowad: error: ...`` and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowad.cli import app

#: One mistake per command: the arguments after ``flowad bench`` ({data}: a folder of datasets,
#: {missing}: no such path, {file}: a plain file, {out}: a fresh output folder) and a part of the message.
CASES: dict[str, tuple[list[str], str]] = {
    "odds: missing data folder": (["odds", "-d", "{missing}", "-o", "{out}"], "does not exist"),
    "odds: unknown method": (["odds", "-d", "{data}", "-o", "{out}", "-m", "Nope"], "unknown method 'Nope'"),
    "odds: no seeds": (["odds", "-d", "{data}", "-o", "{out}", "--seeds", "0"], "seeds must be >= 1"),
    "odds: no workers": (["odds", "-d", "{data}", "-o", "{out}", "--jobs", "0", "-m", "IForest"], "jobs must be >= 1"),
    "odds: output is a file": (["odds", "-d", "{data}", "-o", "{file}", "--quick"], "is a file"),
    "trim-sensitivity: not a flow": (["trim-sensitivity", "-d", "{data}", "-o", "{out}", "-m", "IForest"], "flowad methods"),
    "contamination-sensitivity: not a number": (
        ["contamination-sensitivity", "-d", "{data}", "-o", "{out}", "--contaminations", "0.1,x"],
        "comma-separated numbers",
    ),
    "contamination-sensitivity: out of range": (
        ["contamination-sensitivity", "-d", "{data}", "-o", "{out}", "--contaminations", "0.7"],
        "contaminations must be",
    ),
    "sn-ablation: unknown dataset": (["sn-ablation", "-d", "{data}", "-o", "{out}", "--datasets", "nope"], "no dataset file"),
    "embeddings: missing data folder": (["embeddings", "-d", "{missing}", "-o", "{out}"], "does not exist"),
    "embeddings: no PCA dimension": (["embeddings", "-d", "{data}", "-o", "{out}", "--pca-dim", "0"], "pca_dim must be"),
    "defaults: missing data folder": (["defaults", "--data", "{missing}", "-o", "{out}"], "does not exist"),
    "defaults: no seeds": (["defaults", "-o", "{out}", "--moons-seeds", "0"], "moons_seeds must be >= 1"),
    "speed: missing data file": (["speed", "--data", "{missing}"], "is not a file"),
    "throughput: output is a file": (["throughput", "-o", "{file}"], "is a file"),
    "throughput: no rows": (["throughput", "-o", "{out}", "--rows", "0"], "--rows and --repeats must be >= 1"),
    "two-moons: no threads": (["two-moons", "-o", "{out}", "--threads", "0"], "--threads must be >= 1"),
    "two-moons: contamination out of range": (["two-moons", "-o", "{out}", "--contamination", "0.7"], "contamination must be"),
    "two-moons: variant of a model not in the study": (["two-moons", "-o", "{out}", "--variant", "IForest:n_estimators=10"], "models must be among"),
    "two-moons: variant argument unknown": (["two-moons", "-o", "{out}", "--variant", "RobustRealNVP:depth=3"], "has no argument"),
    "trim-rule: one candidate": (["trim-rule", "-d", "{data}", "-o", "{out}", "--trims", "0.1"], "at least two distinct trim ratios"),
    "validation-nll: unknown dataset": (
        ["validation-nll", "-d", "{data}", "-o", "{out}", "--datasets", "nope"],
        "no dataset file",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistake_is_one_line_and_exit_code_2(case: str, data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    paths = {"data": data_dir, "missing": tmp_path / "missing", "file": tmp_path / "a_file", "out": tmp_path / "out"}
    args, message = CASES[case]
    result = CliRunner().invoke(app, ["bench", *(a.format(**paths) for a in args)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowad: error: "), result.stderr
    assert message in lines[0]


def test_odds_help_names_every_method_the_runner_knows() -> None:
    from flowad_bench.methods import METHODS

    result = CliRunner().invoke(app, ["bench", "odds", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    missing = [name for name in METHODS if name not in text]
    assert not missing, f"--help of `flowad bench odds` does not name {missing}"
