"""The DDP training benchmark: 1 vs 2 processes on the same Parquet folder, resumable, with its report."""

from __future__ import annotations

import pandas as pd
import pytest
from flowad_bench.ddp import format_ddp, run_ddp, time_to_target
from typer.testing import CliRunner

from flowad.cli import app

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    kwargs = dict(rows=2000, rows_per_file=500, epochs=2, batch_sizes=[64], repeats=1, seed=0, log_every=10, work=folder / "work")
    table, logs = run_ddp(folder, **kwargs)
    return folder, kwargs, table, logs


def test_both_configurations_train_on_the_same_data_with_the_same_global_batch(results):
    _, _, table, logs = results
    assert sorted(table["nproc"]) == [1, 2]
    assert (table["rows"] == 2000).all() and (table["global_batch"] == 64).all() and (table["steps"] == 64).all()
    assert (table["samples_per_s"] > 0).all() and (table["load1_before"] >= 0).all()
    assert (table["step_ms_full_batch"] > 0).all() and (table["step_ms_half_batch"] > 0).all()
    assert (table["samples_per_s"] - table["steps"] * 64 / table["train_s"]).abs().max() < 1e-6
    for _, group in logs.groupby("nproc"):
        assert list(group["step"]) == [10, 20, 30, 32, 40, 50, 60, 64]  # every 10 steps and at each epoch end
        assert group["train_s"].is_monotonic_increasing


def test_time_to_target_is_the_first_log_line_at_or_below_a_value_every_configuration_reaches():
    logs = pd.DataFrame({"nproc": [1, 1, 1, 2, 2], "val_nll": [5.0, 4.0, 3.5, 4.5, 3.9], "train_s": [1.0, 2.0, 3.0, 0.5, 1.5]})
    target, times = time_to_target(logs)
    assert target == 3.9 and times == {1: 3.0, 2: 1.5}


def test_a_rerun_skips_rows_already_measured_and_the_report_has_its_tables(results):
    folder, kwargs, table, logs = results
    again, again_logs = run_ddp(folder, **kwargs)
    pd.testing.assert_frame_equal(again.astype(table.dtypes.to_dict()), table)
    report = format_ddp(table, logs, command="flowad bench ddp --rows 2000")
    assert report.startswith("# DDP training: 1 vs 2 processes\n\nCommand: `flowad bench ddp --rows 2000`")
    assert "| 64 | 2 | 64 |" in report and "## Where the time goes" in report and "torchrun --nnodes 2" in report
    assert "ms on 32 (at best" in report


def test_cli_refuses_bad_batch_sizes(tmp_path):
    res = CliRunner().invoke(app, ["bench", "ddp", "--out", str(tmp_path), "--batch-size", "64,x"])
    assert res.exit_code == 2 and "--batch-size must be comma-separated integers" in res.output
