"""The console script without the ``cli`` extra: one line on what to install, exit code 2."""

from __future__ import annotations

import subprocess
import sys

_WITHOUT_TYPER = """
import sys
sys.modules["typer"] = None  # as if the 'cli' extra were not installed
from flowad._entry import main
main()
"""


def test_missing_cli_extra_says_what_to_install() -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TYPER, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "flowad: error: the command line needs the 'cli' extra (typer is not installed); "
        "install it with: pip install 'flowad[cli]'"
    )


def test_entry_runs_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['flowad', '--help']; from flowad._entry import main; main()"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fit" in proc.stdout and "score" in proc.stdout


_WITHOUT_BENCH = """
import sys
import importlib.metadata as md
md.entry_points = lambda group=None, **kw: []  # as if flowad-bench were not installed
from flowad.cli import main
sys.argv = ["flowad", "bench", "odds", "--quick"]
main()
"""


def test_bench_without_the_benchmark_package_says_how_to_install_it() -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_BENCH], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("flowad: error: the benchmark commands are in the separate package flowad-bench")
    assert "pip install -e benchmarks/" in proc.stderr


def test_bench_group_comes_from_the_entry_point() -> None:
    from typer.testing import CliRunner

    from flowad.cli import app

    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    assert "odds" in result.output and "two-moons" in result.output
