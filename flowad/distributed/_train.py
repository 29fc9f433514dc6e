"""What every rank of a DDP training run does (see :func:`flowad.distributed.fit_distributed`)."""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from flowad.bijections import AdaptiveBatchNorm
from flowad.detectors import DETECTOR_REGISTRY
from flowad.detectors._base import resolve_device, seed_from, seeded_torch
from flowad.detectors._domains import DEFAULT_DOMAIN, MIN_ADAPT_SAMPLES, _few_rows_message
from flowad.distributed._checkpoint import read_checkpoint, write_checkpoint
from flowad.distributed._data import (
    ShardStream,
    draw_sample,
    fingerprint,
    folder_units,
    preview,
    rng_for,
    shard,
    shard_domains,
)
from flowad.distributed._loss import (
    SyncedAdaptiveBatchNorm,
    flat_buffers,
    global_trimmed_loss,
    set_buffers,
    spectral_buffers,
)
from flowad.exceptions import FlowadError, InputError
from flowad.flows.adaflow import adabn_layers, update_statistics
from flowad.io.persistence import params_to_json
from flowad.io.tables import read_table
from flowad.nn.mlp import refine_spectral_norms
from flowad.preprocessing import dequantization_widths
from flowad.training.loop import DIVERGENCE_FACTOR, _diverged, _exploded, validation_loss

__all__ = ["SUPPORTED_MODELS", "Job", "RankFailedError", "checkpoint_stat", "default_checkpoint", "resume_hint", "run_from_env"]

#: Detectors that train under DDP (AdaFlow with its per-domain batch statistics synchronised).
SUPPORTED_MODELS = ("robust-realnvp", "trim-realnvp", "realnvp", "adaflow")


#: Phases of a training step timed on every rank and written to the log (seconds, cumulative):
#: reading and standardizing the batch, the forward pass, the global trimmed loss (one all-gather
#: of the per-sample losses, carrying rank 0's spectral-norm vectors), backward (with DDP's
#: gradient all-reduce, overlapped), gradient clipping and the Adam step, and rank 0's checkpoint
#: writes.
PHASES = ("data", "forward", "loss", "backward", "step", "checkpoint")

class RankFailedError(FlowadError, RuntimeError):
    """A rank of a DDP run died or lost contact with the others; the run stopped.

    ``peer_lost`` is True when this rank itself is fine but another one went away.
    """

    def __init__(self, message: str, *, peer_lost: bool = False) -> None:
        super().__init__(message)
        self.peer_lost = peer_lost


def default_checkpoint(output: str | os.PathLike[str]) -> str:
    """The checkpoint path of a run writing ``output``: ``OUTPUT.ckpt`` next to it."""
    return str(output) + ".ckpt"


@dataclass
class Job:
    """Everything a rank needs (sent to spawned ranks by pickle: plain values only)."""

    data: str
    output: str
    model: str = "robust-realnvp"
    params: dict[str, Any] = field(default_factory=dict)
    columns: list[str] | None = None
    exclude: tuple[str, ...] = ()
    checkpoint: str | None = None
    checkpoint_every: int = 100
    resume: str | None = None
    sample_rows: int = 100_000
    validation: str | None = None
    log: str | None = None
    log_every: int = 0
    progress: bool = False
    timeout_s: float = 300.0
    result: str | None = None
    domain_column: str | None = None
    #: Testing hooks: ``(rank, step)`` at which that rank kills itself (SIGKILL) before the step;
    #: a folder where every rank writes its final state dict (``rank{r}.pt``).
    fail_at: tuple[int, int] | None = None
    state_dir: str | None = None

    @property
    def checkpoint_path(self) -> str:
        return self.checkpoint or default_checkpoint(self.output)


class _LogProb(nn.Module):
    """The flow's log-density as ``forward`` (what DistributedDataParallel wraps)."""

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.flow.log_prob(x, context)


def default_columns(data: str, exclude: tuple[str, ...]) -> list[str]:
    """Numeric and boolean columns of the first unit of ``data``, except ``exclude`` (as ``flowad fit``)."""
    frame = preview(data)
    cols = [str(c) for c in frame.columns if c not in exclude
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if not cols:
        raise InputError(f"No numeric feature columns found in {str(data)!r}; columns: {list(map(str, frame.columns))}.")
    return cols


def _device(params: dict[str, Any]) -> torch.device:
    dev = resolve_device(params.get("device", "auto"))
    if dev.type != "cuda":
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise InputError(
            f"Local rank {local} has no GPU: this machine has {torch.cuda.device_count()}; start at most that many "
            "processes per machine, or train on CPU (--set device=cpu)."
        )
    return torch.device("cuda", local)


def run_from_env(job: Job) -> dict[str, Any] | None:
    """Join the process group described by torchrun's environment variables (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``), train, leave the group.

    gloo on CPU, NCCL on CUDA. Returns rank 0's summary (None on other ranks). A rank that loses
    contact with another, or that is stopped by SIGTERM (torchrun stops every rank when one
    fails), raises :class:`RankFailedError` naming the checkpoint to resume from.
    """
    device = _device(job.params)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    before = checkpoint_stat(job.checkpoint_path)
    rank = os.environ.get("RANK", "?")

    failing: list[bool] = []

    def lost(why: str) -> RankFailedError:
        failing.append(True)  # a SIGTERM from now on must not interrupt the message (reading the checkpoint)
        return RankFailedError(f"rank {rank} {why}; the run stopped; " + resume_hint(job.checkpoint_path, before, job.resume), peer_lost=True)

    def on_sigterm(signum: int, frame: Any) -> None:
        if not failing:
            raise lost("was stopped by SIGTERM (torchrun stops every rank when one fails; its report names the first)")

    previous = signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() else None
    dist.init_process_group(backend, timeout=timedelta(seconds=job.timeout_s), device_id=device if device.type == "cuda" else None)
    try:
        return _run_rank(job, device)
    except FlowadError:
        raise
    except RuntimeError as err:  # DistError, or a plain RuntimeError from gloo for a closed peer connection
        text = str(err).strip()
        if isinstance(err, dist.DistError) or any(s in text for s in ("Connection closed", "Connection reset", "Timed out", "timed out", "Broken pipe", "gloo")):
            raise lost(f"lost contact with another rank of the DDP run ({_first_sentence(text) or type(err).__name__})") from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        dist.destroy_process_group()


def _first_sentence(text: str) -> str:
    """``text``'s first line without a ``[file.cc:123]`` prefix, up to its first full stop (gloo's messages run long)."""
    line = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0] if text else "")
    return line.split(". ")[0].rstrip(".")


def checkpoint_stat(path: str | None) -> tuple[int, int] | None:
    """(mtime in ns, size) of ``path``, None if absent: tells whether a run wrote its checkpoint."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def resume_hint(checkpoint: str, before: tuple[int, int] | None = None, resume: str | None = None) -> str:
    """What to do after a failed run: the checkpoint it wrote (``before``: the file's
    :func:`checkpoint_stat` when the run started, so an older run's checkpoint is not offered)
    and how to continue from it."""
    from flowad.distributed._checkpoint import checkpoint_step

    found = checkpoint_step(checkpoint) if checkpoint_stat(checkpoint) not in (None, before) else None
    if found is not None:
        step, total = found
        return f"the last checkpoint is {checkpoint!r} (step {step} of {total}): rerun with --resume {checkpoint} to continue from it."
    if resume:
        return f"no newer checkpoint was written: rerun with --resume {resume} again."
    return "no checkpoint was written before it stopped: rerun from the start."


def _settings(job: Job, det: Any, columns: list[str], seed: int, world: int, layout: str, local_bs: int, total_steps: int) -> dict[str, Any]:
    return {
        "model": job.model,
        "params": json.dumps(params_to_json(det.get_params()), sort_keys=True, default=str),
        "columns": list(columns),
        "seed": int(seed),
        "world_size": int(world),
        "data_layout": layout,
        "local_batch": int(local_bs),
        "total_steps": int(total_steps),
    }


def _broadcast(obj: Any, src: int = 0) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def _run_rank(job: Job, device: torch.device) -> dict[str, Any] | None:
    rank, world = dist.get_rank(), dist.get_world_size()
    if job.model not in SUPPORTED_MODELS:
        raise InputError(f"DDP training supports {list(SUPPORTED_MODELS)}, not {job.model!r}.")
    multi = job.model == "adaflow"
    if job.domain_column is not None and not multi:
        raise InputError(f"A domain column applies to multi-domain models (adaflow); {job.model} models one domain.")
    if multi and job.validation:
        raise InputError("A validation file is not supported for adaflow under DDP (its rows have no domains).")
    det = DETECTOR_REGISTRY[job.model](**job.params)
    det._validate_params()
    if getattr(det, "early_stopping", False):
        raise InputError("early_stopping is not supported by DDP training; pass a validation file to watch the validation NLL instead.")
    seed = _broadcast(seed_from(det.random_state) if rank == 0 else None)  # random_state=None: one seed for all ranks
    units = folder_units(job.data)
    columns = list(job.columns) if job.columns else default_columns(job.data, tuple(job.exclude))
    mine = shard(units, rank, world)
    if multi:
        det.domains_ = _domain_list(job, mine, world, rank)
    index = {name: k for k, name in enumerate(getattr(det, "domains_", []))}
    local_bs = int(det.batch_size) // world
    if local_bs < 1:
        raise InputError(f"batch_size={det.batch_size} is smaller than the {world} processes; each needs at least one row per step.")
    total_rows = sum(u.rows for u in units)
    steps_per_epoch = math.ceil(total_rows / (local_bs * world))
    total_steps = int(det.epochs) * steps_per_epoch

    # Standardization: the same statistics on every rank, from the union of per-rank samples.
    sample = draw_sample(mine, columns, math.ceil(job.sample_rows / world), seed, rank, job.domain_column)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, sample)
    union = np.concatenate([g[0] for g in gathered])
    union_ctx = (np.zeros(union.shape[0], dtype=np.int64) if job.domain_column is None
                 else np.concatenate([[index[n] for n in g[1]] for g in gathered]).astype(np.int64))
    del gathered, sample
    if union.shape[0] < 2:
        raise InputError(f"The data holds {union.shape[0]} row(s); training needs at least 2.")
    det.n_features_in_ = len(columns)
    det.feature_names_in_ = np.asarray(columns, dtype=object)
    det.device_ = device
    with warnings.catch_warnings():
        if rank != 0:
            warnings.simplefilter("ignore")
        det._fit_standardization(union)
    # Dequantization widths and the whitening statistics: from the same union on every rank (the
    # one-process fit takes them from every training row; the union is every row up to sample_rows).
    Z_sample = det._standardize_training(union).detach().cpu().double().numpy()
    kept = ~det.constant_features_
    widths = dequantization_widths(Z_sample) if getattr(det, "dequantize", False) else np.zeros(int(kept.sum()))
    if not multi:
        det.dequantize_widths_ = np.zeros(len(columns))
        det.dequantize_widths_[kept] = widths * det.scale_[kept]

    with seeded_torch(seed, device):
        flow = det._build_flow(int(kept.sum())).to(device=device, dtype=det.torch_dtype_)
    if multi:  # as AdaFlow.fit: every domain's statistics under the initial weights, here from the union
        Z_union = torch.as_tensor(Z_sample, dtype=det.torch_dtype_, device=device)
        flow.eval()
        for k in range(len(det.domains_)):
            update_statistics(flow.bijection, Z_union[torch.as_tensor(union_ctx == k, device=device)], k)
        del Z_union
    if rank != 0:
        del union
    if not multi:
        det._set_whitening(flow, Z_sample, widths)  # as the one-process fit
    del Z_sample
    dequantize = torch.as_tensor(widths, dtype=det.torch_dtype_, device=device) if widths.any() else None
    params = [p for p in flow.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(det.lr), weight_decay=float(det.weight_decay))
    if multi:  # untrimmed maximum likelihood, as AdaFlow.fit
        config = det._train_config(trim_ratio=0.0)
    else:
        config = det._train_config(trim_ratio=det.trim_ratio_, noise_std=float(det.noise_std), patience=int(det.n_iter_no_change))
    settings = _settings(job, det, columns, seed, world, fingerprint(units), local_bs, total_steps)
    settings["domains"] = list(getattr(det, "domains_", []))

    start_step, history, epoch_sum, initial, train_s = 0, [], 0.0, None, 0.0
    if job.resume:
        state = _broadcast(read_checkpoint(job.resume) if rank == 0 else None)
        _check_resume(job.resume, state, settings, det)
        flow.load_state_dict(state["flow"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, history, epoch_sum = int(state["step"]), list(state["history"]), float(state["epoch_sum"])
        initial, train_s = state["initial"], float(state["train_s"])

    # The spectral-norm vectors travel with the losses (see the loop): DDP's own buffer sync keeps a list
    # of tensors taken once, which goes stale as spectral normalization rebinds its vectors every step.
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters else {"broadcast_buffers": False}
    ddp = DistributedDataParallel(_LogProb(flow), device_ids=[device.index] if device.type == "cuda" else None, **no_sync)
    validation = _validation_rows(job, det, columns) if rank == 0 and job.validation else None
    log = open(job.log, "a") if rank == 0 and job.log else None  # noqa: SIM115 - closed in finally
    stream = ShardStream(mine, columns, local_bs, seed, rank,
                         None if job.domain_column is None else (job.domain_column, index)).batches(start_step)
    synced = adabn_layers(flow.bijection) if multi and world > 1 else []
    for layer in synced:  # per-domain batch statistics of the global batch (see SyncedAdaptiveBatchNorm)
        layer.__class__ = SyncedAdaptiveBatchNorm
    sizes = [local_bs] * world
    bar = _progress_bar(job, total_steps, start_step, world) if rank == 0 else None
    slots = spectral_buffers(flow, det.torch_dtype_)
    flow.train()
    phases = dict.fromkeys(PHASES, 0.0)  # seconds of this run per phase of a step (see PHASES)
    try:
        tick = time.perf_counter()
        for step in range(start_step + 1, total_steps + 1):
            epoch = (step - 1) // steps_per_epoch + 1
            if job.fail_at is not None and tuple(job.fail_at) == (rank, step):
                os.kill(os.getpid(), signal.SIGKILL)
            t0 = time.perf_counter()
            X, labels = next(stream)
            xb = det._standardize_training(X)
            ctx = None if labels is None else torch.as_tensor(labels, device=device)
            if config.noise_std > 0:
                g = torch.Generator(device=device).manual_seed(int(rng_for(seed, rank, step, 7).integers(2**62)))
                xb = xb + config.noise_std * torch.randn(xb.shape, generator=g, device=device, dtype=xb.dtype)
            if dequantize is not None:
                g = torch.Generator(device=device).manual_seed(int(rng_for(seed, rank, step, 8).integers(2**62)))
                xb = xb + (torch.rand(xb.shape, generator=g, device=device, dtype=xb.dtype) - 0.5) * dequantize
            t1 = time.perf_counter()
            nll = -ddp(xb, ctx)
            t2 = time.perf_counter()
            # One collective: every rank's losses, and rank 0's spectral-norm vectors as this forward left them.
            loss, value, carried = global_trimmed_loss(nll, config.trim_ratio, sizes=sizes, carry=flat_buffers(slots))
            if carried:
                set_buffers(slots, carried[0])
            if not math.isfinite(value):
                raise _diverged(epoch, step, config, value)
            if initial is None:
                initial = value
            t3 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t4 = time.perf_counter()
            if config.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                if not torch.isfinite(norm):
                    raise _diverged(epoch, step, config, float(norm))
            optimizer.step()
            t5 = time.perf_counter()
            for name, a, b in zip(PHASES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=False):
                phases[name] += b - a
            epoch_sum += value
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{value:.3f}", refresh=False)
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch:
                history.append(epoch_sum / steps_per_epoch)
                epoch_sum = 0.0
                if history[-1] > initial + DIVERGENCE_FACTOR * max(1.0, abs(initial)):
                    raise _exploded(epoch, config, history[-1], initial)
            if log is not None and (end_of_epoch or (job.log_every and step % job.log_every == 0)):
                train_s += time.perf_counter() - tick
                done = step - (epoch - 1) * steps_per_epoch
                row = {"epoch": epoch, "step": step, "loss": history[-1] if end_of_epoch else epoch_sum / done,
                       "train_s": train_s, "world_size": world, **{f"{k}_s": v for k, v in phases.items()}}
                if validation is not None:
                    row["val_nll"] = validation_loss(flow, validation, config.trim_ratio)
                    flow.train()
                log.write(json.dumps(row) + "\n")
                log.flush()
                tick = time.perf_counter()
            if rank == 0 and (step == total_steps or (job.checkpoint_every and step % job.checkpoint_every == 0)):
                t7 = time.perf_counter()
                write_checkpoint(job.checkpoint_path, {
                    **settings, "step": step, "flow": flow.state_dict(), "optimizer": optimizer.state_dict(),
                    "history": list(history), "epoch_sum": epoch_sum, "initial": initial,
                    "train_s": train_s + time.perf_counter() - tick,
                    "mean": torch.from_numpy(det.mean_), "scale": torch.from_numpy(det.scale_),
                    "constant": torch.from_numpy(det.constant_features_),
                })
                phases["checkpoint"] += time.perf_counter() - t7
        train_s += time.perf_counter() - tick
    finally:
        if log is not None:
            log.close()
        if bar is not None:
            bar.close()
        for layer in synced:
            layer.__class__ = AdaptiveBatchNorm
        del ddp  # freed while the process group lives (DDP's reducer can hang when freed after it)
    refine_spectral_norms(flow)
    flow.eval()
    if job.state_dir:
        torch.save({k: v.detach().cpu() for k, v in flow.state_dict().items()}, Path(job.state_dir) / f"rank{rank}.pt")
    if rank != 0:
        dist.barrier()
        return None
    det.flow_ = flow
    det.history_ = history
    if multi:
        _calibrate_domains(det, flow, history, det._standardize_training(union), union_ctx)
    else:
        det._calibrate(union)
    det.save(job.output)
    summary = {
        "output": str(job.output), "checkpoint": job.checkpoint_path, "model": job.model, "rows": int(total_rows),
        "features": len(columns), "columns": columns, "world_size": world, "steps": total_steps, "global_batch": local_bs * world,
        "threshold": float(det.threshold_), "history": history, "calibration_rows": int(union.shape[0]), "train_s": train_s,
        "domains": list(getattr(det, "domains_", [])),
    }
    if job.result:
        Path(job.result).write_text(json.dumps(summary))
    dist.barrier()
    return summary


def _domain_list(job: Job, mine: list[Any], world: int, rank: int) -> list[str]:
    """The sorted domain names of all ranks' shards (``"default"`` without a domain column), each
    with at least 2 rows, as ``AdaFlow.fit`` requires (a warning below ``MIN_ADAPT_SAMPLES``)."""
    if job.domain_column is None:
        return [DEFAULT_DOMAIN]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, shard_domains(mine, job.domain_column))
    counts: dict[str, int] = {}
    for part in gathered:
        for name, n in part.items():
            counts[name] = counts.get(name, 0) + n
    few = [(name, n) for name, n in sorted(counts.items()) if n < 2]
    if few:
        raise InputError(f"Every domain needs at least 2 rows to estimate its statistics; got {few}.")
    if rank == 0:
        for name, n in sorted(counts.items()):
            if n < MIN_ADAPT_SAMPLES:
                warnings.warn(_few_rows_message(name, n), UserWarning, stacklevel=2)
    return sorted(counts)


def _calibrate_domains(det: Any, flow: Any, history: list[float], Z: Tensor, labels: np.ndarray) -> None:
    """What ``AdaFlow.fit`` does after training, on the calibration rows ``Z`` (the union sample):
    every domain's AdaBN statistics (and mixture) exactly over its rows, their scores, and the
    per-domain thresholds read from them."""
    det._train = lambda *args, **kwargs: history  # training is done: _fit_model only sets the statistics
    try:
        log_density = det._fit_model(flow, Z, torch.as_tensor(labels, device=Z.device), None)
    finally:
        del det._train
    det.flow_ = flow.eval()
    det._calibrate_domains(log_density, labels)


def _progress_bar(job: Job, total: int, start: int, world: int) -> Any:
    """A tqdm bar over the steps on stderr (rank 0, when asked and tqdm is installed)."""
    if not job.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, desc=f"fit {job.model} (DDP, {world} processes)", unit="step", leave=False)


def _validation_rows(job: Job, det: Any, columns: list[str]) -> Tensor:
    frame = read_table(job.validation)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"Columns {missing} are not in the validation file {job.validation!r}.")
    return det._standardize_training(frame[columns].to_numpy(dtype=np.float64))


def _check_resume(path: str, state: dict[str, Any], settings: dict[str, Any], det: Any) -> None:
    for key, value in settings.items():
        if state.get(key) != value:
            raise InputError(
                f"Checkpoint {path!r} belongs to another run: its {key} is {state.get(key)!r}, this run's is {value!r}. "
                "Resume with the same data, model, hyper-parameters, seed and number of processes."
            )
    same = (np.array_equal(state["mean"].numpy(), det.mean_) and np.array_equal(state["scale"].numpy(), det.scale_)
            and np.array_equal(state["constant"].numpy(), det.constant_features_))
    if not same:
        raise InputError(f"Checkpoint {path!r} was written with other standardization statistics: the data changed since.")
