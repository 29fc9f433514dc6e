"""``flowad bench images``: ImageAdaFlow on unpaired paintings and photos (issue 15, items 1-4)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowad.cli._common import user_errors
from flowad_bench.cli import bench_app


@bench_app.command("images")
@user_errors
def images(
    paintings: Path = typer.Option(..., "--paintings", help="Folder of paintings (e.g. ../shared/data/vangogh2photo/paintings)."),
    photos: Path = typer.Option(..., "--photos", help="Folder of photos (e.g. ../shared/data/vangogh2photo/photos)."),
    out: Path = typer.Option(Path("results/images"), "--out", "-o", help="Output folder (README.md, results.csv, grids, model)."),
    size: int = typer.Option(32, help="Image size (square)."),
    levels: int = typer.Option(3, help="Scales of the flow."),
    steps: int = typer.Option(4, help="Glow steps per level."),
    hidden: int = typer.Option(64, help="Hidden channels of the coupling networks."),
    s_max: float = typer.Option(1.0, "--s-max", help="Log-scale bound of the couplings."),
    epochs: int = typer.Option(100, help="Training epochs."),
    holdout: float = typer.Option(0.25, help="Held-out fraction per domain."),
    seed: int = typer.Option(0, help="Seed of the split, the model and the noise images."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: 16x16 images, 2 levels x 1 step, 8 hidden channels, 2 epochs."),
) -> None:
    """Fit ImageAdaFlow on the training split of both folders (one CPU thread) and measure
    held-out bits/dim per domain, translation statistics, round-trip error, anomaly AUCs and
    throughput; writes README.md, results.csv, config.json, the grids and the model into --out."""
    from flowad_bench.images import ImageBenchConfig, images_markdown, run_images_benchmark
    from flowad_bench.record import command_line, output_folder
    from flowad_bench.runner import torch_threads

    if quick:
        cfg = ImageBenchConfig(size=16, levels=2, steps=1, hidden=8, epochs=2, holdout=holdout, seed=seed)
    else:
        cfg = ImageBenchConfig(size=size, levels=levels, steps=steps, hidden=hidden, s_max=s_max, epochs=epochs, holdout=holdout, seed=seed)
    folder = output_folder(out)
    command = command_line()
    with torch_threads(1):
        result = run_images_benchmark(paintings, photos, folder, cfg)
    report = images_markdown(result, cfg, command)
    (folder / "README.md").write_text(report, encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"command": command, "config": cfg.__dict__}, indent=2) + "\n", encoding="utf-8")
    typer.echo(report)
