"""A model travels to the workers as the bytes of its model file, and is loaded there once.

Model files are safetensors + a JSON manifest (:mod:`flowad.io`): nothing is pickled, so the
bytes are what is scattered (once per worker) and each worker process keeps the loaded
detector in a small cache keyed by the file's SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowad.detectors import BaseFlowDetector, load
from flowad.exceptions import InputError

__all__ = ["ModelBlob", "model_blob", "worker_detector"]

#: Detectors kept per worker process (different models, or the states of an adaptation).
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, repr=False)
class ModelBlob:
    """The bytes of a model file and their SHA-256 digest (the workers' cache key).

    One object, not a tuple: ``Client.scatter`` would scatter a tuple's items separately.
    """

    digest: str
    data: bytes

    def __repr__(self) -> str:
        return f"ModelBlob({self.digest[:12]}, {len(self.data)} bytes)"


def model_blob(model: Any) -> tuple[ModelBlob, Any]:
    """The model-file bytes of ``model`` (a model-file path, a fitted detector or a blob) and a
    detector loaded from them on the client (a copy: the caller's detector is never changed)."""
    if isinstance(model, ModelBlob):
        return model, _load_bytes(model)
    if isinstance(model, BaseFlowDetector):
        with tempfile.TemporaryDirectory(prefix="flowad-") as tmp:
            path = Path(tmp) / "model.flowad"
            model.save(path)
            data = path.read_bytes()
            det = load(path)
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        det = load(path)  # a bad file fails here, named, before any worker sees it
        data = path.read_bytes()
    else:
        raise InputError(f"model must be a model-file path or a fitted flowad detector, got {type(model).__name__}.")
    return ModelBlob(hashlib.sha256(data).hexdigest(), data), det


def _load_bytes(blob: ModelBlob) -> Any:
    # flowad.io reads model files from paths only; the bytes go through a private temp file.
    fd, tmp = tempfile.mkstemp(prefix="flowad-model-", suffix=".flowad")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob.data)
        return load(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def worker_detector(blob: ModelBlob, variant: tuple[Any, ...] = (), build: Any = None) -> Any:
    """The detector of ``blob`` in this process, loaded once and cached.

    ``variant`` names a modified copy (e.g. a domain with given statistics) that ``build(det)``
    makes from a freshly loaded detector; it is cached under ``(digest, *variant)``.
    """
    key = (blob.digest, *variant)
    with _lock:
        det = _cache.get(key)
        if det is None:
            det = _load_bytes(blob)
            if build is not None:
                build(det)
            _cache[key] = det
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
        return det
