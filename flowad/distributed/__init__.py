"""Training on several processes or machines with PyTorch DistributedDataParallel (DDP).

:func:`fit_distributed` trains a RealNVP-family detector (``robust-realnvp``, ``trim-realnvp``,
``realnvp``) or AdaFlow on a folder of Parquet/CSV files and writes an ordinary flowad model file. It
starts ``nproc`` local ranks itself, or, inside a process started by ``torchrun``, runs as that
rank (``torchrun ... --no-python flowad fit DATA -o MODEL``). gloo on CPU, NCCL on CUDA (one GPU
per local rank); the process group is set up from torchrun's environment variables.

What each rank does, and why the result is that of one process with the global batch:

* **Data.** The folder's files / Parquet row groups go round robin to the ranks; each rank
  streams only its own shard, one row group (or CSV file) in memory at a time, in batches of
  ``batch_size // world_size`` rows (the global batch is ``world_size`` times that). See
  :mod:`flowad.distributed._data`.
* **Standardization.** Each rank draws a seeded sample of its shard (``sample_rows`` rows over
  all ranks), the samples are all-gathered, and every rank fits the same
  :class:`flowad.preprocessing.Standardization` on their union: every row when the data holds
  at most ``sample_rows`` rows. The union is also the calibration set: ``threshold_`` and the
  stored ``decision_scores_`` are those of these rows, not of every training row.
* **Loss.** The trimmed loss trims on the *global* minibatch: per-sample losses are gathered,
  the ``n_kept(global batch, trim_ratio)`` smallest are kept, and each rank's loss is scaled so
  that DDP's gradient average is the gradient of the global trimmed mean
  (:mod:`flowad.distributed._loss`). This is ``trim_scope="batch"``, which DDP training uses
  (and writes into the model file) even for RobustRealNVP, whose one-process default trims once
  per epoch over all rows; an explicit ``trim_scope="epoch"`` is refused.
* **Spectral normalization.** The power-iteration vectors are buffers; after every forward
  pass each rank takes rank 0's (they travel with the per-sample losses, in the same
  collective), so every rank holds the same state dict.
* **Checkpoints.** Rank 0 writes ``OUTPUT.ckpt`` (or ``checkpoint``) atomically every
  ``checkpoint_every`` steps and at the end: weights, optimizer state, step, loss history,
  standardization and the run's settings. Every random draw is a function of the seed, the rank
  and the step, so ``resume=`` continues exactly where the checkpoint stopped and reaches the
  same weights as an uninterrupted run (same data, settings and number of processes).
* **Faults.** A rank that dies stops the run with one line naming it and the checkpoint to
  resume from (:class:`RankFailedError`); the others are stopped, not left waiting.

* **AdaFlow.** Each row's domain comes from ``domain_column``; the domains are the sorted labels
  of all shards. In training, every AdaBN layer's per-domain batch mean and variance are those of
  the global batch (:class:`~flowad.distributed._loss.SyncedAdaptiveBatchNorm`: differentiable
  all-reduces, like ``SyncBatchNorm`` per domain); the stored statistics are set, as
  ``AdaFlow.fit`` sets them, from the union sample (before training, and exactly over each
  domain's sampled rows after it, with the mixture and the per-domain thresholds).

Needs pandas and pyarrow (the ``parquet`` extra: ``pip install 'flowad[parquet]'``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowad.distributed._data import preview
from flowad.distributed._train import SUPPORTED_MODELS, Job, RankFailedError, default_checkpoint, run_from_env
from flowad.exceptions import InputError

__all__ = ["SUPPORTED_MODELS", "RankFailedError", "default_checkpoint", "fit_distributed", "launched_by_torchrun", "preview"]


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (its environment variables are set)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def fit_distributed(
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str = "robust-realnvp",
    params: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    domain_column: str | None = None,
    nproc: int | None = None,
    resume: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    sample_rows: int = 100_000,
    validation: str | os.PathLike[str] | None = None,
    log: str | os.PathLike[str] | None = None,
    log_every: int = 0,
    timeout: float = 300.0,
    threads: int | None = None,
    progress: bool = False,
    **testing: Any,
) -> dict[str, Any] | None:
    """Train a detector with DDP on the folder (or Parquet/CSV file) ``data``; write ``output``.

    Parameters
    ----------
    data : path
        Folder of Parquet/CSV files (or one file); needs at least one file / row group per rank.
    output : path
        Model file to write (read it with :func:`flowad.load`).
    model : {"robust-realnvp", "trim-realnvp", "realnvp", "adaflow"}
    params : dict, optional
        Hyper-parameters of the detector (``epochs``, ``batch_size`` = the global batch,
        ``random_state``, ...).
    columns : list of str, optional
        Feature columns; default: every numeric/boolean column of the first file not in ``exclude``.
    domain_column : str, optional
        ``adaflow``: the column naming each row's domain (str or int labels); without it, one
        domain named ``"default"``.
    nproc : int, optional
        Local ranks to start (default 1). Must be None inside a ``torchrun`` process.
    resume : path, optional
        Checkpoint of an interrupted run with the same settings to continue from.
    checkpoint : path, optional
        Where rank 0 writes checkpoints (default ``OUTPUT.ckpt``).
    checkpoint_every : int, default=100
        Steps between checkpoints (0: only at the end).
    sample_rows : int, default=100000
        Rows (over all ranks) sampled for the standardization and the threshold.
    validation : path, optional
        A CSV/Parquet file of validation rows; its trimmed NLL goes into ``log`` every epoch.
    log : path, optional
        JSON lines from rank 0, one per epoch and one every ``log_every`` steps: step, mean loss of
        the epoch so far, training seconds (validation excluded), validation NLL, and rank 0's
        cumulative seconds per phase of a step (``PHASES`` of :mod:`flowad.distributed._train`).
    log_every : int, default=0
        Steps between log lines besides the epoch ends (0: epoch ends only).
    timeout : float, default=300
        Seconds a collective waits for a silent rank before the run fails.
    threads : int, optional
        Torch threads per local rank (default: cores / nproc).
    progress : bool, default=False
        A progress bar over the steps on stderr (rank 0; needs tqdm).

    Returns
    -------
    dict or None
        Rank 0's summary (rows, steps, threshold, loss history, ...); None on other torchrun ranks.
    """
    if not checkpoint_every >= 0:
        raise InputError(f"checkpoint_every must be >= 0, got {checkpoint_every}.")
    if not sample_rows >= 2:
        raise InputError(f"sample_rows must be >= 2, got {sample_rows}.")
    if not Path(output).parent.exists():
        raise InputError(f"Output folder {str(Path(output).parent)!r} does not exist.")
    def absolute(path: Any) -> str | None:  # ranks may start in another working directory (a forkserver's)
        return None if path is None else os.path.abspath(path)

    job = Job(
        data=str(absolute(data)), output=str(absolute(output)), model=model, params=dict(params or {}), columns=None if columns is None else list(columns),
        exclude=tuple(exclude) + ((domain_column,) if domain_column else ()), domain_column=domain_column, checkpoint=absolute(checkpoint), checkpoint_every=int(checkpoint_every),
        resume=absolute(resume), sample_rows=int(sample_rows),
        validation=absolute(validation), log=absolute(log), log_every=int(log_every), progress=bool(progress), timeout_s=float(timeout),
        fail_at=testing.pop("fail_at", None), state_dir=testing.pop("state_dir", None),
    )
    if testing:
        raise TypeError(f"fit_distributed() got unexpected keyword argument(s) {sorted(testing)}.")
    if model not in SUPPORTED_MODELS:
        raise InputError(f"DDP training supports {list(SUPPORTED_MODELS)}, not {model!r}.")
    if model != "adaflow":  # DDP trims each global minibatch; the model file must say so, whatever the class's default
        job.params.setdefault("trim_scope", "batch")
    if job.params.get("trim_scope", "batch") != "batch":
        raise InputError(
            f"trim_scope={job.params['trim_scope']!r} is not supported by DDP training (it trims each global minibatch); "
            "use trim_scope='batch', or train on one process."
        )
    if model != "adaflow" and job.params.get("n_couplings") == 0:
        raise InputError(
            "n_couplings=0 leaves the flow nothing to train (the detector is its robust Gaussian), so DDP has "
            "nothing to share: fit it on one process (flowad fit without --nproc)."
        )
    if job.resume is not None and not Path(job.resume).is_file():
        raise InputError(f"Checkpoint {job.resume!r} does not exist.")
    if launched_by_torchrun():
        if nproc is not None:
            raise InputError("Inside torchrun the processes come from torchrun (--nproc-per-node); drop --nproc.")
        return run_from_env(job)
    from flowad.distributed._launch import launch, run_job

    with tempfile.TemporaryDirectory(prefix="flowad-ddp-") as tmp:
        job.result = str(Path(tmp, "summary.json"))
        launch(run_job, (job,), nproc or 1, checkpoint=job.checkpoint_path, resume=job.resume, threads=threads)
        return json.loads(Path(job.result).read_text())

