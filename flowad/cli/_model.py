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
from flowad.cli._common import check_output, progress, require_column, split_columns, user_errors
from flowad.detectors import DETECTOR_REGISTRY, load
from flowad.exceptions import InputError
from flowad.io.tables import read_table, select_features, write_table

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
    """Columns the model was fitted on (by name when it has names), else the selection rules."""
    names = getattr(det, "feature_names_in_", None)
    if columns is None and names is not None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InputError(f"The data lacks the model's feature columns {missing}; it has {list(map(str, frame.columns))}.")
        return frame[list(names)]
    return select_features(frame, columns, exclude)


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train a detector on DATA and write it to a model file."""
    if model not in MODEL_KINDS:
        raise InputError(f"--model must be one of {list(MODEL_KINDS)}, got {model!r}.")
    check_output(output)
    frame = read_table(data)
    domains = require_column(frame, domain_column, "Domain")
    if model == "adaflow" and domains is None:
        warnings.warn("adaflow without --domain-column: all rows form one domain named 'default'.", UserWarning, stacklevel=1)
    exclude = [c for c in (id_column, label_column, domain_column) if c]
    X = select_features(frame, split_columns(columns), exclude)
    params = {"random_state": seed, **_parse_set(set_)}
    if contamination is not None:
        params["contamination"] = contamination
    if epochs is not None:
        params["epochs"] = epochs
    cls = DETECTOR_REGISTRY[model]
    unknown = sorted(set(params) - set(cls().get_params()))
    if unknown:
        raise InputError(f"Unknown hyper-parameter(s) {unknown} for {model}; valid: {sorted(cls().get_params())}.")
    det = cls(**params)
    with progress(not quiet, f"fit {model}"):
        if domains is not None:
            det.fit(X, domains=domains)
        else:
            det.fit(X)
    det.save(output)
    if not quiet:
        typer.echo(f"Trained {model} on {X.shape[0]} rows x {X.shape[1]} features; threshold {det.threshold_:.4g}; wrote {output}")


@app.command()
@user_errors
def score(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by flowad fit."),
    data: Path = typer.Argument(..., help="Data to score: CSV, Parquet, .npy or .npz."),
    output: Path = typer.Option(..., "--output", "-o", help="Scores file (.csv, .parquet, .npz)."),
    domain: str = typer.Option(None, help="Domain of every row (multi-domain models)."),
    domain_column: str = typer.Option(None, help="Column giving each row's domain (multi-domain models)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    id_column: str = typer.Option(None, help="Row-id column copied to the output (default: the row number)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write each row's id, anomaly score (negative log-likelihood), log-density and 0/1 label."""
    check_output(output)
    det = load(model_file)
    frame = read_table(data)
    X = _features(frame, det, split_columns(columns), [c for c in (id_column, domain_column) if c])
    ids = _ids(frame, id_column)
    if domain is not None and domain_column is not None:
        raise InputError("Give --domain or --domain-column, not both.")
    if (domain is not None or domain_column is not None) and not hasattr(det, "domains_"):
        raise InputError(f"{str(model_file)!r} holds a single-domain {type(det).__name__} model; --domain/--domain-column apply to adaflow models.")
    per_row = require_column(frame, domain_column, "Domain")
    if per_row is None:
        kw = {} if domain is None else {"domain": domain}
        log_density = det.score_samples(X, **kw)
        threshold: Any = det.thresholds_[det.domains_[det._index(domain)]] if hasattr(det, "thresholds_") else det.threshold_
    else:
        log_density = np.empty(len(frame))
        threshold = np.empty(len(frame))
        for name in pd.unique(per_row.astype(str)):
            mask = per_row.astype(str) == name
            log_density[mask] = det.score_samples(X[mask], domain=name)
            threshold[mask] = det.thresholds_[name]
    anomaly = -log_density
    out = pd.DataFrame({"id": ids, "anomaly_score": anomaly, "log_density": log_density, "label": (anomaly > threshold).astype(np.int64)})
    write_table(out, output)
    if not quiet:
        typer.echo(f"Scored {len(out)} rows: {int(out['label'].sum())} flagged as anomalies; wrote {output}")


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
        for name in det.domains_:
            lines.append(f"domain:       {name!r}: threshold {det.thresholds_[name]:.6g}, {det.domain_counts_.get(name, '?')} rows seen")
    else:
        lines.append(f"threshold:    {det.threshold_:.6g} (contamination {det.contamination})")
    lines.append("parameters:   " + json.dumps(manifest["params"], sort_keys=True))
    typer.echo("\n".join(lines))


@app.command()
@user_errors
def adapt(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="AdaFlow model file."),
    data: Path = typer.Argument(..., help="Normal rows of the domain."),
    domain: str = typer.Option(..., help="Domain name (new, or replaced)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the adapted model here (default: update MODEL in place, atomically)."),
    columns: str = typer.Option(None, help="Comma-separated feature columns (default: the model's own feature names)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Add or update a domain's statistics with forward passes only (no gradients)."""
    det = load(model_file)
    if not hasattr(det, "adapt"):
        raise InputError(f"{str(model_file)!r} holds a {type(det).__name__} model, which has no domains to adapt; use an adaflow model.")
    target = output or model_file
    check_output(target)
    frame = read_table(data)
    det.adapt(_features(frame, det, split_columns(columns), []), domain=domain)
    det.save(target)
    if not quiet:
        typer.echo(f"Adapted domain {domain!r} on {len(frame)} rows (threshold {det.thresholds_[domain]:.4g}); wrote {target}")


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
    X = _features(frame, det, split_columns(columns), [c for c in (id_column,) if c])
    moved = det.translate(X, source=source, target=target)
    out = pd.DataFrame(moved, columns=list(X.columns))
    out.insert(0, "id", _ids(frame, id_column))
    write_table(out, output)
    if not quiet:
        typer.echo(f"Translated {len(out)} rows from {source!r} to {target!r}; wrote {output}")
