"""Speed benchmark: fit time per epoch and scoring throughput against peer RealNVPs.

flowad's three RealNVP variants (plain, trimmed, trimmed + spectral norm) and the RealNVP of
maintained peer libraries (zuko, nflows) are built with the same depth and widths and trained
by the *same* loop on the same standardized data: shuffled minibatches, Adam with the same
learning rate and weight decay, gradient-norm clipping and a host read of the loss every step
(as :func:`flowad.training.fit_flow` does). Only the flow and the loss (mean or trimmed mean of
the negative log-likelihood) differ, so the ratios measure the model implementations.

All timings run on one CPU thread. Models are timed round-robin (``repeats`` rounds of a short
fit and a scoring pass each, after a warm-up) so that a load change on the machine hits all of
them alike; the tables report medians. Epochs are timed individually (for flowad through
``fit_flow``'s ``on_epoch`` callback), so one-off work at the end of a fit (flowad's final
spectral-norm refinement) is not charged to every epoch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from flowad.datasets.synthetic import gaussian_mixture
from flowad.exceptions import InputError
from flowad.flows.realnvp import build_realnvp
from flowad.preprocessing import standardize
from flowad.training.config import TrainConfig
from flowad.training.loop import fit_flow
from flowad_bench.runner import torch_threads

__all__ = [
    "SpeedConfig",
    "MODEL_NAMES",
    "default_datasets",
    "run_speed",
    "speed_ratios",
    "summarize_speed",
    "format_speed_report",
]

#: Models in the order of the tables; peers are skipped when their library is missing.
MODEL_NAMES: tuple[str, ...] = ("flowad RealNVP", "flowad TrimRealNVP", "flowad RobustRealNVP", "zuko RealNVP", "nflows SimpleRealNVP")


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """Settings shared by every model of :func:`run_speed`.

    Attributes
    ----------
    n_couplings : int
        Coupling layers of every flow.
    hidden : tuple of int
        Hidden widths of every coupling network.
    batch_size : int
        Minibatch size.
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam weight decay.
    grad_clip : float or None
        Gradient-norm clipping (applied to every model alike).
    trim_ratio : float
        Trim ratio of TrimRealNVP and RobustRealNVP.
    lipschitz_k : float
        Spectral-norm bound of RobustRealNVP.
    repeats : int
        Timed rounds per model (each: a fit of ``epochs_per_repeat`` epochs, then one
        scoring pass); medians over all timed epochs and passes are reported.
    epochs_per_repeat : int
        Epochs of each timed fit.
    score_batch : int
        Rows per forward pass when scoring.
    threads : int
        torch CPU threads during the measurement (restored afterwards).
    seed : int
        Seed of the weights and of the minibatch order.
    """

    n_couplings: int = 6
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    grad_clip: float | None = 10.0
    trim_ratio: float = 0.1
    lipschitz_k: float = 1.0
    repeats: int = 5
    epochs_per_repeat: int = 2
    score_batch: int = 8192
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.epochs_per_repeat < 1:
            raise InputError(f"repeats and epochs_per_repeat must be >= 1, got {self.repeats}, {self.epochs_per_repeat}.")
        if self.batch_size < 2:
            raise InputError(f"batch_size must be >= 2, got {self.batch_size}.")


def default_datasets(n_samples: int = 10_000, n_features: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """The synthetic benchmark data: a 4-component Gaussian mixture of ``n_samples x n_features``."""
    X, _ = gaussian_mixture(n_samples, n_features, random_state=seed)
    return {f"gmm {n_samples}x{n_features}": X}


def _now() -> tuple[float, float]:
    """Wall-clock and this thread's CPU time, in seconds."""
    return time.perf_counter(), time.thread_time()


# ------------------------------------------------------------------------------- models
class _Runner:
    """One model under test: ``fit(X, epochs)`` trains and returns the duration of each epoch,
    ``score(X)`` returns log-densities."""

    def __init__(self, module: nn.Module, log_prob: Callable[[Tensor], Tensor]) -> None:
        self.module = module
        self.log_prob = log_prob

    def fit(self, X: Tensor, epochs: int, config: SpeedConfig, generator: torch.Generator) -> list[tuple[float, float]]:
        """Train ``epochs`` epochs; return ``(wall, cpu)`` seconds of each."""
        raise NotImplementedError

    def score(self, X: Tensor, batch: int) -> Tensor:
        self.module.eval()
        with torch.inference_mode():
            return torch.cat([self.log_prob(X[i : i + batch]) for i in range(0, X.shape[0], batch)])


class _FlowadRunner(_Runner):
    """flowad's own training loop, :func:`flowad.training.fit_flow`, timed epoch by epoch through
    its ``on_epoch`` callback (so one-off work after the last epoch is not counted per epoch)."""

    def __init__(self, trim_ratio: float, lipschitz_k: float | None, features: int, config: SpeedConfig) -> None:
        flow = build_realnvp(features, n_couplings=config.n_couplings, hidden=config.hidden, lipschitz_k=lipschitz_k)
        super().__init__(flow, flow.log_prob)
        self.flow = flow
        self.trim_ratio = trim_ratio

    def fit(self, X: Tensor, epochs: int, config: SpeedConfig, generator: torch.Generator) -> list[tuple[float, float]]:
        train_config = TrainConfig(
            epochs=epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            weight_decay=config.weight_decay,
            trim_ratio=self.trim_ratio,
            grad_clip=config.grad_clip,
        )
        stamps = [_now()]
        fit_flow(self.flow, X, train_config, generator=generator, on_epoch=lambda e, loss: stamps.append(_now()))
        return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps[:-1], stamps[1:], strict=False)]


class _PeerRunner(_Runner):
    """A peer flow trained by a loop equivalent to flowad's (same optimiser, clipping, checks)."""

    def __init__(self, module: nn.Module, log_prob: Callable[[Tensor], Tensor]) -> None:
        super().__init__(module, log_prob)
        self.params = [p for p in module.parameters() if p.requires_grad]

    def fit(self, X: Tensor, epochs: int, config: SpeedConfig, generator: torch.Generator) -> list[tuple[float, float]]:
        # Mirrors flowad.training.fit_flow step by step: a fresh Adam per fit, shuffled
        # minibatches, a finiteness check and a host read of the loss every step, clipping.
        optimizer = torch.optim.Adam(self.params, lr=config.lr, weight_decay=config.weight_decay)
        n = X.shape[0]
        bs = min(config.batch_size, n)
        durations = []
        self.module.train()
        for _ in range(epochs):
            t0 = _now()
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                loss = -self.log_prob(X[idx]).mean()
                if not torch.isfinite(loss):
                    raise FloatingPointError("peer loss is not finite")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
                    if not torch.isfinite(norm):
                        raise FloatingPointError("peer gradient norm is not finite")
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
            t1 = _now()
            durations.append((t1[0] - t0[0], t1[1] - t0[1]))
        self.module.eval()
        return durations


def _make_zuko(features: int, config: SpeedConfig) -> _Runner | None:
    try:
        import zuko
    except ImportError:  # pragma: no cover - optional peer
        return None
    flow = zuko.flows.RealNVP(features, transforms=config.n_couplings, hidden_features=tuple(config.hidden))
    return _PeerRunner(flow, lambda x: flow().log_prob(x))


def _make_nflows(features: int, config: SpeedConfig) -> _Runner | None:
    try:
        from nflows.flows import SimpleRealNVP
    except ImportError:  # pragma: no cover - optional peer
        return None
    if len(set(config.hidden)) != 1:
        return None  # nflows' ResidualNet has one width for all hidden layers
    # ResidualNet(in -> h, 1 residual block of 2 h -> h layers, h -> out): len(hidden) = 2
    # hidden layers of width h, plus the block's skip path; the closest nflows match.
    flow = SimpleRealNVP(
        features, hidden_features=config.hidden[0], num_layers=config.n_couplings, num_blocks_per_layer=max(1, len(config.hidden) - 1)
    )
    return _PeerRunner(flow, flow.log_prob)


def _build(name: str, features: int, config: SpeedConfig) -> _Runner | None:
    if name == "flowad RealNVP":
        return _FlowadRunner(0.0, None, features, config)
    if name == "flowad TrimRealNVP":
        return _FlowadRunner(config.trim_ratio, None, features, config)
    if name == "flowad RobustRealNVP":
        return _FlowadRunner(config.trim_ratio, config.lipschitz_k, features, config)
    if name == "zuko RealNVP":
        return _make_zuko(features, config)
    if name == "nflows SimpleRealNVP":
        return _make_nflows(features, config)
    raise InputError(f"model must be one of {list(MODEL_NAMES)}, got {name!r}.")


# ------------------------------------------------------------------------------- runner
def run_speed(
    datasets: Mapping[str, np.ndarray],
    config: SpeedConfig | None = None,
    *,
    models: Sequence[str] = MODEL_NAMES,
) -> pd.DataFrame:
    """Time every model on every dataset; return one row per (dataset, model, repeat).

    Parameters
    ----------
    datasets : mapping of str -> ndarray of shape (n_samples, n_features)
        Data to train and score on (standardized here with its own statistics,
        :func:`flowad.preprocessing.standardize`).
    config : SpeedConfig or None, default=None
        Shared settings; None means ``SpeedConfig()``.
    models : sequence of str, default=MODEL_NAMES
        Models to time; peers whose library is not installed are skipped.

    Returns
    -------
    DataFrame
        One row per timed epoch: ``dataset``, ``n_samples``, ``n_features``, ``model``,
        ``repeat``, ``epoch``, ``epoch_seconds`` (wall clock), ``epoch_cpu_seconds`` (CPU time
        of the measuring thread), and the scoring throughput of that repeat's scoring pass,
        ``score_rows_per_s`` (wall) and ``score_rows_per_cpu_s`` (CPU).
    """
    config = SpeedConfig() if config is None else config
    rows: list[dict[str, Any]] = []
    with torch_threads(config.threads), torch.random.fork_rng(devices=[]):
        for ds_name, X_np in datasets.items():
            X_np = np.asarray(X_np, dtype=np.float64)
            if X_np.ndim != 2 or X_np.shape[0] < 2:
                raise InputError(f"dataset {ds_name!r} must be 2-D with >= 2 rows, got shape {X_np.shape}.")
            (X_std,) = standardize(X_np)
            X = torch.as_tensor(X_std, dtype=torch.float32)
            runners: dict[str, _Runner] = {}
            for name in models:
                torch.manual_seed(config.seed)  # same initial-weight stream for every model
                runner = _build(name, X.shape[1], config)
                if runner is not None:
                    runners[name] = runner
            gens = {name: torch.Generator().manual_seed(config.seed) for name in runners}
            for name, runner in runners.items():  # warm-up: allocator, autograd and dispatch caches
                runner.fit(X, 1, config, gens[name])
                runner.score(X, config.score_batch)
            for rep in range(config.repeats):
                for name, runner in runners.items():
                    epoch_times = runner.fit(X, config.epochs_per_repeat, config, gens[name])
                    t0 = _now()
                    runner.score(X, config.score_batch)
                    t1 = _now()
                    for i, (wall, cpu) in enumerate(epoch_times):
                        rows.append(
                            {
                                "dataset": ds_name,
                                "n_samples": int(X.shape[0]),
                                "n_features": int(X.shape[1]),
                                "model": name,
                                "repeat": rep,
                                "epoch": i,
                                "epoch_seconds": wall,
                                "epoch_cpu_seconds": cpu,
                                "score_rows_per_s": X.shape[0] / (t1[0] - t0[0]),
                                "score_rows_per_cpu_s": X.shape[0] / (t1[1] - t0[1]),
                            }
                        )
    return pd.DataFrame(rows)


def summarize_speed(results: pd.DataFrame) -> pd.DataFrame:
    """Median epoch time and scoring throughput per (dataset, model), in the input's order."""
    g = results.groupby(["dataset", "model"], sort=False)
    scoring = results.drop_duplicates(["dataset", "model", "repeat"]).groupby(["dataset", "model"], sort=False)
    return pd.DataFrame(
        {
            "epoch_seconds": g["epoch_seconds"].median(),
            "epoch_cpu_seconds": g["epoch_cpu_seconds"].median(),
            "score_rows_per_s": scoring["score_rows_per_s"].median(),
            "score_rows_per_cpu_s": scoring["score_rows_per_cpu_s"].median(),
            "timed_epochs": g.size(),
        }
    ).reset_index()


def speed_ratios(results: pd.DataFrame) -> pd.DataFrame:
    """The target ratios of issue 2, from medians measured in the same run.

    Per dataset and clock (``cpu``: CPU time of the measuring thread, robust to other load on
    a shared machine; ``wall``: wall clock): TrimRealNVP's and RobustRealNVP's epoch time over
    flowad RealNVP's (target for RobustRealNVP: <= 1.3), and flowad RealNVP's epoch time and
    scoring time per row over each peer's (target for the epoch: <= 1.0). Ratios whose models
    were not run are left out.
    """
    med = summarize_speed(results).set_index(["dataset", "model"])
    columns = {
        ("epoch time", "cpu"): ("epoch_cpu_seconds", False),
        ("epoch time", "wall"): ("epoch_seconds", False),
        ("scoring time per row", "cpu"): ("score_rows_per_cpu_s", True),
        ("scoring time per row", "wall"): ("score_rows_per_s", True),
    }
    pairs: list[tuple[str, str, str, float | None]] = [
        ("flowad TrimRealNVP", "flowad RealNVP", "epoch time", None),
        ("flowad RobustRealNVP", "flowad RealNVP", "epoch time", 1.3),
    ]
    for peer in ("zuko RealNVP", "nflows SimpleRealNVP"):
        pairs += [
            ("flowad RealNVP", peer, "epoch time", 1.0),
            ("flowad RobustRealNVP", peer, "epoch time", None),
            ("flowad RealNVP", peer, "scoring time per row", None),
            ("flowad RobustRealNVP", peer, "scoring time per row", None),
        ]
    out: list[dict[str, Any]] = []
    for ds in dict.fromkeys(results["dataset"]):
        m = med.loc[ds]
        for num, den, what, target in pairs:
            if num not in m.index or den not in m.index:
                continue
            row: dict[str, Any] = {"dataset": ds, "ratio": f"{num} / {den}", "measure": what}
            for clock in ("cpu", "wall"):
                col, inverse = columns[(what, clock)]
                a, b = float(m.loc[num, col]), float(m.loc[den, col])
                row[clock] = b / a if inverse else a / b  # throughput -> time per row
            row["target"] = target
            row["met"] = None if target is None else bool(row["cpu"] <= target)
            out.append(row)
    return pd.DataFrame(out)


def format_speed_report(results: pd.DataFrame, config: SpeedConfig) -> str:
    """Markdown report: settings, the median table and the ratio table."""
    med = summarize_speed(results)
    lines = [
        f"Settings: {config.n_couplings} couplings, hidden {tuple(config.hidden)}, batch {config.batch_size}, "
        f"Adam lr {config.lr}, weight decay {config.weight_decay}, grad clip {config.grad_clip}, "
        f"trim {config.trim_ratio}, lipschitz_k {config.lipschitz_k}, {config.threads} thread(s), "
        f"{config.repeats} rounds x {config.epochs_per_repeat} timed epochs (medians), torch {torch.__version__}.",
        "CPU = CPU time of the measuring thread (robust to other load on the machine); wall = wall clock.",
        "",
        "| dataset | model | epoch CPU (s) | epoch wall (s) | scoring (rows/CPU s) | scoring (rows/s wall) |",
        "|---|---|---|---|---|---|",
    ]
    for r in med.itertuples(index=False):
        lines.append(
            f"| {r.dataset} | {r.model} | {r.epoch_cpu_seconds:.4f} | {r.epoch_seconds:.4f} "
            f"| {r.score_rows_per_cpu_s:,.0f} | {r.score_rows_per_s:,.0f} |"
        )
    lines += [
        "",
        "| dataset | ratio | measure | CPU | wall | target | met (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed_ratios(results).itertuples(index=False):
        target = "" if r.target is None or pd.isna(r.target) else f"≤ {r.target:.1f}"
        met = "" if r.met is None or pd.isna(r.met) else ("yes" if r.met else "**no**")
        lines.append(f"| {r.dataset} | {r.ratio} | {r.measure} | {r.cpu:.3f} | {r.wall:.3f} | {target} | {met} |")
    return "\n".join(lines) + "\n"
