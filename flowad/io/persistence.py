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
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from flowad.exceptions import FlowadError, ModelFileError
from flowad.io.model_file import read_model_file, write_model_file

__all__ = [
    "REGISTRY",
    "Persistable",
    "State",
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
    ModelFileError
        If the file is missing, unreadable, tampered with, of an unknown or other kind, or does
        not describe a valid model of its kind (the message says which).
    """
    tensors, manifest = read_model_file(path)
    kind = manifest.get("kind")
    target = _target(path, kind, cls)
    try:
        det = target(**{**params_from_json(manifest["params"]), "device": device})
        det._set_state(tensors, manifest, device=device)
    except (KeyError, TypeError, ValueError, RuntimeError, FlowadError) as err:  # FlowadError: ModelFileError too
        raise ModelFileError(f"{str(path)!r} does not describe a valid {kind!r} model: {err}") from None
    return det, manifest


def load_detector(path: str | os.PathLike[str], cls: type[Any] | None = None, *, device: str = "cpu") -> Any:
    """:func:`read_detector` without the manifest."""
    return read_detector(path, cls, device=device)[0]
