"""``flowad bench adaptation``: AdaFlow's adaptation cost (Table 2 setting) and streaming memory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("adaptation")
@user_errors
def adaptation(
    out: Path = typer.Option(None, "--out", "-o", help="Folder for report.txt and result.json (printed only if omitted)."),
    features: int = typer.Option(704, help="Feature dimension D."),
    rows: int = typer.Option(1000, help="New-domain rows N for adaptation, fine-tuning and scoring."),
    finetune_epochs: int = typer.Option(50, help="Epochs of the fine-tuning baseline."),
    finetune_batch_size: int = typer.Option(100, help="Minibatch of the fine-tuning baseline."),
    finetune_lr: float = typer.Option(1e-4, help="Adam learning rate of the fine-tuning baseline."),
    repeats: int = typer.Option(7, help="Timed repetitions of adapt and of scoring (median reported)."),
    memory_rows: list[int] = typer.Option([10_000, 1_000_000], help="Row counts of the streaming-memory runs (repeat the option)."),
    chunk_size: int = typer.Option(10_000, help="Rows per chunk of the streaming-memory runs."),
    seed: int = typer.Option(0, help="Seed of the data and the models."),
) -> None:
    """Time AdaFlow.adapt against fine-tuning and one scoring pass on one thread, then measure
    the peak memory of streaming adaptation for each --memory-rows; print the figures."""
    from flowad_bench.adaptation import AdaptationBenchConfig, format_report, run_adaptation_benchmark

    for name, value, least in (("--features", features, 1), ("--rows", rows, 2), ("--finetune-epochs", finetune_epochs, 1),
                               ("--finetune-batch-size", finetune_batch_size, 2), ("--repeats", repeats, 1),
                               ("--chunk-size", chunk_size, 2)):
        if value < least:
            raise InputError(f"{name} must be >= {least}, got {value}.")
    if not finetune_lr > 0:
        raise InputError(f"--finetune-lr must be > 0, got {finetune_lr}.")
    if any(n < 2 for n in memory_rows):
        raise InputError(f"every --memory-rows must be >= 2, got {list(memory_rows)}.")
    cfg = AdaptationBenchConfig(
        n_features=features,
        n_adapt=rows,
        finetune_epochs=finetune_epochs,
        finetune_batch_size=finetune_batch_size,
        finetune_lr=finetune_lr,
        repeats=repeats,
        memory_rows=tuple(memory_rows),
        chunk_size=chunk_size,
        seed=seed,
    )
    folder = None if out is None else output_folder(out)  # a bad --out fails before the run
    result = run_adaptation_benchmark(cfg)
    command = command_line()
    report = f"Command: {command}\n\n" + format_report(result)
    typer.echo(report)
    if folder is not None:
        (folder / "report.txt").write_text(report + "\n", encoding="utf-8")
        (folder / "result.json").write_text(json.dumps({"command": command, **result}, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"Wrote {folder / 'report.txt'} and {folder / 'result.json'}")
