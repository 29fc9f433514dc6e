"""Training checkpoints of DDP runs: written by rank 0 only, atomically (:mod:`flowad.io._atomic`).

A checkpoint is a ``torch.save`` dictionary of tensors and plain values: the flow's state dict
(weights and spectral-norm vectors), the optimizer's state, the step, the loss history, the
standardization, and the settings of the run (model kind, hyper-parameters, columns, seed, world
size, a fingerprint of the data layout) that a resumed run must repeat. No RNG state is stored:
every random draw of a run is a function of the seed, the rank and the step (see
:mod:`flowad.distributed._data`). It loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from flowad.exceptions import InputError
from flowad.io._atomic import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "write_checkpoint", "read_checkpoint", "checkpoint_step"]

CHECKPOINT_FORMAT = 1


def write_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (a reader sees the previous checkpoint or this one)."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    return atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state written by :func:`write_checkpoint`; an :class:`InputError` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds on a foreign or truncated file
        raise InputError(f"{str(path)!r} is not a flowad training checkpoint ({type(err).__name__}: {err}).") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{str(path)!r} is not a flowad training checkpoint (format {CHECKPOINT_FORMAT}).")
    return state


def checkpoint_step(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(step, total_steps)`` of the checkpoint at ``path``, or None if there is none (or it is unreadable)."""
    try:
        state = read_checkpoint(path)
    except InputError:
        return None
    return int(state["step"]), int(state["total_steps"])
