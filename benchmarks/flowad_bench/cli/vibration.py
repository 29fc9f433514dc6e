"""``flowad bench vibration``: the FEMTO / PRONOSTIA leave-one-condition-out benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line


@bench_app.command("vibration")
@user_errors
def vibration(
    data: Path = typer.Option(..., "--data", help="The femto_pronostia folder (with index.csv)."),
    out: Path = typer.Option(Path("results/vibration"), "--out", "-o", help="Output folder (results.csv, table.md, features.npz)."),
    seeds: int = typer.Option(5, "--seeds", help="Number of seeds (0 .. seeds-1)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: 1 seed, 30 training epochs, 10 fine-tuning epochs."),
    n_adapt: list[int] = typer.Option([10, 30, 50, 100], "--n-adapt", help="Target snapshots for adaptation (repeat the option)."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Also run the source-only comparison of AdaFlow settings."),
) -> None:
    """Leave one operating condition out; AdaFlow adapted with N = 10/30/50/100 target snapshots
    (the default mixture and the flow alone) against the unadapted and fine-tuned flows, an
    autoencoder, the target-only Gaussian and 1-NN and the data README's simple baselines;
    writes results.csv, table.md (with the README's caveats) and auroc.png into --out."""
    from flowad_bench.runner import torch_threads
    from flowad_bench.shift import config_dict, environment, flow_params, plot_auroc_vs_n
    from flowad_bench.vibration import (
        METHODS,
        VibrationBenchConfig,
        load_features,
        run_vibration_benchmark,
        source_validation,
        validation_markdown,
        vibration_markdown,
    )

    if quick:
        cfg = VibrationBenchConfig(n_adapt=tuple(n_adapt), seeds=(0,), epochs=30, finetune_epochs=10, quick=True)
    else:
        cfg = VibrationBenchConfig(n_adapt=tuple(n_adapt), seeds=tuple(range(seeds)))
    command = command_line()
    results = run_vibration_benchmark(data, out, cfg)
    extra = {"flow_params": flow_params(cfg), "environment": environment()}
    report = vibration_markdown(results, cfg, command, extra)
    if validate:
        from threadpoolctl import threadpool_limits

        frame, X = load_features(data, out / "features.npz")
        with torch_threads(1), threadpool_limits(1):
            val = source_validation(frame, X, cfg)
        val.to_csv(out / "validation.csv", index=False)
        report += (
            "\n## Source-only check of the AdaFlow setting (no target label used)\n\n"
            "Inside each target's two source conditions: train on one, adapt to the other with N snapshots, "
            "detect its late life (seed 0; mean over the 3 targets × 2 directions). The first row is the "
            "a-priori setting used above.\n\n" + validation_markdown(val) + "\n"
        )
    (out / "table.md").write_text(report, encoding="utf-8")
    plot_auroc_vs_n(results, ["late_life"], METHODS, out / "auroc.png", title="FEMTO bearings: healthy vs late life")
    (out / "config.json").write_text(
        json.dumps({"command": command, "config": config_dict(cfg), **extra}, indent=2) + "\n", encoding="utf-8"
    )
    typer.echo(report)
    typer.echo(f"Wrote {out / 'results.csv'}, {out / 'table.md'}, {out / 'auroc.png'} and {out / 'config.json'}")


@bench_app.command("vibration-limits")
@user_errors
def vibration_limits(
    data: Path = typer.Option(..., "--data", help="The femto_pronostia folder (with index.csv)."),
    out: Path = typer.Option(Path("results/vibration/limits"), "--out", "-o", help="Output folder (results.csv, table.md, config.json)."),
    seeds: int = typer.Option(5, "--seeds", help="Number of seeds (0 .. seeds-1); the benchmark's splits."),
    n_adapt: list[int] = typer.Option([5, 10, 30, 100], "--n-adapt", help="Target snapshots (repeat the option)."),
    features: Path | None = typer.Option(None, "--features", help="Feature cache (.npz) of `flowad bench vibration`; written if missing."),
) -> None:
    """What limits the target-only Gaussian at small N: each of its statistics replaced by the
    oracle value or by what the source conditions offer (their correlation, a prior for the
    feature scales), and other target-only estimators; writes results.csv and table.md into --out.
    No training: a few minutes on one core."""
    from threadpoolctl import threadpool_limits

    from flowad.exceptions import InputError
    from flowad_bench.vibration import load_features
    from flowad_bench.vibration.limits import gaussian_limits, limits_markdown

    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}.")
    if min(n_adapt) < 3:
        raise InputError(f"--n-adapt values must be >= 3 (the held-out folds need rows), got {n_adapt}.")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder.")
    out.mkdir(parents=True, exist_ok=True)
    command = command_line()
    frame, X = load_features(data, features)
    with threadpool_limits(1):
        results, distances = gaussian_limits(frame, X, range(seeds), sorted(set(n_adapt)))
    results.to_csv(out / "results.csv", index=False)
    report = limits_markdown(results, distances, command)
    (out / "table.md").write_text(report, encoding="utf-8")
    (out / "config.json").write_text(json.dumps({"command": command, "seeds": seeds, "n_adapt": sorted(set(n_adapt))}, indent=2) + "\n", encoding="utf-8")
    typer.echo(report)
    typer.echo(f"Wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'config.json'}")
