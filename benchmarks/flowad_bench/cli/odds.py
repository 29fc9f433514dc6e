"""``flowad bench odds`` and the study's other experiments (sensitivity, ablation, embeddings).

Parsing only: every command calls a runner of :mod:`flowad_bench` and prints where the
results went. Each output folder gets a resumable ``results.csv``, a markdown table and a PNG.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from flowad.cli import user_errors
from flowad.exceptions import InputError
from flowad_bench.cli import bench_app
from flowad_bench.record import command_line

_DATA = typer.Option(
    ..., "--data", "-d", help="Folder of datasets (.npz with X, y; ODDS .mat; CSV with a label column)."
)
_OUT = typer.Option(..., "--out", "-o", help="Output folder; an existing results.csv there is resumed.")
_SEEDS = typer.Option(5, "--seeds", help="Number of seeds (0 .. N-1); --quick uses 1.")
_JOBS = typer.Option(1, "--jobs", "-j", help="Worker processes (one torch thread each).")
_QUICK = typer.Option(False, "--quick", help="Smoke test: one seed, the three smallest datasets, few epochs.")
_DATASETS = typer.Option(None, "--datasets", help="Comma-separated dataset file stems (default: all files in --data).")
_NO_PROGRESS = typer.Option(False, "--no-progress", help="Hide the progress bar.")


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v for v in value.replace(" ", ",").split(",") if v]


def _floats(value: str, name: str) -> list[float]:
    try:
        return [float(v) for v in _split(value) or []]
    except ValueError:
        raise InputError(f"{name} must be comma-separated numbers, got {value!r}.") from None


def _run(runner: Callable[..., Any], what: str, no_progress: bool, *args: Any, **kwargs: Any) -> None:
    """Call a benchmark runner with the progress flag and the command as typed; print what it did."""
    run = runner(*args, progress=not no_progress, command=command_line(), **kwargs)
    s = run.summary
    for sk in run.skipped:
        typer.echo(f"skipped {sk.name!r} ({sk.path}): {sk.reason}", err=True)
    for tid, err in s.failures:
        typer.echo(f"FAILED {tid}: {err}", err=True)
    typer.echo(
        f"{what}: {s.n_done} run(s) done, {s.n_skipped} resumed from {run.results_csv}, {len(s.failures)} failed; "
        f"table: {run.table_md}; plot: {run.plot_png}"
    )


@bench_app.command("odds")
@user_errors
def odds(
    data: list[Path] = typer.Option(
        ..., "--data", "-d",
        help="Folder of datasets (.npz with X, y; ODDS .mat; CSV with a label column); repeat for several "
        "folders in one run and one table (e.g. --data ../shared/data/odds --data ../shared/data/adbench_dev).",
    ),
    out: Path = _OUT,
    methods: str = typer.Option(
        "all",
        "--methods",
        "-m",
        help="Comma-separated methods or groups: all, flowad, pyod, baselines (IForest, KNN, LOF, ECOD, COPOD, HBOS, "
        "PCA, MCD), none; RealNVP, TrimRealNVP, RobustRealNVP, TrimmedGaussian (RobustRealNVP's Gaussian core "
        "alone), IForest, LOF, OCSVM, KNN, ECOD, COPOD, HBOS, PCA, MCD, AutoEncoder, VAE, DeepSVDD, SO_GAAL.",
    ),
    variant: list[str] = typer.Option(
        [], "--variant", "-V",
        help="NAME:key=value[,key=value...] (repeatable): run method NAME with these constructor arguments "
        "(Python literals: True, 0.1, (32, 32), 'auto') as its own row label NAME[key=value,...].",
    ),
    max_rows: int = typer.Option(
        None, "--max-rows", help="Subsample datasets with more rows to this many first (stratified, fixed seed)."
    ),
    train_rows: int = typer.Option(
        None, "--train-rows",
        help="Small-data track: subsample each training split to this many rows (stratified, protocol seed, at "
        "least 5 anomalies kept when the split has them); the test split is unchanged.",
    ),
    reuse: list[Path] = typer.Option(
        [], "--reuse", help="results.csv of an earlier run (repeatable): its rows of this run's tasks are copied, not re-run."
    ),
    seeds: int = _SEEDS,
    jobs: int = _JOBS,
    quick: bool = _QUICK,
    datasets: str = _DATASETS,
    contamination: str = typer.Option(
        "default",
        help="'default': every detector keeps its default contamination; 'oracle': told the training split's true anomaly fraction (uses training labels).",
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: write table.md and auc.png from the rows already in results.csv."
    ),
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """The RobustRealNVP study's ODDS protocol: every method × dataset × seed, stratified 60/40
    split, unlabeled contaminated training, test ROC AUC / AP; table with the published AUCs.
    Also the development set (several --data folders, --max-rows), its small-data track
    (--train-rows) and candidate defaults (--variant)."""
    from flowad_bench.odds import run_odds

    _run(
        run_odds,
        "odds",
        no_progress,
        data,
        out,
        methods=methods,
        datasets=_split(datasets),
        seeds=seeds,
        jobs=jobs,
        quick=quick,
        contamination=contamination,
        variants=variant,
        max_rows=max_rows,
        train_rows=train_rows,
        reuse=reuse,
        report_only=report_only,
    )


@bench_app.command("trim-sensitivity")
@user_errors
def trim_sensitivity(
    data: Path = _DATA,
    out: Path = _OUT,
    trim_ratios: str = typer.Option("0.05,0.075,0.1,0.15,0.2", "--trim-ratios", help="Comma-separated trim ratios."),
    methods: str = typer.Option("RobustRealNVP", "--methods", "-m", help="Trimmed flowad methods."),
    design: str = typer.Option(
        "subsample", "--design",
        help="subsample: the largest set of distinct training rows with 10 % anomalies (datasets with too "
        "few anomalies skipped); resample: all normal rows kept, anomalies drawn again (with replacement "
        "when too few, so rows repeat).",
    ),
    seeds: int = _SEEDS,
    jobs: int = _JOBS,
    quick: bool = _QUICK,
    datasets: str = _DATASETS,
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """Sensitivity to a misestimated trim ratio: training split brought to a true contamination
    of 0.1 from its own rows (--design), flows trained with each trim ratio."""
    from flowad_bench.sensitivity import run_trim_sensitivity

    ratios = _floats(trim_ratios, "--trim-ratios")
    _run(run_trim_sensitivity, "trim-sensitivity", no_progress, data, out, trim_ratios=ratios, methods=methods,
         datasets=_split(datasets), seeds=seeds, jobs=jobs, quick=quick, design=design)


@bench_app.command("contamination-sensitivity")
@user_errors
def contamination_sensitivity(
    data: Path = _DATA,
    out: Path = _OUT,
    contaminations: str = typer.Option(
        "0.1,0.2,0.3,0.4", "--contaminations", help="Comma-separated true training contaminations."
    ),
    trim: float = typer.Option(
        None, "--trim", help="Fixed trim ratio of the trimmed flows (default: the true contamination)."
    ),
    methods: str = typer.Option("flowad", "--methods", "-m", help="Methods or groups."),
    design: str = typer.Option(
        "subsample", "--design",
        help="subsample: every level from distinct training rows, same training size at every level "
        "(datasets with too few anomalies skipped); resample: all normal rows kept, anomalies drawn again "
        "(with replacement when too few, so rows repeat).",
    ),
    variant: list[str] = typer.Option(
        None, "--variant", "-V",
        help="NAME:key=value[,key=value...] (repeatable): also run method NAME with these constructor "
        "arguments (over the study's) as its own row label, e.g. RobustRealNVP:trim_ratio=0.1.",
    ),
    seeds: int = _SEEDS,
    jobs: int = _JOBS,
    quick: bool = _QUICK,
    datasets: str = _DATASETS,
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """Sensitivity to the true training contamination: the training split brought to each level
    from its own rows (--design); test split untouched."""
    from flowad_bench.sensitivity import run_contamination_sensitivity

    levels = _floats(contaminations, "--contaminations")
    _run(run_contamination_sensitivity, "contamination-sensitivity", no_progress, data, out, contaminations=levels,
         trim=trim, methods=methods, datasets=_split(datasets), seeds=seeds, jobs=jobs, quick=quick, design=design,
         variants=variant or ())


@bench_app.command("trim-rule")
@user_errors
def trim_rule(
    data: list[Path] = typer.Option(
        ..., "--data", "-d", help="Dataset folder (repeat for several, e.g. --data ../shared/data/odds --data ../shared/data/adbench_dev)."
    ),
    out: Path = _OUT,
    trims: str = typer.Option("0.1,0.2", "--trims", help="Comma-separated candidate trim ratios (at least two)."),
    max_rows: int = typer.Option(
        None, "--max-rows", help="Subsample datasets with more rows to this many first (stratified, fixed seed)."
    ),
    seeds: int = typer.Option(2, "--seeds", help="Number of seeds (0 .. N-1)."),
    jobs: int = _JOBS,
    datasets: str = _DATASETS,
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: write table.md and rules.png from the rows already in results.csv."
    ),
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """Can a rule that reads no label choose RobustRealNVP's trim ratio? Held-out trimmed NLL and a
    robust Gaussian's outlier fraction against the test AUC of every candidate."""
    from flowad_bench.trim_rule import run_trim_rule

    _run(run_trim_rule, "trim-rule", no_progress, data, out, trims=_floats(trims, "--trims"), datasets=_split(datasets),
         seeds=seeds, max_rows=max_rows, jobs=jobs, report_only=report_only)


@bench_app.command("sn-ablation")
@user_errors
def sn_ablation(
    data: Path = _DATA,
    out: Path = _OUT,
    seeds: int = _SEEDS,
    jobs: int = _JOBS,
    quick: bool = _QUICK,
    datasets: str = _DATASETS,
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """Spectral-normalization ablation: TrimRealNVP vs RobustRealNVP, paired per dataset and seed
    (reuses the rows of an ODDS run when --out is its folder)."""
    from flowad_bench.sensitivity import run_sn_ablation

    _run(run_sn_ablation, "sn-ablation", no_progress, data, out, datasets=_split(datasets), seeds=seeds, jobs=jobs, quick=quick)


@bench_app.command("embeddings")
@user_errors
def embeddings(
    data: Path = typer.Option(
        ..., "--data", "-d",
        help="Folder of embedding .npz files: X and integer class labels y, or ADBench one-class files "
        "<name>_<k>.npz (y 0/1; the normal rows are class k; files sharing <name> are pooled).",
    ),
    out: Path = _OUT,
    methods: str = typer.Option(
        "RealNVP,TrimRealNVP,RobustRealNVP,IForest", "--methods", "-m", help="Methods or groups of the table."
    ),
    modes: str = typer.Option(
        "u,c", "--modes", help="'u': contamination uniform over other classes; 'c': from one other class."
    ),
    classes: str = typer.Option(None, "--classes", help="Comma-separated normal classes (default: all)."),
    max_train: int = typer.Option(None, "--max-train", help="Cap on the training pool of normals per task."),
    pca_dim: int = typer.Option(128, "--pca-dim", help="PCA dimension (fitted on the training set)."),
    pca_fit: str = typer.Option(
        "all", "--pca-fit",
        help="Training rows the PCA is fitted on: 'all' (the protocol); 'trimmed' (those a trimmed Gaussian "
        "keeps at the true contamination; label-free); 'normal' (the normal rows: uses labels, a diagnosis only).",
    ),
    trim_ratios: str = typer.Option(
        "", "--trim-ratios", help="Trim-ratio study: RobustRealNVP's trim ratios at true contamination 0.1 (-u)."
    ),
    contaminations: str = typer.Option(
        "", "--contaminations", help="Contamination study: true training contaminations (-u), e.g. 0.1,0.2,0.3,0.4."
    ),
    sensitivity_methods: str = typer.Option(
        "RobustRealNVP,RealNVP,TrimRealNVP,IForest", "--sensitivity-methods", help="Methods of the contamination study."
    ),
    sensitivity_seeds: int = typer.Option(None, "--sensitivity-seeds", help="Seeds of the two studies (default: --seeds)."),
    seeds: int = _SEEDS,
    jobs: int = _JOBS,
    quick: bool = typer.Option(
        False, "--quick", help="One seed, two normal classes, at most 500 training normals, few epochs."
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: write table.md and plots from the rows already in results.csv."
    ),
    variant: list[str] = typer.Option(
        None, "--variant", "-V",
        help="NAME:key=value[,key=value...] (repeatable): also run method NAME with these constructor "
        "arguments as its own row label, in the table and the contamination study (over the study's trim ratio).",
    ),
    own_anomalies: bool = typer.Option(
        False, "--own-anomalies",
        help="Do not pool one-class files: each is a dataset whose anomalies are its own anomaly rows "
        "(ADBench's CIFAR-10 files: images of all nine other classes, the study's uniform setting).",
    ),
    no_progress: bool = _NO_PROGRESS,
) -> None:
    """The image-embedding protocol: one class normal, training contamination 0.1 (-u uniform or
    -c single other class), PCA to 128 fitted on the training rows, balanced test set; optionally
    the trim-ratio and contamination studies (levels reached without repeating an anomaly row)."""
    from flowad_bench.embeddings import run_embeddings

    try:
        class_list = None if classes is None else [int(c) for c in _split(classes) or []]
    except ValueError:
        raise InputError(f"--classes must be comma-separated integers, got {classes!r}.") from None
    _run(run_embeddings, "embeddings", no_progress, data, out, methods=methods, modes=_split(modes) or [],
         classes=class_list, seeds=seeds, max_train=max_train, pca_dim=pca_dim,
         trim_ratios=_floats(trim_ratios, "--trim-ratios"), contaminations=_floats(contaminations, "--contaminations"),
         sensitivity_methods=sensitivity_methods, sensitivity_seeds=sensitivity_seeds, jobs=jobs, quick=quick,
         report_only=report_only, own_anomalies=own_anomalies, variants=variant or (), pca_fit=pca_fit)
