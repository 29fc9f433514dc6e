"""Scoring and AdaFlow adaptation on Dask (extra ``dask``: ``pip install flowad[dask]``).

* :func:`score` scores a Dask DataFrame / Array or a folder of Parquet/CSV files partition by
  partition and returns a lazy Dask DataFrame (input index and order kept);
  :func:`write_scores` writes the scores as Parquet parts, one per partition, reporting or
  stopping at bad partitions.
* :func:`adapt` computes a domain's AdaBN statistics (and, for a mixture model, its Gaussian
  and flow weight) from per-partition moments merged by tree reductions (``n_layers + 1``
  passes for the flow alone, ``n_layers + 3`` for the default mixture).
* :func:`cluster` connects to a scheduler, or starts a ``LocalCluster`` for the job.

The model goes to the workers as the bytes of its model file (safetensors + JSON, never a
pickle), scattered once per worker and loaded there once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["adapt", "cluster", "merge_moments", "score", "write_scores"]

_WHERE = {
    "adapt": "flowad.dask._adapt",
    "merge_moments": "flowad.dask._adapt",
    "score": "flowad.dask._score",
    "write_scores": "flowad.dask._score",
    "cluster": "flowad.dask._cluster",
}


def __getattr__(name: str) -> Any:
    # Lazy: flowad.dask._frame (used by the one-process CLI) must import without Dask installed.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'flowad.dask' has no attribute {name!r}")
