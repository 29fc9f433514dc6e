"""``flowad demo``: the main job on data that ships with flowad (logic in :mod:`flowad.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import app
from flowad.cli._common import user_errors


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for results.md, the pictures and the model files."),
    seed: int = typer.Option(0, help="Seed of every data draw and every model."),
    epochs: int = typer.Option(100, help="Training epochs of every flow (RealNVP variants and AdaFlow)."),
    n_adapt: int = typer.Option(50, "--n-adapt", help="Normal rows of the new site given to AdaFlow.adapt and to the baselines."),
    threads: int = typer.Option(1, help="torch threads (the models are small: one is fastest on a shared machine)."),
) -> None:
    """Show what flowad is for, on shipped data, in about two minutes.

    1. Contaminated training: RealNVP, TrimRealNVP and RobustRealNVP (and Isolation Forest) fitted
    on two moons with a cluster of anomalies in the training data, and on thyroid with planted
    anomalies; density maps and ROC AUC on a clean test set.

    2. Domain shift: AdaFlow fitted on source sites, adapted to a new site by forward passes only
    (timed); before/after scores next to a Gaussian and Isolation Forest fitted on the same rows.

    Writes OUT/results.md, OUT/*.png and the RobustRealNVP and AdaFlow model files.
    """
    from flowad.demo import DemoConfig, require_matplotlib, run_demo

    require_matplotlib()
    config = DemoConfig(seed=seed, epochs=epochs, ada_epochs=epochs, n_adapt=n_adapt, threads=threads)
    command = f"flowad demo --out {out} --seed {seed} --epochs {epochs} --n-adapt {n_adapt} --threads {threads}"
    result = run_demo(out, config, command=command, progress=typer.echo)
    typer.echo(f"\nWrote {len(result.files)} files to {out}/ in {result.seconds:.0f} s: " + ", ".join(f.name for f in result.files))
    typer.echo("\nWho won (higher ROC AUC is better):")
    for line in result.summary():
        typer.echo(f"- {line}")
