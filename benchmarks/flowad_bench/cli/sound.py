"""``flowad bench sound``: the AdaFlow study's sound benchmark, rebuilt semi-synthetically."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line


@bench_app.command("sound")
@user_errors
def sound(
    clips: Path = typer.Option(..., "--clips", help="Folder of DCASE-named machine clips (e.g. sound/dcase2023_clips)."),
    events: Path = typer.Option(..., "--events", help="Folder of DCASE 2016 office events (e.g. sound/dcase2016_office_events)."),
    out: Path = typer.Option(Path("results/sound"), "--out", "-o", help="Output folder (results.csv, table.md, config.json)."),
    seeds: int = typer.Option(3, "--seeds", help="Number of seeds (0 .. seeds-1)."),
    targets: list[int] = typer.Option([0, 1, 2, 3], "--target", help="Target rotations 0-3 (repeat the option)."),
    n_adapt: list[int] = typer.Option([10, 50, 100, 1000], "--n-adapt", help="Target frames for adaptation (repeat the option)."),
    anr: list[float] = typer.Option([-20.0, -10.0], "--anr", help="Anomaly-to-normal ratios in dB (repeat the option)."),
    audio_ae: bool = typer.Option(True, "--audio-ae/--no-audio-ae", help="Also run PyOD's AudioAE."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: 1 seed, target 0, N=10/100, 2 epochs everywhere."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Semi-synthetic sound benchmark under domain shift: real DCASE machine clips in real or
    generated backgrounds (4 machines x 4 noises), real office events as anomalies; AdaFlow
    adapted with N target frames against the unadapted and fine-tuned flows, an autoencoder and
    PyOD's AudioAE. Resumable; writes results.csv, table.md and auroc.png into --out."""
    from flowad_bench.shift import config_dict, environment, flow_params, plot_auroc_vs_n
    from flowad_bench.sound import (
        METHODS,
        SoundBenchConfig,
        experiment_name,
        run_sound_benchmark,
        sound_markdown,
    )

    if quick:
        cfg = SoundBenchConfig(n_adapt=(10, 100), seeds=(0,), targets=(0,), anr_db=tuple(anr), epochs=2,
                               finetune_epochs=2, audio_ae=audio_ae, audio_ae_epochs=2, quick=True)
    else:
        cfg = SoundBenchConfig(n_adapt=tuple(n_adapt), seeds=tuple(range(seeds)), targets=tuple(targets),
                               anr_db=tuple(anr), audio_ae=audio_ae)
    command = command_line()
    results = run_sound_benchmark(clips, events, out, cfg, progress=progress)
    material = json.loads((out / "material.json").read_text(encoding="utf-8"))  # written by the run
    extra = {"material": material, "flow_params": flow_params(cfg), "environment": environment()}
    report = sound_markdown(results, cfg, command, extra)
    (out / "table.md").write_text(report, encoding="utf-8")
    experiments = [e for e in (experiment_name(a) for a in cfg.anr_db) if (results.experiment == e).any()]
    plot_auroc_vs_n(results, experiments, METHODS, out / "auroc.png", title="Sound under domain shift (semi-synthetic)")
    (out / "config.json").write_text(
        json.dumps({"command": command, "config": config_dict(cfg), **extra}, indent=2) + "\n", encoding="utf-8"
    )
    typer.echo(report)
    typer.echo(f"Wrote {out / 'results.csv'}, {out / 'table.md'}, {out / 'auroc.png'} and {out / 'config.json'}")
