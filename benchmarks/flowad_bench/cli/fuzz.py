"""``flowad bench fuzz``: the long profile of the fuzz suite (tests/fuzz runs the quick one)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("fuzz")
@user_errors
def fuzz(
    out: Path = typer.Option(Path("results/fuzz"), "--out", "-o", help="Folder for cases.csv, findings.jsonl and README.md."),
    examples: int = typer.Option(10_000, min=1, help="Generated cases in all."),
    batch: int = typer.Option(500, min=1, help="Cases per Hypothesis run; finished batches already in cases.csv are skipped (resumable)."),
    seed: int = typer.Option(0, help="Seed of the Hypothesis runs (batch b uses seed * 100003 + b)."),
) -> None:
    """Fuzz fit / score / adapt / save / load / export with awkward arrays (Hypothesis) and
    count outcomes by input category: finite scores, documented refusals, and findings
    (undocumented exceptions, NaN/inf scores, PyTorch/ONNX disagreement).
    """
    import os

    import torch

    from flowad_bench.fuzz import format_fuzz, run_fuzz

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    folder = output_folder(out)
    table, findings = run_fuzz(folder, examples=examples, seed=seed, batch=batch, progress=typer.echo)
    report = format_fuzz(table, findings, command=command_line())
    (folder / "README.md").write_text(report)
    typer.echo(report)
