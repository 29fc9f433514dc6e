"""AdaFlow adaptation on Dask: per-partition moments merged exactly by a tree reduction.

An AdaBN layer's statistics of a domain are the mean and (biased) variance of its input over
the domain's rows. ``(count, mean, M2)`` are sufficient statistics of both, and two partitions'
triples merge exactly (Chan, Golub and LeVeque), so each partition computes its triple and a
tree reduction (fan-in ``split_every``) merges them, in float64, whatever the partitioning.

Layer ``j``'s input depends on the domain's *new* statistics of layers ``< j``, so the layers
cannot share one pass: pass ``j`` runs every partition through the stack up to AdaBN layer
``j`` (with the statistics the passes before it set) and reduces that layer's moments. That is
**one distributed pass per AdaBN layer** (``n_layers``; 2 for the default architecture), plus
**one scoring pass** with the final statistics for the domain's threshold: 3 passes by default,
the minimum for data that are re-read rather than held in memory. Only the statistics (a few
``D``-vectors) go back and forth between passes; the model bytes are scattered once.

The result equals single-process ``AdaFlow.adapt`` on the same rows (to float32 rounding): the
statistics are the same moments, and the threshold is read from the same scores merged into the
same reservoir in partition order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from flowad.bijections.adabn import AdaptiveBatchNorm
from flowad.dask._data import Part, folder_parts, is_folder, read_part
from flowad.dask._frame import feature_frame
from flowad.dask._model import ModelBlob, model_blob, worker_detector
from flowad.dask._score import _as_frame, _client, share_model
from flowad.detectors._domains import _check_rows, domain_name, reservoir_merge
from flowad.exceptions import FlowadError, InputError
from flowad.flows.adaflow import adabn_layers, flat_layers

__all__ = ["Moments", "adapt", "merge_moments", "tree_reduce"]

Statistics = tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (M2) of some rows, per feature, in float64."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, x: torch.Tensor) -> Moments:
        if x.shape[0] == 0:
            return cls(0, np.zeros(x.shape[1]), np.zeros(x.shape[1]))
        h = x.detach().double()
        mean = h.mean(dim=0)
        return cls(int(h.shape[0]), mean.cpu().numpy(), (h - mean).square().sum(dim=0).cpu().numpy())

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count


def merge_moments(*items: Moments) -> Moments:
    r"""Merge triples exactly: :math:`\delta = \bar x_B - \bar x_A`, :math:`\bar x = \bar x_A + \delta n_B / n`,
    :math:`M_2 = M_{2,A} + M_{2,B} + \delta^2 n_A n_B / n`."""
    out = items[0]
    for b in items[1:]:
        if b.count == 0:
            continue
        if out.count == 0:
            out = b
            continue
        n = out.count + b.count
        delta = b.mean - out.mean
        out = Moments(n, out.mean + delta * (b.count / n), out.m2 + b.m2 + delta**2 * (out.count * b.count / n))
    return out


def tree_reduce(leaves: list[Any], merge: Any, split_every: int = 8) -> Any:
    """Reduce Dask ``leaves`` with ``merge(*items)`` in a tree of fan-in ``split_every``."""
    import dask

    if split_every < 2:
        raise InputError(f"split_every must be >= 2, got {split_every}.")
    level = list(leaves)
    while len(level) > 1:
        level = [dask.delayed(merge, pure=True)(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    return level[0]


# ------------------------------------------------------------------------- worker side
def _token(stats: Statistics) -> str:
    h = hashlib.sha256()
    for mean, var in stats:
        h.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(var, dtype=np.float64).tobytes())
    return h.hexdigest()


def install_statistics(det: Any, name: str, stats: Statistics) -> int:
    """Give domain ``name`` of ``det`` (created if new) the statistics of its first AdaBN layers.

    Uses the detector's private domain hooks; see the module's report for the public hook
    this should become.
    """
    index = det._open(name)[0]
    for layer, (mean, var) in zip(adabn_layers(det.flow_.bijection), stats, strict=False):
        dtype, device = layer.running_mean.dtype, layer.running_mean.device
        layer.set_statistics(index, torch.as_tensor(mean, dtype=dtype, device=device), torch.as_tensor(var, dtype=dtype, device=device))
    return index


def _adapted(blob: ModelBlob, name: str, stats: Statistics) -> Any:
    return worker_detector(blob, ("adapt", name, _token(stats)), lambda det: install_statistics(det, name, stats))


def _rows(det: Any, source: Part | pd.DataFrame, columns: tuple[str, ...] | None) -> np.ndarray:
    frame = read_part(source) if isinstance(source, Part) else source
    X = feature_frame(frame, det, None if columns is None else list(columns), [])
    if len(X) == 0:  # an empty partition contributes nothing
        return np.empty((0, det.n_features_in_))
    return det._check_input(X)


def _where(source: Part | pd.DataFrame, label: str) -> str:
    return source.label if isinstance(source, Part) else label


def _part_moments(blob: ModelBlob, source: Any, name: str, stats: Statistics, position: int, columns: Any, label: str) -> Moments:
    """Moments of the input of the AdaBN layer at ``position`` over one partition."""
    try:
        det = _adapted(blob, name, stats)
        X = _rows(det, source, columns)
    except FlowadError as err:
        raise InputError(f"{_where(source, label)}: {err}") from None
    layers = flat_layers(det.flow_.bijection)
    with torch.no_grad():
        h = det._standardize(X)
        ctx = torch.full((h.shape[0],), det.domains_.index(name), dtype=torch.long, device=h.device)
        for layer in layers[:position]:
            h, _ = layer(h, ctx)
    return Moments.of(h)


def _part_scores(blob: ModelBlob, source: Any, name: str, stats: Statistics, columns: Any, label: str) -> np.ndarray:
    """Anomaly scores of one partition in the adapted domain."""
    try:
        det = _adapted(blob, name, stats)
        X = _rows(det, source, columns)
        return det.decision_function(X, domain=name) if len(X) else np.empty(0)
    except FlowadError as err:
        raise InputError(f"{_where(source, label)}: {err}") from None


# ------------------------------------------------------------------------- client side
def adapt(
    model: Any,
    data: Any,
    *,
    domain: Any,
    columns: list[str] | None = None,
    client: Any = None,
    split_every: int = 8,
    progress: bool = False,
) -> Any:
    """Adapt an AdaFlow model to the normal rows ``data`` of ``domain`` on Dask.

    Parameters
    ----------
    model : path-like or AdaFlow
        Model file or fitted AdaFlow (left unchanged).
    data : path-like, dask DataFrame or dask Array
        A folder of Parquet/CSV files (see :func:`flowad.dask.score`) or Dask data.
    domain : str or int
        Domain name (new, or replaced).
    columns : list of str, optional
        Feature columns (default: the model's own feature names).
    client : distributed.Client, optional
        Default: the current client; without one, Dask's local scheduler.
    split_every : int, default=8
        Fan-in of the tree reduction of the moments.
    progress : bool, default=False
        Show Dask's progress bar for each pass (needs a client).

    Returns
    -------
    AdaFlow
        A new detector holding the adapted domain (save it with ``.save(path)``).

    Notes
    -----
    ``n_layers + 1`` distributed passes over the data (see the module docstring). A partition
    that cannot be read (missing columns, NaN rows) stops the job with an
    :class:`~flowad.exceptions.InputError` naming it and its file.
    """
    import dask
    import dask.dataframe as dd

    blob, det = model_blob(model)
    if not hasattr(det, "adapt") or not adabn_layers(det.flow_.bijection):
        raise InputError(f"The model is a {type(det).__name__}, which has no AdaBN statistics to adapt on Dask; use an adaflow model.")
    name = domain_name(domain)
    cols = None if columns is None else tuple(columns)
    client = _client(client)
    if is_folder(data):
        sources: list[Any] = folder_parts(data)
    else:
        frame = _as_frame(data, det)
        if not isinstance(frame, dd.DataFrame):
            raise InputError(f"data must be a folder, a Dask DataFrame or a Dask Array, got {type(data).__name__}.")
        sources = list(frame.to_delayed())
    labels = [f"partition {i}" for i in range(len(sources))]
    shared = share_model(blob, client)
    positions = [i for i, layer in enumerate(flat_layers(det.flow_.bijection)) if isinstance(layer, AdaptiveBatchNorm)]

    def run(graph: Any) -> Any:
        if client is None:
            return dask.compute(graph)[0]
        future = client.compute(graph)
        if progress:
            from distributed import progress as progress_bar

            progress_bar(future)
        return future.result()

    stats: list[tuple[np.ndarray, np.ndarray]] = []
    count = None
    for pos in positions:  # one pass per AdaBN layer
        frozen = tuple(stats)
        leaves = [dask.delayed(_part_moments, pure=True)(shared, s, name, frozen, pos, cols, labels[i]) for i, s in enumerate(sources)]
        total = run(tree_reduce(leaves, merge_moments, split_every))
        if count is None:
            _check_rows(total.count, name)
        count = total.count
        stats.append((total.mean, total.var))
    frozen = tuple(stats)
    tasks = [dask.delayed(_part_scores, pure=True)(shared, s, name, frozen, cols, labels[i]) for i, s in enumerate(sources)]
    kept, seen = np.empty(0), 0
    if client is None:
        per_part = dask.compute(*tasks)
    else:  # merged in partition order as they are gathered: the client holds one partition's scores
        per_part = client.compute(tasks)
        if progress:
            from distributed import progress as progress_bar

            progress_bar(per_part)
    for item in per_part:
        scores = item if client is None else item.result()
        kept, seen = reservoir_merge(kept, seen, scores), seen + scores.size
        if client is not None:
            item.release()
    install_statistics(det, name, frozen)
    det._set_domain(name, kept, int(count or 0))
    return det
