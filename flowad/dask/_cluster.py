"""The Dask cluster of a command: an existing scheduler, or a LocalCluster started for the job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flowad.exceptions import InputError

__all__ = ["cluster"]

#: Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back
#: to the OS). Setting it switches off glibc's dynamic mmap threshold, so every torch buffer over
#: 128 KiB is mmap'ed and unmapped again: scoring ran 2.5-3x slower in a worker than in a plain
#: process on this project's machine. Local clusters started here leave it unset.
_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None, *, timeout: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client`` for the block.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). None starts a ``LocalCluster``
        with one single-threaded worker process per core (or ``workers``) and stops it after;
        its workers keep glibc's default memory trimming (see ``_TRIM``).
    workers : int, optional
        Worker processes of the local cluster (default: ``os.cpu_count()``).
    timeout : float, default=30
        Seconds to wait for the scheduler.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise InputError(f"Running on Dask needs the dask extra: pip install 'flowad[dask]' ({err}).") from None
    if scheduler is not None and workers is not None:
        raise InputError("Give --scheduler or --workers, not both: an existing cluster has its own workers.")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}.")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(f"Could not connect to the Dask scheduler at {scheduler!r}: {err}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with dask.config.set({_TRIM: None}):  # None: the nanny does not set it
        local = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with Client(local) as client:
            yield client
    finally:
        local.close()
