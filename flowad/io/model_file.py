"""Reading and writing flowad model files.

A model file is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: the tensors
(weights, buffers, standardization, training scores) are stored as safetensors tensors, and a
JSON *manifest* (format name and version, flowad/torch versions, model kind, hyper-parameters,
fitted scalars) is stored in the safetensors header metadata under the key ``"flowad"``.
Nothing is ever unpickled, so loading a file cannot run code.

Integrity: the manifest records a SHA-256 digest of every tensor's bytes, checked on load, so
a truncated or tampered file is refused. Writes go to a temporary file in the target folder
that is fsync'ed and then atomically renamed over the target, so a crash mid-write never
leaves a half-written model in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from flowad import _version
from flowad.exceptions import ModelFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "read_model_file", "write_model_file"]

FORMAT_NAME = "flowad-model"
#: Bumped when a change makes older flowad releases unable to read new files.
FORMAT_VERSION = 1
_META_KEY = "flowad"


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_model_file(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> Path:
    """Atomically write ``tensors`` and ``manifest`` to ``path``.

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist. An existing file is replaced only once the new
        one is completely written.
    tensors : dict of str to Tensor
        Tensors to store (moved to CPU, made contiguous).
    manifest : dict
        JSON-serialisable description; ``format``, ``format_version`` and ``digest`` are added.
    """
    path = Path(path)
    if not path.parent.exists():
        raise ModelFileError(f"Cannot write model file {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "flowad_version": _version.__version__,
        "torch_version": torch.__version__.split("+")[0],
        **manifest,
        "digest": _digest(cpu),
    }
    try:
        text = json.dumps(full, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"Model metadata is not JSON-serialisable: {err}") from err
    payload = st_save(cpu, metadata={_META_KEY: text})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors buffer (8-byte header length, then JSON header)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return header.get("__metadata__") or {}


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a model file written by :func:`write_model_file`.

    Returns
    -------
    tensors : dict of str to Tensor
        On CPU.
    manifest : dict
        The JSON manifest.

    Raises
    ------
    ModelFileError
        If the file is missing, not a flowad model, corrupt, tampered with, or written by an
        incompatible (newer) format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        meta = _header_metadata(data)
    except (SafetensorError, ValueError, OSError, RuntimeError) as err:
        raise ModelFileError(
            f"{str(path)!r} is not a readable flowad model file (corrupt, truncated, or another format): {err}"
        ) from None
    if _META_KEY not in meta:
        raise ModelFileError(f"{str(path)!r} is a safetensors file but not a flowad model (no flowad manifest).")
    try:
        manifest = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{str(path)!r} has a corrupt flowad manifest: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{str(path)!r} is not a flowad model file (format {manifest.get('format')!r}).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses model-file format {version}, written by flowad "
            f"{manifest.get('flowad_version')}; this flowad {_version.__version__} reads format {FORMAT_VERSION} or older. "
            "Upgrade flowad to load it."
        )
    if _digest(tensors) != manifest.get("digest"):
        raise ModelFileError(f"{str(path)!r} failed its integrity check: its tensors do not match the recorded digest (tampered or damaged).")
    if manifest.get("flowad_version") != _version.__version__:
        warnings.warn(
            f"{str(path)!r} was written by flowad {manifest.get('flowad_version')}; loading it with {_version.__version__}.",
            UserWarning,
            stacklevel=3,
        )
    return tensors, manifest
