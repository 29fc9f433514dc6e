"""``flowad bench audio-features``: log-mel extraction speed, seconds per hour of audio on one core."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line, output_folder


@bench_app.command("audio-features")
@user_errors
def audio_features(
    data: Path = typer.Option(None, "--data", help="Folder of real audio files to cycle through (default: generated WAV files)."),
    seconds: float = typer.Option(3600.0, "--seconds", help="Audio duration to extract, in seconds."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for report.txt and result.json (printed only if omitted)."),
) -> None:
    """Time reading + log-mel + context stacking of --seconds of audio on one thread."""
    from flowad_bench.audio_features import AudioSpeedConfig, format_audio_speed, run_audio_feature_speed

    if not seconds > 0:
        raise InputError(f"--seconds must be > 0, got {seconds}.")
    folder = None if out is None else output_folder(out)  # a bad --out fails before the run
    result = run_audio_feature_speed(data, AudioSpeedConfig(seconds=seconds))
    command = command_line()
    report = f"Command: {command}\n\n" + format_audio_speed(result)
    typer.echo(report)
    if folder is not None:
        (folder / "report.txt").write_text(report + "\n", encoding="utf-8")
        (folder / "result.json").write_text(json.dumps({"command": command, **result}, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"Wrote {folder / 'report.txt'} and {folder / 'result.json'}")
