"""``flowad fit``, ``score``, ``info``, ``adapt`` and ``translate``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from flowad.cli import app
from flowad.cli._common import (
    check_columns,
    check_numeric,
    check_output,
    default_features,
    progress,
    require_column,
    split_columns,
    user_errors,
)
from flowad.dask._frame import check_domain_options, feature_frame, score_frame
from flowad.detectors import DETECTOR_REGISTRY, load
from flowad.exceptions import InputError
from flowad.io.tables import read_table, write_table

MODEL_KINDS = ("robust-realnvp", "trim-realnvp", "realnvp", "adaflow")


def _parse_set(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}.")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a plain string such as float64
        params[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return params


def _features(frame: pd.DataFrame, det: Any, columns: list[str] | None, exclude: list[str]) -> pd.DataFrame:
    """Columns the model was fitted on (by name when it has names), else the selection rules of
    ``fit`` (numbers and booleans); a stray text cell in them is an error naming the cell."""
    if columns is None and getattr(det, "feature_names_in_", None) is None:
        columns, _ = default_features(frame, exclude)
    return check_numeric(feature_frame(frame, det, columns, exclude))


def _ids(frame: pd.DataFrame, id_column: str | None) -> np.ndarray:
    values = require_column(frame, id_column, "Id")
    return np.arange(len(frame)) if values is None else values


@app.command()
@user_errors
def fit(
    data: Path = typer.Argument(..., help="Training data: CSV, Parquet, .npy or .npz (unlabeled; may contain anomalies)."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (safetensors + JSON manifest)."),
    model: str = typer.Option("robust-realnvp", "--model", "-m", help=f"Detector: {', '.join(MODEL_KINDS)}."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: every numeric column not named below)."),
    id_column: str = typer.Option(None, help="Row-id column, excluded from the features."),
    label_column: str = typer.Option(None, help="Label column, excluded from the features (training never reads labels)."),
    domain_column: str = typer.Option(None, help="Domain of each row (adaflow; excluded from the features)."),
    contamination: float = typer.Option(None, help="Expected anomaly fraction: sets the threshold and, for the RealNVP family, the trim ratio."),
    epochs: int = typer.Option(None, help="Training epochs."),
    seed: int = typer.Option(0, help="Random seed (same seed, same model)."),
    set_: list[str] = typer.Option([], "--set", help="Any other hyper-parameter as KEY=VALUE (JSON values), repeatable, e.g. --set hidden=[128,128]."),
    nproc: int = typer.Option(None, "--nproc", min=1, help="Train with PyTorch DDP on N local processes, each streaming its own files/row groups of DATA (a folder of Parquet/CSV files, or one such file); RealNVP family and adaflow (with --domain-column)."),
    resume: Path = typer.Option(None, "--resume", metavar="CHECKPOINT", help="DDP: continue an interrupted run from its checkpoint (OUTPUT.ckpt; same data, options and --nproc)."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", min=0, help="DDP: steps between checkpoints (OUTPUT.ckpt, written atomically by rank 0; 0: only at the end)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train a detector on DATA and write it to a model file."""
    if model not in MODEL_KINDS:
        raise InputError(f"--model must be one of {list(MODEL_KINDS)}, got {model!r}.")
    from flowad.distributed import launched_by_torchrun

    if nproc is not None or resume is not None or data.is_dir() or launched_by_torchrun():
        _fit_ddp(data, output, model, columns, id_column, label_column, domain_column, contamination, epochs, seed, set_,
                 nproc, resume, checkpoint_every, quiet)
        return
    _check_domain_option(model, domain_column)
    check_output(output)
    frame = read_table(data)
    feature_columns, left_out = _fit_features(frame, model, columns, id_column, label_column, domain_column)
    domains = require_column(frame, domain_column, "Domain")
    X = check_numeric(frame[feature_columns])
    det = DETECTOR_REGISTRY[model](**_fit_params(model, seed, set_, contamination, epochs))
    with progress(not quiet, f"fit {model}"):
        if domains is not None:
            det.fit(X, domains=domains)
        else:
            det.fit(X)
    det.save(output)
    if not quiet:
        shown = ", ".join(map(str, X.columns[:12])) + (", ..." if X.shape[1] > 12 else "")
        skipped = f"; left out text column(s) {left_out}" if left_out else ""
        typer.echo(
            f"Trained {model} on {X.shape[0]} rows x {X.shape[1]} features ({shown}){skipped}; "
            f"threshold {det.threshold_:.4g}; wrote {output}"
        )


def _check_domain_option(model: str, domain_column: str | None) -> None:
    if domain_column is not None and model != "adaflow":
        raise InputError(
            f"--domain-column applies to multi-domain models (--model adaflow); {model} models one domain. "
            "Drop --domain-column, or use --model adaflow."
        )


def _fit_features(frame: Any, model: str, columns: str | None, id_column: str | None, label_column: str | None,
                  domain_column: str | None) -> tuple[list[Any], list[str]]:
    """The feature columns of ``flowad fit`` (checked against ``frame``) and the text columns left out."""
    feature_columns = split_columns(columns)
    check_columns(frame, columns=feature_columns, id_column=id_column, label_column=label_column, domain_column=domain_column)
    if model == "adaflow" and domain_column is None:
        warnings.warn("adaflow without --domain-column: all rows form one domain named 'default'.", UserWarning, stacklevel=1)
    left_out: list[str] = []
    if feature_columns is None:
        exclude = [c for c in (id_column, label_column, domain_column) if c]
        feature_columns, left_out = default_features(frame, exclude)
    return list(feature_columns), left_out


def _fit_params(model: str, seed: int, set_: list[str], contamination: float | None, epochs: int | None) -> dict[str, Any]:
    """Constructor arguments of ``flowad fit`` (``--seed``, ``--set``, ``--contamination``, ``--epochs``), checked."""
    params = {"random_state": seed, **_parse_set(set_)}
    if contamination is not None:
        params["contamination"] = contamination
    if epochs is not None:
        params["epochs"] = epochs
    valid = DETECTOR_REGISTRY[model]().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"Unknown hyper-parameter(s) {unknown} for {model}; valid: {sorted(valid)}.")
    return params


def _fit_ddp(data: Path, output: Path, model: str, columns: str | None, id_column: str | None, label_column: str | None,
             domain_column: str | None, contamination: float | None, epochs: int | None, seed: int, set_: list[str],
             nproc: int | None, resume: Path | None, checkpoint_every: int, quiet: bool) -> None:
    """``flowad fit`` with DDP (--nproc, --resume, a folder, or inside torchrun); see :mod:`flowad.distributed`."""
    from flowad.distributed import SUPPORTED_MODELS, fit_distributed, launched_by_torchrun, preview

    if model not in SUPPORTED_MODELS:
        raise InputError(f"DDP training (--nproc, --resume or a folder as DATA) supports {list(SUPPORTED_MODELS)}, not {model!r}; "
                         "train it in one process on one file.")
    _check_domain_option(model, domain_column)
    check_output(output)
    frame = preview(data)  # the columns are checked on the first file/row group, as one-process fit checks them
    feature_columns, left_out = _fit_features(frame, model, columns, id_column, label_column, domain_column)
    check_numeric(frame[feature_columns])
    params = _fit_params(model, seed, set_, contamination, epochs)
    summary = fit_distributed(data, output, model=model, params=params, columns=[str(c) for c in feature_columns], domain_column=domain_column,
                              nproc=None if launched_by_torchrun() else (nproc or 1), resume=resume, checkpoint_every=checkpoint_every,
                              progress=not quiet)
    if summary is not None and not quiet:
        skipped = f"; left out text column(s) {left_out}" if left_out else ""
        typer.echo(
            f"Trained {model} with DDP on {summary['world_size']} process(es): {summary['rows']} rows x {summary['features']} features, "
            f"{summary['steps']} steps of {summary['global_batch']} rows{skipped}; threshold {summary['threshold']:.4g} "
            f"(on {summary['calibration_rows']} sampled rows)" + (f"; domains {summary['domains']}" if summary["domains"] else "")
            + f"; wrote {output} (checkpoint {summary['checkpoint']})"
        )


_DASK_HELP = "Run on Dask, partition by partition (DATA may be a folder of Parquet/CSV files; needs the dask extra)."
_SCHEDULER_HELP = "Address of a running Dask scheduler (e.g. tcp://host:8786); default: a local cluster for the job, one worker process per core."
_WORKERS_HELP = "Worker processes of the local cluster (default: one per core)."


def _check_dask_options(dask: bool, scheduler: str | None, workers: int | None, data: Path) -> None:
    if not dask and (scheduler is not None or workers is not None):
        raise InputError("--scheduler and --workers apply to --dask runs; add --dask.")
    if not dask and data.is_dir():
        raise InputError(f"{str(data)!r} is a folder; add --dask to process a folder of Parquet/CSV files partition by partition.")


@app.command()
@user_errors
def score(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad fit."),
    data: Path = typer.Argument(..., help="Data to score: CSV, Parquet, .npy or .npz (with --dask: also a folder of Parquet/CSV files)."),
    output: Path = typer.Option(..., "--output", "-o", help="Scores file (.csv, .parquet, .npz); with --dask a new folder of Parquet parts."),
    domain: str = typer.Option(None, help="Domain of every row (multi-domain models)."),
    domain_column: str = typer.Option(None, help="Column giving each row's domain (multi-domain models)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    id_column: str = typer.Option(None, help="Row-id column copied to the output (default: the row number)."),
    dask: bool = typer.Option(False, "--dask", help=_DASK_HELP),
    scheduler: str = typer.Option(None, "--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP),
    workers: int = typer.Option(None, "--workers", help=_WORKERS_HELP),
    on_bad: str = typer.Option("stop", "--on-bad", help="--dask: a partition with missing columns or NaN rows stops the job and writes nothing ('stop'), or is left out and listed in _bad_partitions.csv ('skip')."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write each row's id, anomaly score (negative log-likelihood), log-density and 0/1 label."""
    _check_dask_options(dask, scheduler, workers, data)
    if dask:
        _score_dask(model_file, data, output, domain, domain_column, split_columns(columns), id_column, scheduler, workers, on_bad, quiet)
        return
    check_output(output)
    det = load(model_file)
    check_domain_options(det, domain, domain_column, str(model_file))
    frame = read_table(data)
    feature_columns = split_columns(columns)
    check_columns(frame, columns=feature_columns, id_column=id_column, domain_column=domain_column)
    X = _features(frame, det, feature_columns, [c for c in (id_column, domain_column) if c])
    converted = [c for c in X.columns if X[c].dtype != frame[c].dtype]  # numbers stored as text
    if converted:
        frame = frame.copy()
        frame[converted] = X[converted]
    out = score_frame(det, frame, columns=list(X.columns), id_column=id_column, domain=domain, domain_column=domain_column)
    write_table(out, output)
    if not quiet:
        typer.echo(f"Scored {len(out)} rows: {int(out['label'].sum())} flagged as anomalies; wrote {output}")


def _score_dask(model_file: Path, data: Path, output: Path, domain: str | None, domain_column: str | None, columns: list[str] | None,
                id_column: str | None, scheduler: str | None, workers: int | None, on_bad: str, quiet: bool) -> None:
    from flowad.dask import cluster, write_scores

    if on_bad not in ("stop", "skip"):
        raise InputError(f"--on-bad must be 'stop' or 'skip', got {on_bad!r}.")
    load(model_file)  # a bad model file fails before a cluster starts
    with cluster(scheduler, workers) as client:
        report = write_scores(
            model_file, data, output, columns=columns, id_column=id_column, domain=domain, domain_column=domain_column,
            on_bad=on_bad, client=client, progress=not quiet,
        )
    for bad in report.bad:
        typer.echo(f"flowad: warning: skipped {bad['where']}: {bad['error']}", err=True)
    if not quiet:
        skipped = f"; {len(report.bad)} bad partition(s) skipped, listed in {output / '_bad_partitions.csv'}" if report.bad else ""
        typer.echo(f"Scored {report.rows} rows in {report.parts} partition(s): {report.flagged} flagged as anomalies; wrote {output}{skipped}")


@app.command()
@user_errors
def info(model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file.")) -> None:
    """Describe a model file: kind, versions, features, domains, thresholds, hyper-parameters."""
    from flowad.io.model_file import read_model_file

    _, manifest = read_model_file(model_file)
    det = load(model_file)
    lines = [
        f"model:        {manifest['kind']} ({type(det).__name__})",
        f"written by:   flowad {manifest.get('flowad_version')} (torch {manifest.get('torch_version')}), file format {manifest.get('format_version')}",
        f"features:     {det.n_features_in_}" + (f" {list(det.feature_names_in_)[:12]}{' ...' if det.n_features_in_ > 12 else ''}" if hasattr(det, "feature_names_in_") else ""),
    ]
    if hasattr(det, "domains_"):
        weights = det.mixture_weights_ if hasattr(type(det), "mixture_weights_") else {}
        for name in det.domains_:
            w = weights.get(name, "n/a")
            density = "" if w == "n/a" else ("; scored by the flow alone" if w is None else f"; flow weight {w:g} in w*p_flow + (1-w)*p_gauss")
            lines.append(f"domain:       {name!r}: threshold {det.thresholds_[name]:.6g}, {det.domain_counts_.get(name, '?')} rows seen{density}")
        if hasattr(det, "image_shape_"):
            lines.append(f"images:       {tuple(det.image_shape_)} (C, H, W)")
    else:
        lines.append(f"threshold:    {det.threshold_:.6g} (contamination {det.contamination})")
    lines.append("parameters:   " + json.dumps(manifest["params"], sort_keys=True))
    typer.echo("\n".join(lines))


@app.command()
@user_errors
def adapt(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="AdaFlow model file."),
    data: Path = typer.Argument(..., help="Normal rows of the domain (with --dask: also a folder of Parquet/CSV files)."),
    domain: str = typer.Option(..., help="Domain name (new, or replaced)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the adapted model here (default: update MODEL in place, atomically)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    dask: bool = typer.Option(False, "--dask", help=_DASK_HELP + " Takes n_layers + 3 passes over the data (n_layers + 1 for a flow-only model)."),
    scheduler: str = typer.Option(None, "--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP),
    workers: int = typer.Option(None, "--workers", help=_WORKERS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Add or update a domain's statistics with forward passes only (no gradients)."""
    _check_dask_options(dask, scheduler, workers, data)
    det = load(model_file)
    if not hasattr(det, "adapt"):
        raise InputError(f"{str(model_file)!r} holds a {type(det).__name__} model, which has no domains to adapt; use an adaflow model.")
    target = output or model_file
    check_output(target)
    if dask:
        from flowad.dask import adapt as dask_adapt
        from flowad.dask import cluster

        with cluster(scheduler, workers) as client:
            det = dask_adapt(model_file, data, domain=domain, columns=split_columns(columns), client=client, progress=not quiet)
        rows = det.domain_counts_[domain]
    else:
        frame = read_table(data)
        check_columns(frame, columns=split_columns(columns))
        det.adapt(_features(frame, det, split_columns(columns), []), domain=domain)
        rows = len(frame)
    det.save(target)
    if not quiet:
        typer.echo(f"Adapted domain {domain!r} on {rows} rows (threshold {det.thresholds_[domain]:.4g}); wrote {target}")


@app.command()
@user_errors
def translate(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="AdaFlow model file."),
    data: Path = typer.Argument(..., help="Rows from the source domain."),
    source: str = typer.Option(..., help="Domain the rows come from."),
    target: str = typer.Option(..., help="Domain to translate them to."),
    output: Path = typer.Option(..., "--output", "-o", help="Translated rows (.csv, .parquet, .npz)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    id_column: str = typer.Option(None, help="Row-id column copied to the output."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Map rows from one domain to another through the shared latent space."""
    det = load(model_file)
    if not hasattr(det, "translate"):
        raise InputError(f"{str(model_file)!r} holds a {type(det).__name__} model, which cannot translate between domains; use an adaflow model.")
    check_output(output)
    frame = read_table(data)
    check_columns(frame, columns=split_columns(columns), id_column=id_column)
    X = _features(frame, det, split_columns(columns), [c for c in (id_column,) if c])
    moved = det.translate(X, source=source, target=target)
    out = pd.DataFrame(moved, columns=list(X.columns))
    out.insert(0, "id", _ids(frame, id_column))
    write_table(out, output)
    if not quiet:
        typer.echo(f"Translated {len(out)} rows from {source!r} to {target!r}; wrote {output}")
