"""Machinery shared by every flowad detector: parameter checks, seeding, devices,
standardization, scoring in batches, thresholds and model files.

Score conventions (one per axis, everywhere in flowad):

* ``score_samples(X)``: log-density of each row in *input* space (the standardization's
  log-determinant included). Higher = more normal, as in scikit-learn.
* ``decision_function(X)``: anomaly score = negative log-likelihood = ``-score_samples(X)``.
  Higher = more anomalous, as in PyOD.
* ``predict(X)``: 1 = anomaly, 0 = normal, as in PyOD.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from flowad._validation import check_is_fitted, check_n_features, check_X, feature_names_of
from flowad.exceptions import FlowadError, InputError, ModelFileError, NonFiniteError
from flowad.flows.flow import Flow
from flowad.io.model_file import read_model_file, write_model_file

__all__ = ["BaseFlowDetector", "resolve_device", "seed_from", "DETECTOR_REGISTRY"]

logger = logging.getLogger("flowad")

#: kind name (as written in model files) -> detector class; filled by ``register``.
DETECTOR_REGISTRY: dict[str, type[BaseFlowDetector]] = {}

#: Rows scored per forward pass; bounds the memory of scoring whatever N is. Small enough that a
#: default coupling network's activations (rows x 64 floats) stay in a CPU's L2 cache (on the
#: project's machine 4096 scored the default RobustRealNVP faster than 8192).
SCORE_BATCH = 4096
#: A column whose training std is at most this times max(1, |mean|) counts as constant.
CONSTANT_RTOL = 1e-12

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def register(kind: str) -> Any:
    """Class decorator: record a detector class under ``kind`` for model files."""

    def deco(cls: type[BaseFlowDetector]) -> type[BaseFlowDetector]:
        cls._kind = kind
        DETECTOR_REGISTRY[kind] = cls
        return cls

    return deco


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked and returned."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r} was requested but CUDA is not available; use device='cpu' or 'auto'.")
    return dev


def seed_from(random_state: Any) -> int:
    """Turn ``random_state`` (None, int, numpy Generator/RandomState) into a 63-bit seed.

    ``None`` draws fresh OS entropy; the global numpy and torch RNGs are never touched.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise InputError(f"random_state must be a non-negative int, got {random_state}.")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**62))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise InputError(f"random_state must be None, an int or a numpy Generator/RandomState, got {random_state!r}.")


@contextlib.contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's default RNG inside ``fork_rng`` so the global state is restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_param(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"{name} must be {expected}, got {value!r}.")


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as JSON values; a random_state object (not an int) is stored as None."""
    out = dict(params)
    if not (out.get("random_state") is None or isinstance(out["random_state"], numbers.Integral)):
        out["random_state"] = None
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


class BaseFlowDetector(OutlierMixin, BaseEstimator):
    """Base class: a flow on standardized features, with PyOD score conventions.

    Subclasses implement ``_build_flow(n_features)`` and ``_train(flow, Z, generator)``,
    and may extend ``_validate_params``. See the module docstring for the score conventions.
    """

    _kind: ClassVar[str] = ""

    # ----------------------------------------------------------------------------- params
    def _validate_params(self) -> None:
        c = self.contamination
        _check_param("contamination", c, isinstance(c, numbers.Real) and 0.0 < c <= 0.5, "a float in (0, 0.5]")
        t = self.threshold
        _check_param("threshold", t, t is None or (isinstance(t, numbers.Real) and np.isfinite(t)), "None or a finite float")
        _check_param("dtype", self.dtype, self.dtype in _DTYPES, "'float32' or 'float64'")
        _check_param("epochs", self.epochs, isinstance(self.epochs, numbers.Integral) and self.epochs >= 1, "an int >= 1")
        bs = self.batch_size
        _check_param("batch_size", bs, isinstance(bs, numbers.Integral) and bs >= 2, "an int >= 2")
        _check_param("lr", self.lr, isinstance(self.lr, numbers.Real) and self.lr > 0, "a float > 0")
        _check_param("verbose", self.verbose, isinstance(self.verbose, numbers.Integral), "an int")
        resolve_device(self.device)

    @property
    def torch_dtype_(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    # ----------------------------------------------------------------------- subclass API
    def _build_flow(self, n_features: int) -> Flow:  # pragma: no cover - abstract
        raise NotImplementedError

    def _train(self, flow: Flow, Z: torch.Tensor, generator: torch.Generator) -> list[float]:  # pragma: no cover
        raise NotImplementedError

    # ---------------------------------------------------------------------- preprocessing
    def _fit_standardization(self, X: np.ndarray) -> None:
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        constant = std <= CONSTANT_RTOL * np.maximum(1.0, np.abs(mean))
        if constant.all():
            raise InputError(
                f"All {X.shape[1]} features of X are constant in the training data; there is nothing to model."
            )
        if constant.any():
            names = self._column_names(np.flatnonzero(constant))
            warnings.warn(
                f"Features {names} are constant in the training data and carry no information; "
                "they are left out of the model (their values are ignored when scoring).",
                UserWarning,
                stacklevel=3,
            )
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, std)
        self.constant_features_ = constant

    def _column_names(self, idx: np.ndarray) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [str(names[i]) for i in idx] if names is not None else [f"column {i}" for i in idx]

    def _standardize(self, X: np.ndarray) -> torch.Tensor:
        keep = ~self.constant_features_
        Z = (X[:, keep] - self.mean_[keep]) / self.scale_[keep]
        return torch.as_tensor(Z, dtype=self.torch_dtype_, device=self.device_)

    @property
    def _log_scale_sum(self) -> float:
        return float(np.log(self.scale_[~self.constant_features_]).sum())

    def _check_input(self, X: Any, *, fitting: bool = False) -> np.ndarray:
        arr = check_X(X, min_samples=2 if fitting else 1)
        names = feature_names_of(X)
        if fitting:
            self.n_features_in_ = arr.shape[1]
            if names is not None:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            check_n_features(arr, self.n_features_in_, self)
            fitted_names = getattr(self, "feature_names_in_", None)
            if fitted_names is not None and names is not None and list(fitted_names) != names:
                raise InputError(
                    f"X has feature names {names}, but {type(self).__name__} was fitted with "
                    f"{list(fitted_names)}; pass the same columns in the same order."
                )
        return arr

    # -------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> BaseFlowDetector:
        """Fit the flow on ``X`` (unlabeled; ``y`` is ignored) and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, which may contain anomalies. numpy, pandas or torch.
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        X = self._check_input(X, fitting=True)
        self.device_ = resolve_device(self.device)
        seed = seed_from(self.random_state)
        self._fit_standardization(X)
        Z = self._standardize(X)
        with seeded_torch(seed, self.device_):
            flow = self._build_flow(Z.shape[1]).to(device=self.device_, dtype=self.torch_dtype_)
        generator = torch.Generator(device=self.device_).manual_seed(seed + 1)
        self.history_ = self._train(flow, Z, generator)
        self.flow_ = flow
        self._calibrate(X)
        return self

    def _calibrate(self, X: np.ndarray) -> None:
        self.decision_scores_ = self.decision_function(X)
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(np.percentile(self.decision_scores_, 100.0 * (1.0 - self.contamination)))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)

    # ---------------------------------------------------------------------------- scoring
    def _log_prob(self, Z: torch.Tensor) -> torch.Tensor:
        return self.flow_.log_prob(Z)

    @property
    def _score_offset(self) -> float:
        """Added to the model's log-density to give ``score_samples`` (the standardization's log-det)."""
        return -self._log_scale_sum

    def _check_scores(self, scores: np.ndarray) -> None:
        """Raise :class:`NonFiniteError` naming the rows whose score is NaN or infinite."""
        bad = ~np.isfinite(scores)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise NonFiniteError(
                f"The score of {rows.size} row(s) (first: {rows[:5].tolist()}) is not finite. "
                "Their values lie far outside the training range"
                + (" and overflow float32; refit with dtype='float64'." if self.dtype == "float32" else ".")
            )

    def _batched_log_density(self, X: np.ndarray, log_density: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
        """Log-density in input space of validated rows ``X``, ``SCORE_BATCH`` rows per pass.

        ``log_density(Z)`` maps standardized rows to the model's log-density (default: the
        flow's); the standardization's log-det is added and non-finite values are refused.
        """
        fn = self._log_prob if log_density is None else log_density
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, X.shape[0], SCORE_BATCH):
                out[start : start + SCORE_BATCH] = fn(self._standardize(X[start : start + SCORE_BATCH])).double().cpu().numpy()
        out += self._score_offset
        self._check_scores(out)
        return out

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density of each row of ``X`` under the fitted flow (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Raises
        ------
        NonFiniteError
            If the density of some rows cannot be represented (e.g. values astronomically far
            from the training data in float32); the message names the rows.
        """
        check_is_fitted(self)
        return self._batched_log_density(self._check_input(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each row: the negative log-likelihood (higher = more anomalous).

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return -self.score_samples(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for rows whose anomaly score exceeds ``threshold_``, else 0.

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self)
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and return its 0/1 labels (``labels_``)."""
        return self.fit(X).labels_

    # ------------------------------------------------------------------------ persistence
    def _restore_flow(self, n_features: int, state: dict[str, torch.Tensor]) -> None:
        """Rebuild ``flow_`` from hyper-parameters and fitted attributes, then load ``state``."""
        with seeded_torch(0, self.device_):
            flow = self._build_flow(n_features)
        flow = flow.to(device=self.device_, dtype=self.torch_dtype_)  # before loading: no precision loss
        flow.load_state_dict(state, strict=True)
        self.flow_ = flow.eval()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support (joblib, multiprocessing): the flow travels as its ``state_dict``.

        Parametrized modules (spectral norm) cannot be pickled whole; model files written by
        :meth:`save` remain the supported storage format.
        """
        state = dict(super().__getstate__())
        flow = state.pop("flow_", None)
        if flow is not None:
            state["_flow_state"] = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
            state["_flow_features"] = flow.features
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        flow_state = state.pop("_flow_state", None)
        n_features = state.pop("_flow_features", None)
        super().__setstate__(state)
        if flow_state is not None:
            if self.device_.type == "cuda" and not torch.cuda.is_available():
                self.device_ = torch.device("cpu")
            self._restore_flow(n_features, flow_state)

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON fields that subclasses add to the model file."""
        return {}, {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` wrote (before the flow weights are loaded)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted detector to ``path`` as a code-free model file.

        The file holds safetensors weights plus a JSON manifest (flowad version, model kind,
        hyper-parameters, feature names, standardization, threshold); see :mod:`flowad.io`.
        """
        check_is_fitted(self)
        tensors = {f"flow.{k}": v for k, v in self.flow_.state_dict().items()}
        tensors.update(
            {
                "prep.mean": torch.from_numpy(self.mean_),
                "prep.scale": torch.from_numpy(self.scale_),
                "prep.constant": torch.from_numpy(self.constant_features_.astype(np.uint8)),
                "train.decision_scores": torch.from_numpy(self.decision_scores_),
                "train.history": torch.tensor(self.history_, dtype=torch.float64),
            }
        )
        extra_tensors, extra_meta = self._extra_state()
        tensors.update(extra_tensors)
        names = getattr(self, "feature_names_in_", None)
        manifest = {
            "kind": self._kind,
            "params": _json_params(self.get_params()),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "threshold": self.threshold_,
            **extra_meta,
        }
        write_model_file(path, tensors, manifest)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> BaseFlowDetector:
        """Load a detector saved with :meth:`save`; the class must match the file's kind.

        Use :func:`flowad.load` to load any kind of flowad model.
        """
        tensors, manifest = read_model_file(path)
        kind = manifest.get("kind")
        target = DETECTOR_REGISTRY.get(kind) if cls._kind == "" else cls
        if target is None or target._kind != kind:
            raise ModelFileError(
                f"{str(path)!r} holds a {kind!r} model, not a {cls._kind or 'known flowad'!r} one"
                + (f"; known kinds: {sorted(DETECTOR_REGISTRY)}." if target is None else f"; load it with {DETECTOR_REGISTRY[kind].__name__}.load or flowad.load.")
            )
        try:
            params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in manifest["params"].items()}
            det = target(**{**params, "device": device})
            det._validate_params()
            det.device_ = resolve_device(device)
            det.n_features_in_ = int(manifest["n_features_in"])
            if manifest.get("feature_names_in") is not None:
                det.feature_names_in_ = np.asarray(manifest["feature_names_in"], dtype=object)
            det.mean_ = tensors["prep.mean"].numpy().astype(np.float64)
            det.scale_ = tensors["prep.scale"].numpy().astype(np.float64)
            det.constant_features_ = tensors["prep.constant"].numpy().astype(bool)
            if not (det.mean_.shape == det.scale_.shape == det.constant_features_.shape == (det.n_features_in_,)):
                raise ModelFileError(f"{str(path)!r}: standardization shapes do not match {det.n_features_in_} features.")
            det.decision_scores_ = tensors["train.decision_scores"].numpy().astype(np.float64)
            det.history_ = tensors["train.history"].tolist()
            det.threshold_ = float(manifest["threshold"])
            det.labels_ = (det.decision_scores_ > det.threshold_).astype(np.int64)
            det._load_extra_state(tensors, manifest)
            state = {k[len("flow.") :]: v for k, v in tensors.items() if k.startswith("flow.")}
            det._restore_flow(int((~det.constant_features_).sum()), state)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, FlowadError) as err:
            raise ModelFileError(f"{str(path)!r} does not describe a valid {kind!r} model: {err}") from None
        return det
