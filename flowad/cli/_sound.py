"""``flowad sound fit``, ``adapt`` and ``score``: machine-sound folders in, per-file scores out.

A shell over :mod:`flowad.pipelines.sound`; the feature settings, the domain rule and the
aggregation travel in the model file's manifest (its ``"audio_pipeline"`` entry), so ``adapt``
and ``score`` use those the model was trained with.
"""

from __future__ import annotations

from pathlib import Path

import typer

from flowad.cli import app
from flowad.cli._common import check_output, progress, user_errors
from flowad.cli._model import _parse_set
from flowad.exceptions import InputError

sound_app = typer.Typer(
    help="Machine sound (DCASE / ToyADMOS / MIMII file names): fit AdaFlow on a folder of WAV files, adapt, score files.",
    no_args_is_help=True,
)
app.add_typer(sound_app, name="sound")

_SPLITS = {"test": "test", "train": "train", "all": None}


@sound_app.command("fit")
@user_errors
def fit(
    folder: Path = typer.Argument(
        ..., help="Folder of machine-sound files (data-set root, machine folder or flat folder)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write."),
    machine: str = typer.Option(None, help="Use only this machine type (DCASE trains one model per machine type)."),
    epochs: int = typer.Option(None, help="Training epochs (default: AdaFlow's)."),
    domain_by: str = typer.Option(
        "domain", help="Domain of a file: 'domain' (source/target), 'section' or 'attributes'."
    ),
    adapt_target: bool = typer.Option(
        True, help="Train on the source domains and adapt the DCASE target domains (else train on all jointly)."
    ),
    aggregate: str = typer.Option(
        "mean", help="A file's score from its frames: 'mean' (DCASE convention), 'median' or 'max'."
    ),
    sample_rate: int = typer.Option(16_000, help="Analysis sample rate (other rates are resampled)."),
    n_fft: int = typer.Option(512, help="FFT size."),
    hop_length: int = typer.Option(256, help="Hop between frames, in samples."),
    n_mels: int = typer.Option(64, help="Mel bands."),
    context: int = typer.Option(5, help="Context frames on each side of a frame."),
    cache: Path = typer.Option(None, help="Folder for cached per-file features."),
    seed: int = typer.Option(0, help="Random seed."),
    set_: list[str] = typer.Option([], "--set", help="Any other AdaFlow hyper-parameter as KEY=VALUE (JSON values)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
) -> None:
    """Train AdaFlow on the normal training files of FOLDER (domains from the file names)."""
    from flowad.detectors import AdaFlow
    from flowad.features.audio import AudioFeatureConfig
    from flowad.pipelines.sound import SoundDetector

    check_output(output)
    config = AudioFeatureConfig(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, context=context
    )
    params = {"random_state": seed, "stationary_frames": config.frames, **_parse_set(set_)}
    if epochs is not None:
        params["epochs"] = epochs
    unknown = sorted(set(params) - set(AdaFlow().get_params()))
    if unknown:
        raise InputError(f"Unknown hyper-parameter(s) {unknown} for adaflow; valid: {sorted(AdaFlow().get_params())}.")
    sd = SoundDetector(AdaFlow(**params), config, domain_by, aggregate, machine, cache, progress=not quiet)
    with progress(not quiet, "fit adaflow"):
        sd.fit(folder, adapt_target=adapt_target)
    sd.save(output)
    if not quiet:
        counts = ", ".join(f"{d} ({sd.detector.domain_counts_[d]} frames)" for d in sd.domains_)
        typer.echo(f"Trained AdaFlow on {config.n_features}-value log-mel frames; domains: {counts}; wrote {output}")


@sound_app.command("adapt")
@user_errors
def adapt(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad sound fit."),
    folder: Path = typer.Argument(..., help="Folder whose normal training files belong to the domain(s)."),
    domain: str = typer.Option(
        None, help="Adapt this domain on all the files (default: each file's domain from its name)."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the adapted model here (default: update MODEL in place)."
    ),
    cache: Path = typer.Option(None, help="Folder for cached per-file features."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Add or update domains from normal training files, by forward passes only."""
    from flowad.pipelines.sound import SoundDetector

    target = output or model_file
    check_output(target)
    sd = SoundDetector.load(model_file, cache_dir=cache, progress=not quiet)
    before = set(sd.domains_)
    sd.adapt(folder, domain=domain)
    sd.save(target)
    if not quiet:
        typer.echo(f"Domains now {sd.domains_} ({len(set(sd.domains_) - before)} new); wrote {target}")


@sound_app.command("score")
@user_errors
def score(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad sound fit."),
    folder: Path = typer.Argument(..., help="Folder of files to score."),
    output: Path = typer.Option(..., "--output", "-o", help="Scores file (.csv, .parquet)."),
    domain: str = typer.Option(
        None, help="Score every file in this domain (default: each file's domain from its name)."
    ),
    split: str = typer.Option("test", help="Files to score: 'test' (and those of unknown split), 'train' or 'all'."),
    aggregate: str = typer.Option(None, help="Override the model's frame aggregation: 'mean', 'median' or 'max'."),
    cache: Path = typer.Option(None, help="Folder for cached per-file features."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write one row per file: file, machine, section, domain, label, score (higher = more anomalous)."""
    from flowad.io.tables import write_table
    from flowad.pipelines.sound import AGGREGATES, SoundDetector

    if split not in _SPLITS:
        raise InputError(f"--split must be one of {list(_SPLITS)}, got {split!r}.")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise InputError(f"--aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}.")
    check_output(output)
    sd = SoundDetector.load(model_file, cache_dir=cache, progress=not quiet)
    if aggregate is not None:
        sd.aggregate = aggregate
    table = sd.score(folder, domain=domain, split=_SPLITS[split])
    write_table(table, output)
    if not quiet:
        typer.echo(f"Scored {len(table)} files ({sd.aggregate} of frame NLLs); wrote {output}")
