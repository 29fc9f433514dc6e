"""Adaptation cost of AdaFlow (the AdaFlow study's Table 2 setting) and streaming memory.

Two measurements, each producing figures from one run:

1. **Time** (one thread, D = 704, N = 1000 new-domain rows): AdaFlow's ``adapt`` against
   (a) fine-tuning the batch-norm flow on the same rows (:class:`~flowad.BatchNormFlow` with
   ``finetune_epochs > 0``) and (b) one scoring pass over the same rows
   (``score_samples``). Both detectors are first trained briefly on synthetic source domains:
   costs depend on the architecture and the row count, not on how well the model is trained.
   Adaptation and scoring are timed in alternation (adapt, score, adapt, ...), each the median
   of ``repeats`` runs after one warm-up; fine-tuning once (it is long). Every timed call goes through the public API, so input
   checks, standardization and the threshold are included on both sides; the bare flow
   passes (``update_statistics`` vs ``Flow.log_prob`` on a ready tensor) are reported too.
2. **Memory** of streaming adaptation from a chunk source, for each row count, in a fresh
   Python process that loads the fitted model from a file: the peak resident set size (Linux
   ``VmHWM``, reset through ``/proc/self/clear_refs`` just before ``adapt``) minus the resident
   size just before, and the peak of the allocations that ``tracemalloc`` sees (numpy; torch's
   CPU allocator is not traced, which is why RSS is the primary figure). Chunks are generated
   on the fly from per-chunk seeds, so nothing of size N is ever held. Each row count runs
   under glibc's default allocator and under a fixed ``MALLOC_MMAP_THRESHOLD_``: by default
   glibc raises its mmap threshold after large blocks are freed and then serves them from the
   heap, whose fragmentation raises the peak RSS with the number of chunks even though the
   live memory (tracemalloc) does not grow; the fixed threshold isolates that effect.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowad.detectors import AdaFlow, BatchNormFlow
from flowad.detectors._domains import CALIBRATION_MAX_ROWS
from flowad.flows.adaflow import adabn_layers, update_statistics

__all__ = ["AdaptationBenchConfig", "run_adaptation_benchmark", "format_report"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptationBenchConfig:
    """Settings of :func:`run_adaptation_benchmark` (defaults: the study's Table 2 setting)."""

    n_features: int = 704
    n_adapt: int = 1000
    n_source_domains: int = 2
    n_train_per_domain: int = 1000
    train_epochs: int = 2
    finetune_epochs: int = 50
    finetune_batch_size: int = 100
    finetune_lr: float = 1e-4
    repeats: int = 7
    memory_rows: tuple[int, ...] = (10_000, 1_000_000)
    chunk_size: int = 10_000
    #: glibc settings of the memory runs: None = the default allocator; a number = a fixed
    #: ``MALLOC_MMAP_THRESHOLD_`` in bytes (large blocks always mmapped, so freed chunks go back
    #: to the OS instead of fragmenting the heap).
    mmap_thresholds: tuple[int | None, ...] = (None, 1 << 20)
    dtype: str = "float32"
    seed: int = 0
    #: ``AdaFlow(stationary_frames=...)`` also timed (the sound pipeline's default: 11 log-mel frames
    #: of 64 bands = 704 features); skipped when it does not divide ``n_features``.
    stationary_frames: int = 11
    extra: dict[str, Any] = field(default_factory=dict)


def _domain_rows(rng: np.random.Generator, n: int, mixing: np.ndarray, shift: float, scale: float) -> np.ndarray:
    """Correlated Gaussian rows (a low-rank common part plus noise), moved and scaled per domain."""
    latent = rng.standard_normal((n, mixing.shape[0]))
    return (latent @ mixing + 0.5 * rng.standard_normal((n, mixing.shape[1]))) * scale + shift


def _framed_rows(rng: np.random.Generator, n: int, frames: int, mixing: np.ndarray, shift: float, scale: float) -> np.ndarray:
    """Rows that stack ``frames`` consecutive frames of a stationary signal (frame-major), as the
    sound pipeline's context windows do: a vector AR(1) process (coefficient 0.8) of
    ``mixing.shape[0]`` sources seen through ``mixing`` plus noise, cut into overlapping windows."""
    k, m = mixing.shape
    sources = np.empty((n + frames - 1, k))
    sources[0] = rng.standard_normal(k)
    for t in range(1, sources.shape[0]):
        sources[t] = 0.8 * sources[t - 1] + 0.6 * rng.standard_normal(k)
    signal = sources @ mixing + 0.5 * rng.standard_normal((sources.shape[0], m))
    windows = np.lib.stride_tricks.sliding_window_view(signal, (frames, m))[:, 0]
    return windows.reshape(n, frames * m) * scale + shift


def _stream_chunk(seed: int, index: int, rows: int, n_features: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    return rng.standard_normal((rows, n_features), dtype=np.float32) * 1.5 - 2.0


def _median_time(fn: Any, repeats: int, setup: Any = None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _adapt_and_score_times(det: AdaFlow, X: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median adaptation and scoring times of ``det`` on ``X`` (domain "target"), the two timed in
    alternation so that a change of the shared machine's load touches both alike."""
    adapt, score = [], []
    for _ in range(repeats):
        det.remove_domain("target")
        t0 = time.perf_counter()
        det.adapt(X, domain="target")
        adapt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        det.score_samples(X, domain="target")
        score.append(time.perf_counter() - t0)
    return float(np.median(adapt)), float(np.median(score))


def _timing(cfg: AdaptationBenchConfig, model_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(cfg.seed)
    d = cfg.n_features
    mixing = rng.standard_normal((16, d)) / 4.0
    X = np.vstack([_domain_rows(rng, cfg.n_train_per_domain, mixing, 2.0 * k, 1.0 + k) for k in range(cfg.n_source_domains)])
    domains = np.repeat([f"source-{k}" for k in range(cfg.n_source_domains)], cfg.n_train_per_domain)
    X_new = _domain_rows(rng, cfg.n_adapt, mixing, -3.0, 0.7)
    common = {"epochs": cfg.train_epochs, "dtype": cfg.dtype, "device": "cpu", "random_state": cfg.seed}

    t0 = time.perf_counter()
    ada = AdaFlow(**common).fit(X, domains=domains)
    train_ada = time.perf_counter() - t0
    bn = BatchNormFlow(
        finetune_epochs=cfg.finetune_epochs, finetune_batch_size=cfg.finetune_batch_size, finetune_lr=cfg.finetune_lr, **common
    ).fit(X, domains=domains)
    ada.save(model_path)

    # warm-up (allocator, kernels), then timed runs; each adaptation starts from an unknown domain
    ada.adapt(X_new, domain="target")
    ada.score_samples(X_new, domain="target")
    t_adapt, t_score = _adapt_and_score_times(ada, X_new, cfg.repeats)
    # the published AdaFlow (the flow alone) on the same trained flow
    flow_only = copy.deepcopy(ada).set_params(adapted_density="flow")
    flow_only.adapt(X_new, domain="target")
    flow_only.score_samples(X_new, domain="target")
    t_adapt_flow, t_score_flow = _adapt_and_score_times(flow_only, X_new, cfg.repeats)
    framed_times: dict[str, float] = {}
    if cfg.stationary_frames > 1 and d % cfg.stationary_frames == 0:
        # the sound pipeline's default: the same trained flow, each domain's Gaussian with the frame structure
        framed = copy.deepcopy(ada).set_params(stationary_frames=cfg.stationary_frames)
        framed.adapt(X_new, domain="target")
        framed.score_samples(X_new, domain="target")
        ta, ts = _adapt_and_score_times(framed, X_new, cfg.repeats)
        framed_times = {"adapt_frames_seconds": ta, "score_frames_seconds": ts, "adapt_frames_over_score_frames": ta / ts}
        # the same, trained and adapted on rows that are frames of a stationary signal (what the
        # option is for): the block-Toeplitz target then has few negative eigenvalues to clip
        f = cfg.stationary_frames
        frame_mixing = rng.standard_normal((16, d // f)) / 4.0
        Xf = np.vstack([_framed_rows(rng, cfg.n_train_per_domain, f, frame_mixing, 2.0 * k, 1.0 + k) for k in range(cfg.n_source_domains)])
        Xf_new = _framed_rows(rng, cfg.n_adapt, f, frame_mixing, -3.0, 0.7)
        stationary = AdaFlow(stationary_frames=f, **common).fit(Xf, domains=domains)
        stationary.adapt(Xf_new, domain="target")
        stationary.score_samples(Xf_new, domain="target")
        ta, ts = _adapt_and_score_times(stationary, Xf_new, cfg.repeats)
        framed_times |= {"adapt_stationary_seconds": ta, "score_stationary_seconds": ts,
                         "adapt_stationary_over_score_stationary": ta / ts}
    t0 = time.perf_counter()
    bn.adapt(X_new, domain="target")
    t_finetune = time.perf_counter() - t0

    # the bare flow passes, without input checks, standardization or threshold
    Z = ada._standardize(X_new)
    index = ada.domains_.index("target")
    ctx = torch.full((Z.shape[0],), index, dtype=torch.long)
    with torch.inference_mode():
        t_core_adapt = _median_time(lambda: update_statistics(ada.flow_.bijection, Z, index), cfg.repeats)
        t_core_score = _median_time(lambda: ada.flow_.log_prob(Z, ctx), cfg.repeats)

    return {
        "train_seconds_adaflow": train_ada,
        "adapt_seconds": t_adapt,
        "score_seconds": t_score,
        "finetune_seconds": t_finetune,
        "finetune_seconds_per_epoch": t_finetune / cfg.finetune_epochs,
        "core_adapt_seconds": t_core_adapt,
        "core_score_seconds": t_core_score,
        "adapt_flow_seconds": t_adapt_flow,
        "score_flow_seconds": t_score_flow,
        "finetune_over_adapt": t_finetune / t_adapt,
        "finetune_over_adapt_flow": t_finetune / t_adapt_flow,
        "adapt_over_score": t_adapt / t_score,
        "adapt_over_score_flow": t_adapt / t_score_flow,
        "adapt_flow_over_score_flow": t_adapt_flow / t_score_flow,
        "core_adapt_over_core_score": t_core_adapt / t_core_score,
        **framed_times,
        "adabn_layers": len(adabn_layers(ada.flow_.bijection)),
        "parameters": sum(p.numel() for p in ada.flow_.parameters()),
    }


def _memory_child(model_path: str, rows: int, chunk_size: int, seed: int) -> dict[str, Any]:
    """Run in a fresh process: stream ``rows`` generated rows into ``adapt``; report peaks."""
    torch.set_num_threads(1)
    from flowad.detectors import load

    det = load(model_path)
    n_features = det.n_features_in_
    n_chunks = -(-rows // chunk_size)
    passes = 0

    def source() -> Iterator[np.ndarray]:
        nonlocal passes
        passes += 1
        for i in range(n_chunks):
            yield _stream_chunk(seed, i, min(chunk_size, rows - i * chunk_size), n_features)

    clear_refs = Path("/proc/self/clear_refs")
    can_reset = True
    try:
        clear_refs.write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    except OSError:
        can_reset = False
    rss_before = _proc_status_mb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    det.adapt(source, domain="stream", chunk_size=chunk_size)
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _proc_status_mb("VmHWM")
    return {
        "rows": rows,
        "chunk_size": chunk_size,
        "passes": passes,
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak,
        "rss_peak_increase_mb": peak - rss_before if can_reset else None,
        "peak_reset": can_reset,
        "tracemalloc_peak_mb": traced_peak / 2**20,
        "calibration_scores_kept": int(det._calibration["stream"].size),
    }


def _proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not found in /proc/self/status (Linux only).")


def _memory(cfg: AdaptationBenchConfig, model_path: Path) -> list[dict[str, Any]]:
    out = []
    for threshold in cfg.mmap_thresholds:
        for rows in cfg.memory_rows:
            code = (
                "import json, sys; from flowad_bench.adaptation import _memory_child; "
                f"print(json.dumps(_memory_child({str(model_path)!r}, {int(rows)}, {int(cfg.chunk_size)}, {int(cfg.seed)})))"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
            env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            if threshold is not None:
                env["MALLOC_MMAP_THRESHOLD_"] = str(int(threshold))
            logger.info("streaming adaptation of %d rows in a child process (mmap threshold %s)", rows, threshold)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"memory measurement for {rows} rows failed:\n{res.stderr[-2000:]}")
            record = json.loads(res.stdout.strip().splitlines()[-1])
            record["allocator"] = "glibc default" if threshold is None else f"MALLOC_MMAP_THRESHOLD_={int(threshold)}"
            out.append(record)
    return out


def run_adaptation_benchmark(cfg: AdaptationBenchConfig | None = None) -> dict[str, Any]:
    """Measure adaptation time against fine-tuning and scoring, and streaming memory.

    Runs on one CPU thread (``torch.set_num_threads(1)``, restored afterwards).

    Returns
    -------
    dict
        ``config``, ``environment``, ``timing`` (seconds and ratios) and ``memory`` (one
        record per row count).
    """
    cfg = cfg or AdaptationBenchConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_path = Path(tmp) / "adaflow.flowad"
            timing = _timing(cfg, model_path)
            memory = _memory(cfg, model_path)
    finally:
        torch.set_num_threads(threads)
    import platform

    from flowad import __version__

    env = {
        "flowad": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": 1,
    }
    return {"config": asdict(cfg), "environment": env, "timing": timing, "memory": memory}


def format_report(result: dict[str, Any]) -> str:
    """Plain-text report of :func:`run_adaptation_benchmark`'s result."""
    c, t = result["config"], result["timing"]
    lines = [
        "AdaFlow adaptation benchmark (Table 2 setting: one thread, "
        f"D={c['n_features']}, N={c['n_adapt']}, {c['dtype']}; {t['adabn_layers']} AdaBN layers, {t['parameters']} parameters)",
        f"environment: {json.dumps(result['environment'])}",
        "",
        f"adapt (AdaFlow.adapt, default mixture, median of {c['repeats']}):          {1e3 * t['adapt_seconds']:9.2f} ms",
        f"score (AdaFlow.score_samples, default mixture, median of {c['repeats']}):  {1e3 * t['score_seconds']:9.2f} ms",
        *([f"adapt, flow alone (adapted_density='flow'):                {1e3 * t['adapt_flow_seconds']:9.2f} ms",
           f"score, flow alone:                                         {1e3 * t['score_flow_seconds']:9.2f} ms"]
          if "adapt_flow_seconds" in t else []),
        f"fine-tune (BatchNormFlow.adapt, {c['finetune_epochs']} epochs, batch {c['finetune_batch_size']}, lr {c['finetune_lr']}): "
        f"{t['finetune_seconds']:.3f} s ({1e3 * t['finetune_seconds_per_epoch']:.1f} ms per epoch)",
        "",
        f"fine-tuning / adaptation:  {t['finetune_over_adapt']:8.1f} x",
        f"adaptation / one scoring pass: {t['adapt_over_score']:5.2f} x (mixture / mixture)",
        *([f"mixture adaptation / one flow-alone scoring pass: {t['adapt_over_score_flow']:5.2f} x",
           f"fine-tuning / flow-alone adaptation:  {t['finetune_over_adapt_flow']:8.1f} x",
           f"flow-alone adaptation / flow-alone scoring pass: {t['adapt_flow_over_score_flow']:5.2f} x"]
          if "adapt_flow_seconds" in t else []),
        *([f"adapt, stationary_frames={c.get('stationary_frames')} (the sound pipeline's default):  {1e3 * t['adapt_frames_seconds']:9.2f} ms",
           f"score, stationary_frames={c.get('stationary_frames')}:                                 {1e3 * t['score_frames_seconds']:9.2f} ms",
           f"adaptation / one scoring pass, stationary_frames={c.get('stationary_frames')}: {t['adapt_frames_over_score_frames']:5.2f} x"
           " (rows far from stationary: the worst case of its eigendecomposition)"]
          if "adapt_frames_seconds" in t else []),
        *([f"adapt, stationary_frames={c.get('stationary_frames')}, rows that are frames of a stationary signal: {1e3 * t['adapt_stationary_seconds']:9.2f} ms",
           f"score, same model and rows:                                 {1e3 * t['score_stationary_seconds']:9.2f} ms",
           f"adaptation / one scoring pass, stationary rows: {t['adapt_stationary_over_score_stationary']:5.2f} x"]
          if "adapt_stationary_seconds" in t else []),
        f"bare passes: update_statistics {1e3 * t['core_adapt_seconds']:.2f} ms / log_prob {1e3 * t['core_score_seconds']:.2f} ms"
        f" = {t['core_adapt_over_core_score']:.2f} x",
        "",
        f"streaming adaptation memory (chunks of {c['chunk_size']} rows generated on the fly; fresh process per row count;"
        f" at most {CALIBRATION_MAX_ROWS} threshold scores kept):",
        f"{'allocator':<32} {'rows':>10} {'passes':>6} {'seconds':>8} {'RSS before MB':>14} {'RSS peak MB':>12} "
        f"{'peak increase MB':>17} {'tracemalloc peak MB':>20}",
    ]
    for m in result["memory"]:
        inc = "n/a" if m["rss_peak_increase_mb"] is None else f"{m['rss_peak_increase_mb']:.1f}"
        lines.append(
            f"{m['allocator']:<32} {m['rows']:>10} {m['passes']:>6} {m['seconds']:>8.1f} {m['rss_before_mb']:>14.1f} {m['rss_peak_mb']:>12.1f} "
            f"{inc:>17} {m['tracemalloc_peak_mb']:>20.1f}"
        )
    return "\n".join(lines)
