"""Saving and loading detectors: the registry of model kinds and the detector model file.

A detector model file is an ordinary model file (:mod:`flowad.io.model_file`) whose manifest
starts with the detector's ``kind`` (the name it is registered under) and its hyper-parameters
(``params``, JSON values; tuples are stored as lists), followed by the fields of the detector's
own state. This module owns that layout, the kind registry and the error messages; it knows
nothing of any detector class. A detector takes part through three members (the
:class:`Persistable` protocol):

* ``_kind``: the name set by :func:`register`;
* ``_get_state() -> (tensors, fields)``: what to store besides ``kind`` and ``params``;
* ``_set_state(tensors, manifest, device=...)``: restore a fresh instance, built from the
  stored ``params``, from the file's tensors and (complete) manifest.

Anything else that belongs in the file (a pipeline's settings, say) is handed to
:func:`save_detector` as ``extra``, in the same ``(tensors, fields)`` form.

Before a detector is constructed from a file, :func:`read_detector` checks the fields this
module and every detector share: ``kind`` a string, ``params`` an object of JSON scalars and
flat lists, ``n_features_in`` a positive int, ``feature_names_in`` null or that many strings,
``threshold`` a finite number, every floating tensor finite, and the size of the network that
the hyper-parameters ask for (see :func:`implied_min_parameters`) no larger than the weights
the file holds, so a small file cannot make loading allocate a huge network.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from flowad.exceptions import FlowadError, InputError, ModelFileError
from flowad.io.model_file import read_model_file, write_model_file

__all__ = [
    "REGISTRY",
    "Persistable",
    "State",
    "check_manifest",
    "implied_min_parameters",
    "load_detector",
    "params_from_json",
    "params_to_json",
    "read_detector",
    "register",
    "save_detector",
]

#: Tensors and JSON manifest fields that a detector (or a pipeline) stores in a model file.
State = tuple[dict[str, torch.Tensor], dict[str, Any]]

#: Manifest fields that this module writes itself; a detector's state may not use them.
_RESERVED = ("kind", "params")


class Persistable(Protocol):
    """What :func:`save_detector` and :func:`load_detector` need from a detector class."""

    _kind: ClassVar[str]

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    def _get_state(self) -> State: ...

    def _set_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any], *, device: str) -> None: ...


P = TypeVar("P", bound=type)

#: kind name (as written in model files) -> class; filled by :func:`register`.
REGISTRY: dict[str, type[Any]] = {}


def register(kind: str) -> Any:
    """Class decorator: record a class under ``kind``, the name its model files carry."""

    def deco(cls: P) -> P:
        cls._kind = kind
        REGISTRY[kind] = cls
        return cls

    return deco


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as JSON values: tuples become lists; a ``random_state`` that is not an
    int (a numpy Generator, say) is stored as None."""
    out = dict(params)
    if not (out.get("random_state") is None or isinstance(out["random_state"], numbers.Integral)):
        out["random_state"] = None
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`params_to_json` (lists become tuples again)."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}


def _merge(into: State, more: State, what: str) -> None:
    tensors, fields = into
    clash = sorted((set(more[0]) & set(tensors)) | (set(more[1]) & set(fields)) | (set(more[1]) & set(_RESERVED)))
    if clash:
        raise ValueError(f"{what} would overwrite the model file's entries {clash}.")
    tensors.update(more[0])
    fields.update(more[1])


def save_detector(det: Persistable, path: str | os.PathLike[str], *, extra: State | None = None) -> Path:
    """Write a fitted detector (and ``extra`` entries) to the model file ``path``, atomically.

    Parameters
    ----------
    det : Persistable
        A fitted detector of a registered class.
    path : path-like
        Destination; its folder must exist.
    extra : (tensors, fields) or None, default=None
        More tensors and manifest fields to store with the detector; they may not reuse the
        detector's names.

    Returns
    -------
    Path
    """
    if not det._kind:
        raise ModelFileError(f"{type(det).__name__} is not a registered flowad model kind; it cannot be saved.")
    tensors, fields = det._get_state()
    state: State = (dict(tensors), {"kind": det._kind, "params": params_to_json(det.get_params())})
    _merge(state, ({}, fields), f"{type(det).__name__}'s state")
    if extra is not None:
        _merge(state, extra, "The extra state")
    return write_model_file(path, *state)


def _target(path: str | os.PathLike[str], kind: Any, cls: type[Any] | None) -> type[Any]:
    """The class to build for a file of ``kind``: ``cls`` if given (and it matches), else the registered one."""
    target = REGISTRY.get(kind) if cls is None else cls
    if target is None or target._kind != kind:
        wanted = "known flowad" if cls is None else cls._kind
        if kind in REGISTRY:
            advice = f"; load it with {REGISTRY[kind].__name__}.load or flowad.load."
        else:
            advice = f"; known kinds: {sorted(REGISTRY)}."
        raise ModelFileError(f"{str(path)!r} holds a {kind!r} model, not a {wanted!r} one{advice}")
    return target


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def implied_min_parameters(params: dict[str, Any]) -> int:
    """A lower bound on the number of weights of the network that ``params`` describe.

    Counts what every flowad architecture has at least: ``n_couplings`` coupling networks (or
    ``levels * steps`` for image flows) with the ``hidden`` widths, each at least
    ``h[0] + sum(h[i] * h[i+1]) + h[-1]`` weights (input, hidden-to-hidden, output layers;
    at least 1 when ``hidden`` is missing or malformed), and one weight per ``n_layers`` unit.
    Malformed sizes count as 0 (the detector's own parameter checks refuse them).
    """

    def count(name: str, missing: int = 0) -> int:
        v = params.get(name, missing)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    hidden = params.get("hidden")
    widths = [hidden] if isinstance(hidden, int) and not isinstance(hidden, bool) else hidden
    if isinstance(widths, list) and widths and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        per_net = widths[0] + sum(a * b for a, b in itertools.pairwise(widths)) + widths[-1]
    else:
        per_net = 0
    if "n_couplings" in params:
        networks = count("n_couplings")
    elif "levels" in params or "steps" in params:  # a missing one takes its default, at least 1
        networks = count("levels", 1) * count("steps", 1)
    else:
        networks = 0
    return networks * max(per_net, 1) + count("n_layers")  # every coupling network has a weight


def check_manifest(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    """Check a detector file's shared fields before anything is built (see the module docstring).

    Raises
    ------
    ModelFileError
        Naming the path and the field.
    """
    where = f"{str(path)!r} has an invalid manifest"
    kind = manifest.get("kind")
    if not isinstance(kind, str):
        raise ModelFileError(f"{where}: 'kind' must be a string, got {kind!r}.")
    params = manifest.get("params")
    if not isinstance(params, dict):
        raise ModelFileError(f"{where}: 'params' must be an object of hyper-parameters, got {type(params).__name__}.")
    for name, value in params.items():
        if not (_scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value))):
            raise ModelFileError(f"{where}: hyper-parameter {name!r} must be a number, string, null or a flat list, got {value!r}.")
    n = manifest.get("n_features_in")
    if "n_features_in" in manifest and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ModelFileError(f"{where}: 'n_features_in' must be an int >= 1, got {n!r}.")
    names = manifest.get("feature_names_in")
    if names is not None and not (isinstance(names, list) and all(isinstance(x, str) for x in names) and (n is None or len(names) == n)):
        raise ModelFileError(f"{where}: 'feature_names_in' must be null or a list of {n} strings, got {names!r:.200}.")
    threshold = manifest.get("threshold")
    if "threshold" in manifest and not (
        isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and math.isfinite(threshold)
    ):
        raise ModelFileError(f"{where}: 'threshold' must be a finite number, got {threshold!r}.")
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{str(path)!r} holds non-finite values in tensor {name!r}.")
    held = sum(t.numel() for t in tensors.values())
    if isinstance(n, int) and n > held:
        raise ModelFileError(f"{where}: {n:,} features but only {held:,} stored values; it was modified or corrupted.")
    needed = implied_min_parameters(params)
    if needed > held:
        sizes = {k: params[k] for k in ("n_couplings", "n_layers", "levels", "steps", "hidden") if k in params}
        raise ModelFileError(
            f"{where}: its hyper-parameters {sizes} ask for a network of at least {needed:,} weights but the file "
            f"holds only {held:,} values; it was modified or corrupted."
        )


def _check_device(device: Any) -> None:
    """Refuse a CUDA device without CUDA before reading (a clearer message than a failed load)."""
    if isinstance(device, (str, torch.device)) and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={str(device)!r} was requested but CUDA is not available; use device='cpu' or 'auto'.")


def read_detector(
    path: str | os.PathLike[str], cls: type[Any] | None = None, *, device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Load a detector saved by :func:`save_detector`, with the file's whole manifest.

    Parameters
    ----------
    path : path-like
    cls : class or None, default=None
        Refuse a file of another kind than ``cls``'s; None accepts every registered kind.
    device : str, default="cpu"
        Where to put the model (the detector's ``device`` hyper-parameter).

    Returns
    -------
    detector, manifest

    Raises
    ------
    InputError
        If ``device`` asks for CUDA and CUDA is not available.
    ModelFileError
        If the file is missing, unreadable, tampered with, of an unknown or other kind, or does
        not describe a valid model of its kind (the message says which).
    """
    _check_device(device)
    tensors, manifest = read_model_file(path)
    check_manifest(path, tensors, manifest)
    kind = manifest["kind"]
    target = _target(path, kind, cls)
    try:
        legacy = getattr(target, "_LEGACY_PARAMS", {})  # parameters newer than the file take their old value
        det = target(**{**legacy, **params_from_json(manifest["params"]), "device": device})
        det._set_state(tensors, manifest, device=device)
    except (KeyError, TypeError, ValueError, RuntimeError, FlowadError) as err:  # FlowadError: ModelFileError too
        raise ModelFileError(f"{str(path)!r} does not describe a valid {kind!r} model: {err}") from None
    return det, manifest


def load_detector(path: str | os.PathLike[str], cls: type[Any] | None = None, *, device: str = "cpu") -> Any:
    """:func:`read_detector` without the manifest."""
    return read_detector(path, cls, device=device)[0]
