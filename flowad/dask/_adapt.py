"""AdaFlow adaptation on Dask: per-partition moments merged exactly by a tree reduction.

An AdaBN layer's statistics of a domain are the mean and (biased) variance of its input over
the domain's rows. ``(count, mean, M2)`` are sufficient statistics of both, and two partitions'
triples merge exactly (Chan, Golub and LeVeque), so each partition computes its triple and a
tree reduction (fan-in ``split_every``) merges them, in float64, whatever the partitioning.

Layer ``j``'s input depends on the domain's *new* statistics of layers ``< j``, so the layers
cannot share one pass: pass ``j`` runs every partition through the stack up to AdaBN layer
``j`` (with the statistics the passes before it set) and reduces that layer's moments. That is
**one distributed pass per AdaBN layer** (``n_layers``; 2 for the default architecture), plus
**one scoring pass** with the final statistics for the domain's threshold: 3 passes for a
flow-only model (``adapted_density="flow"``), the minimum for data that are re-read rather than
held in memory.

A mixture model (``adapted_density="mixture"``, the default) also needs the domain's Gaussian
and flow weight (see :class:`flowad.AdaFlow`), built from the same mergeable pieces as a
streamed ``adapt``, before the scoring pass: **pass A** returns, per partition, the moments of
the Gaussian's rows per cross-validation fold (a row's fold is its global position modulo 5:
the per-partition row counts come from the first AdaBN pass and give each partition its
offset), merged element-wise by a tree reduction; **pass B** (skipped below 10 rows) returns
the held-out log-likelihood sums of the candidate weights under each fold's held-out Gaussian,
merged by a tree reduction. ``n_layers + 3`` passes in all (5 by default). Only statistics go
back and forth between passes (a few ``D``-vectors, the folds' ``D x D`` moments and held-out
Gaussians); the model bytes are scattered once.

The result equals single-process ``AdaFlow.adapt`` on the same rows (to float32 rounding): the
statistics are the same moments, the mixture the same merged moments and selection sums, and
the threshold is read from the same scores merged into the same reservoir in partition order.
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
from flowad.flows.moments import CoMoments, DomainMixture, Selection

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
def _token(stats: Statistics, mix: DomainMixture | None = None) -> str:
    h = hashlib.sha256()
    for mean, var in stats:
        h.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(var, dtype=np.float64).tobytes())
    if mix is not None:
        m, sel = mix.moments, mix.selection
        h.update(repr((m.count, sel.count, float(mix.weight), float(m.s4))).encode())
        for a in (m.mean, m.comoment, m.s3, sel.sums, sel.cross):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
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


def install_mixture(det: Any, name: str, stats: Statistics, mix: DomainMixture | None) -> int:
    """:func:`install_statistics`, then (if given) the domain's Gaussian and flow weight."""
    index = install_statistics(det, name, stats)
    if mix is not None:
        det._mix[index] = mix.copy()
    return index


def _adapted(blob: ModelBlob, name: str, stats: Statistics, mix: DomainMixture | None = None) -> Any:
    return worker_detector(blob, ("adapt", name, _token(stats, mix)), lambda det: install_mixture(det, name, stats, mix))


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


def _part_count(moments: Moments) -> int:
    return int(moments.count)


def _with_counts(total: Moments, *counts: int) -> tuple[Moments, list[int]]:
    return total, [int(c) for c in counts]


def _part_standardized(blob: ModelBlob, source: Any, name: str, stats: Statistics, columns: Any, label: str) -> tuple[Any, Any, int]:
    """The adapted detector (all AdaBN statistics set), the partition's standardized rows (None
    when it is empty) and the domain's index."""
    try:
        det = _adapted(blob, name, stats)
        X = _rows(det, source, columns)
    except FlowadError as err:
        raise InputError(f"{_where(source, label)}: {err}") from None
    return det, (det._standardize(X) if len(X) else None), det.domains_.index(name)


def _part_fold_moments(blob: ModelBlob, source: Any, name: str, stats: Statistics, offset: int, count: int, columns: Any, label: str) -> list[CoMoments] | None:
    """Pass A: per-fold moments of the Gaussian's rows of one partition (rows ``offset, ...`` of ``count``)."""
    det, Z, index = _part_standardized(blob, source, name, stats, columns, label)
    if Z is None:
        return None
    with torch.no_grad():
        return det._fold_moments(Z, index, offset, count)


def _part_selection(blob: ModelBlob, source: Any, name: str, stats: Statistics, offset: int, count: int, held: list[Any], columns: Any, label: str) -> Selection:
    """Pass B: the selection sums of one partition's rows under the folds' held-out Gaussians."""
    det, Z, index = _part_standardized(blob, source, name, stats, columns, label)
    if Z is None:
        return Selection.empty()
    with torch.no_grad():
        return det._fold_selection(Z, index, offset, count, held)


def merge_fold_moments(*items: list[CoMoments] | None) -> list[CoMoments] | None:
    """Merge per-fold moments element-wise (None: an empty partition)."""
    out: list[CoMoments] | None = None
    for item in items:
        if item is None:
            continue
        out = list(item) if out is None else [a.merge(b) for a, b in zip(out, item, strict=True)]
    return out


def merge_selections(*items: Selection) -> Selection:
    out = items[0]
    for item in items[1:]:
        out = out.merge(item)
    return out


def _part_scores(blob: ModelBlob, source: Any, name: str, stats: Statistics, columns: Any, label: str,
                 mix: DomainMixture | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Anomaly scores of one partition in the adapted domain, and its column minima and maxima
    (None when empty) for the stuck-feature check."""
    try:
        det = _adapted(blob, name, stats, mix)
        X = _rows(det, source, columns)
        if not len(X):
            return np.empty(0), None, None
        return det.decision_function(X, domain=name), X.min(axis=0), X.max(axis=0)
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
    ``n_layers + 1`` distributed passes over the data for a flow-only model, ``n_layers + 3``
    for a mixture model (``adapted_density="mixture"``, the default; see the module docstring). A partition
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
    counts: list[int] = []
    for pos in positions:  # one pass per AdaBN layer
        frozen = tuple(stats)
        leaves = [dask.delayed(_part_moments, pure=True)(shared, s, name, frozen, pos, cols, labels[i]) for i, s in enumerate(sources)]
        reduced = tree_reduce(leaves, merge_moments, split_every)
        if count is None:  # the first pass also returns each partition's row count (for the folds)
            sizes = [dask.delayed(_part_count, pure=True)(leaf) for leaf in leaves]
            total, counts = run(dask.delayed(_with_counts, pure=True)(reduced, *sizes))
            _check_rows(total.count, name)
        else:
            total = run(reduced)
        count = total.count
        stats.append((total.mean, total.var))
    frozen = tuple(stats)
    mix = None
    if getattr(det, "adapted_density", "flow") == "mixture":
        mix = _mixture(det, shared, sources, name, frozen, counts, cols, labels, split_every, run)
    shipped = None if mix is None else dask.delayed(mix, traverse=False)  # one key, not copied into every task
    tasks = [dask.delayed(_part_scores, pure=True)(shared, s, name, frozen, cols, labels[i], shipped) for i, s in enumerate(sources)]
    kept, seen = np.empty(0), 0
    if client is None:
        per_part = dask.compute(*tasks)
    else:  # merged in partition order as they are gathered: the client holds one partition's scores
        per_part = client.compute(tasks)
        if progress:
            from distributed import progress as progress_bar

            progress_bar(per_part)
    low = high = None
    for item in per_part:
        scores, lo, hi = item if client is None else item.result()
        kept, seen = reservoir_merge(kept, seen, scores), seen + scores.size
        if lo is not None:
            low = lo if low is None else np.minimum(low, lo)
            high = hi if high is None else np.maximum(high, hi)
        if client is not None:
            item.release()
    if low is not None:  # as a streamed AdaFlow.adapt: rows in which a modelled feature never changes are refused
        det._check_spread(low, high, name)
    install_mixture(det, name, frozen, mix)
    det._set_domain(name, kept, int(count or 0))
    return det


def _mixture(det: Any, shared: Any, sources: list[Any], name: str, stats: Statistics, counts: list[int],
             columns: Any, labels: list[str], split_every: int, run: Any) -> DomainMixture:
    """The domain's Gaussian and flow weight in two passes (A: fold moments; B: selection sums),
    the pieces of ``AdaFlow``'s streamed mixture (``_fold_moments``, ``_held_out_gaussians``,
    ``_fold_selection``, ``_finish_mixture``) with each partition's global row offset."""
    import dask

    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    total = int(sum(counts))
    leaves = [
        dask.delayed(_part_fold_moments, pure=True)(shared, s, name, stats, offsets[i], total, columns, labels[i])
        for i, s in enumerate(sources)
    ]
    parts = run(tree_reduce(leaves, merge_fold_moments, split_every))
    if parts is None:  # cannot happen after _check_rows; named rather than asserted
        raise InputError(f"Domain {name!r} has no rows to fit its Gaussian on.")
    frames = det._frame_layout
    held = type(det)._held_out_gaussians(parts, frames)
    selection = Selection.empty()
    if held:
        shipped = dask.delayed(held, traverse=False)
        leaves = [
            dask.delayed(_part_selection, pure=True)(shared, s, name, stats, offsets[i], total, shipped, columns, labels[i])
            for i, s in enumerate(sources)
        ]
        selection = run(tree_reduce(leaves, merge_selections, split_every))
    return type(det)._finish_mixture(parts, selection, frames)
