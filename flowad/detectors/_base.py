"""Machinery shared by every flowad detector: parameter checks, seeding, devices,
standardization, training, scoring in batches and thresholds.

Model files are written and read by :mod:`flowad.io.persistence`; a detector hands it its
state through ``_get_state`` / ``_set_state`` (subclasses extend them with ``_extra_state`` /
``_load_extra_state``).

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
from flowad.exceptions import InputError, ModelFileError, NonFiniteError
from flowad.flows.flow import Flow
from flowad.io.persistence import REGISTRY as DETECTOR_REGISTRY
from flowad.io.persistence import State, load_detector, register, save_detector
from flowad.preprocessing import DEFAULT_METHOD, METHODS, TRAIN_CLIP, Standardization
from flowad.training import TrainConfig, fit_flow

__all__ = ["BaseFlowDetector", "DETECTOR_REGISTRY", "SCORE_BATCH", "register", "resolve_device", "seed_from", "seeded_torch"]

logger = logging.getLogger("flowad")

#: Rows scored per forward pass; bounds the memory of scoring whatever N is. Small enough that a
#: default coupling network's activations (rows x 64 floats) stay in a CPU's L2 cache (on the
#: project's machine 4096 scored the default RobustRealNVP faster than 8192).
SCORE_BATCH = 4096

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Standardized magnitude below which a float64 model still scores a row finitely (its square,
#: times the flow's bounded scales, stays below float64's 1.8e308).
_FLOAT64_SAFE_Z = 1e120


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


#: Largest int ``random_state``: torch seeds are 64-bit, and each fit also uses ``seed + 1``.
MAX_SEED = 2**63 - 2


def seed_from(random_state: Any) -> int:
    """Turn ``random_state`` (None, int, numpy Generator/RandomState) into a 63-bit seed.

    ``None`` draws fresh OS entropy; the global numpy and torch RNGs are never touched.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state <= MAX_SEED:
            raise InputError(f"random_state must be an int in [0, 2**63 - 2], got {random_state}.")
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


def _real(value: Any) -> bool:
    """A finite real number (not a bool): what every float hyper-parameter must be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def _integer(value: Any) -> bool:
    """An int (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_couplings(det: Any) -> None:
    """``hidden`` and ``s_max``: the widths and log-scale bound of a detector's coupling networks."""
    h = det.hidden
    ok = isinstance(h, (tuple, list)) and len(h) >= 1 and all(isinstance(w, numbers.Integral) and w >= 1 for w in h)
    _check_param("hidden", h, ok, "a non-empty tuple of positive ints, e.g. (64, 64)")
    _check_param("s_max", det.s_max, _real(det.s_max) and det.s_max > 0, "a float > 0 and finite")


def _store_params(det: Any, params: dict[str, Any]) -> None:
    """The body of every detector's ``__init__``: store each argument, unchanged, under its name.

    Called as ``_store_params(self, locals())``; as scikit-learn requires, the signature stays
    explicit and nothing is validated or derived here (``fit`` does that).
    """
    for name in det._get_param_names():
        setattr(det, name, params[name])


class BaseFlowDetector(OutlierMixin, BaseEstimator):
    """Base class: a flow on robustly standardized features (:mod:`flowad.preprocessing`),
    with PyOD score conventions.

    Subclasses implement ``_build_flow(n_features)`` and ``_train(flow, Z, generator)``,
    and may extend ``_validate_params``. Every detector has the hyper-parameters checked by
    :meth:`_validate_params` here. See the module docstring for the score conventions.
    """

    _kind: ClassVar[str] = ""

    # ----------------------------------------------------------------------------- params
    def _validate_params(self) -> None:
        c = self.contamination
        _check_param("contamination", c, _real(c) and 0.0 < c <= 0.5, "a float in (0, 0.5]")
        t = self.threshold
        _check_param("threshold", t, t is None or _real(t), "None or a finite float")
        _check_param("dtype", self.dtype, isinstance(self.dtype, str) and self.dtype in _DTYPES, "'float32' or 'float64'")
        _check_param("epochs", self.epochs, _integer(self.epochs) and self.epochs >= 1, "an int >= 1")
        bs = self.batch_size
        _check_param("batch_size", bs, _integer(bs) and bs >= 2, "an int >= 2")
        _check_param("lr", self.lr, _real(self.lr) and self.lr > 0, "a float > 0 and finite")
        w = self.weight_decay
        _check_param("weight_decay", w, _real(w) and w >= 0, "a float >= 0 and finite")
        g = self.grad_clip
        _check_param("grad_clip", g, g is None or (_real(g) and g > 0), "None or a float > 0 and finite")
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

    # --------------------------------------------------------------------------- training
    def _train_config(self, **settings: Any) -> TrainConfig:
        """Training settings from the hyper-parameters every detector has; ``settings`` adds
        the others (trim ratio, noise, patience) or replaces some (fine-tuning)."""
        common = {
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            "grad_clip": None if self.grad_clip is None else float(self.grad_clip),
        }
        return TrainConfig(**{**common, **settings})

    def _fit_flow(self, flow: Flow, Z: torch.Tensor, config: TrainConfig, generator: torch.Generator, **data: Any) -> list[float]:
        """:func:`flowad.training.fit_flow`, logging the loss every 10 epochs when ``verbose``."""
        name = type(self).__name__

        def on_epoch(epoch: int, loss: float) -> None:
            if self.verbose and (epoch % 10 == 0 or epoch in (1, config.epochs)):
                logger.info("%s epoch %d/%d: loss %.4f", name, epoch, config.epochs, loss)

        return fit_flow(flow, Z, config, generator=generator, on_epoch=on_epoch, **data)

    # ---------------------------------------------------------------------- preprocessing
    def _fit_standardization(self, X: np.ndarray) -> None:
        """The robust standardization of :mod:`flowad.preprocessing` (trimmed mean and std,
        relative constant-column test), fitted on the training rows ``X``."""
        st = Standardization.fit(X, method=DEFAULT_METHOD)
        # A spread below the smallest normal number of the model's dtype (float32: 1.2e-38) cannot
        # be represented there (ONNX runtimes flush such subnormals to zero): no information either.
        tiny = ~st.constant & (st.scale < torch.finfo(self.torch_dtype_).tiny)
        if tiny.any():
            names = self._column_names(np.flatnonzero(tiny))
            warnings.warn(
                f"Features {names} vary by less than {self.dtype} can represent (spread below "
                f"{torch.finfo(self.torch_dtype_).tiny:.3g}); they are left out of the model as constant.",
                UserWarning,
                stacklevel=4,
            )
            st = Standardization(mean=st.mean, scale=np.where(tiny, 1.0, st.scale), constant=st.constant | tiny, method=st.method)
        constant = st.constant
        if constant.all():
            raise InputError(
                f"All {X.shape[1]} features of X are constant in the training data"
                f"{f' (at {self.dtype} precision)' if tiny.any() else ''}; there is nothing to model."
            )
        if constant.any():
            names = self._column_names(np.flatnonzero(constant))
            warnings.warn(
                f"Features {names} are constant in the training data and carry no information; "
                "they are left out of the model (their values are ignored when scoring).",
                UserWarning,
                stacklevel=4,  # the caller of fit (fit -> _begin_fit -> here)
            )
        self.mean_ = st.mean
        self.scale_ = st.scale
        self.constant_features_ = constant
        self.scaling_ = st.method
        self.train_clip_ = Standardization.training_bounds(st.transform(X, drop_constant=True))

    @property
    def _standardization(self) -> Standardization:
        return Standardization(mean=self.mean_, scale=self.scale_, constant=self.constant_features_)

    def _standardize_training(self, X: np.ndarray) -> torch.Tensor:
        """Standardized training rows, winsorized at the per-column bounds ``train_clip_`` under
        robust scaling (fit time only: a few extreme rows cannot dominate the loss or batch-norm
        statistics; see :meth:`flowad.preprocessing.Standardization.training_bounds`)."""
        Z = self._standardization.transform(X, drop_constant=True)
        if getattr(self, "scaling_", None) == "robust":
            Z = Standardization.clip_training(Z, getattr(self, "train_clip_", TRAIN_CLIP))
        return torch.as_tensor(Z, dtype=self.torch_dtype_, device=self.device_)

    def _column_names(self, idx: np.ndarray) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [str(names[i]) for i in idx] if names is not None else [f"column {i}" for i in idx]

    def _standardize(self, X: np.ndarray) -> torch.Tensor:
        Z = self._standardization.transform(X, drop_constant=True)
        return torch.as_tensor(Z, dtype=self.torch_dtype_, device=self.device_)

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
        X, Z, seed = self._begin_fit(X)
        flow, generator = self._new_flow(Z, seed)
        self.history_ = self._train(flow, Z, generator)
        self.flow_ = flow
        self._calibrate(X)
        return self

    def _begin_fit(self, X: Any) -> tuple[np.ndarray, torch.Tensor, int]:
        """Check the hyper-parameters and ``X``, fit the standardization; return the validated
        rows, their standardized (and, under robust scaling, winsorized) tensor and the seed of
        this fit."""
        self._validate_params()
        X = self._check_input(X, fitting=True)
        self.device_ = resolve_device(self.device)
        seed = seed_from(self.random_state)
        self._fit_standardization(X)
        return X, self._standardize_training(X), seed

    def _new_flow(self, Z: torch.Tensor, seed: int) -> tuple[Flow, torch.Generator]:
        """A freshly initialised flow (seeded by ``seed``) and the generator of its minibatches."""
        with seeded_torch(seed, self.device_):
            flow = self._build_flow(Z.shape[1]).to(device=self.device_, dtype=self.torch_dtype_)
        return flow, torch.Generator(device=self.device_).manual_seed(seed + 1)

    def _calibrate(self, X: np.ndarray) -> None:
        # The training rows as the flow was trained on them (winsorized under robust scaling):
        # a training row astronomically far out (1e30) still gets a finite score.
        self.decision_scores_ = -self._batched_log_density(X, training=True)
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
        return -self._standardization.log_scale_sum

    def _check_scores(self, scores: np.ndarray, X: np.ndarray | None = None) -> None:
        """Raise :class:`NonFiniteError` naming the rows whose score is NaN or infinite.

        With the rows ``X``, the message says whether float64 would help: only while their
        standardized values stay far below what float64 can square (about 1e154)."""
        bad = ~np.isfinite(scores)
        if not bad.any():
            return
        rows = np.flatnonzero(bad)
        head = f"The score of {rows.size} row(s) (first: {rows[:5].tolist()}) is not finite. "
        z_max = None
        scale, mean, constant = (getattr(self, a, None) for a in ("scale_", "mean_", "constant_features_"))
        if X is not None and scale is not None and X.ndim == 2 and np.shape(scale) == np.shape(constant) == (X.shape[1],):
            with np.errstate(over="ignore", invalid="ignore"):
                z = np.abs((X[rows] - mean) / scale)[:, ~constant]
            z_max = float(np.nanmax(z)) if z.size else None
        if z_max is not None and not (z_max < _FLOAT64_SAFE_Z):
            raise NonFiniteError(
                head + f"Their values lie up to {z_max:.3g} training scales from the training data: too large to "
                "model in float32 or float64, and rescaling the input does not help (the model's scale is fitted "
                "on the training data). Check these rows' units or values, or drop them."
            )
        raise NonFiniteError(
            head
            + "Their values lie far outside the training range"
            + (" and overflow float32; refit with dtype='float64'." if self.dtype == "float32" else ".")
        )

    def _batched_log_density(
        self, X: np.ndarray, log_density: Callable[[torch.Tensor], torch.Tensor] | None = None, *, training: bool = False
    ) -> np.ndarray:
        """Log-density in input space of validated rows ``X``, ``SCORE_BATCH`` rows per pass.

        ``log_density(Z)`` maps standardized rows to the model's log-density (default: the
        flow's); the standardization's log-det is added and non-finite values are refused.
        ``training`` standardizes as ``fit`` does (winsorized), for the training scores.
        """
        fn = self._log_prob if log_density is None else log_density
        standardize = self._standardize_training if training else self._standardize
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, X.shape[0], SCORE_BATCH):
                out[start : start + SCORE_BATCH] = fn(standardize(X[start : start + SCORE_BATCH])).double().cpu().numpy()
        out += self._score_offset
        self._check_scores(out, X)
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

    # ------------------------------------------------------------ model files (flowad.io)
    def _extra_state(self) -> State:
        """Tensors and JSON fields that subclasses add to the model file."""
        return {}, {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` wrote (before the flow weights are loaded)."""

    def _get_state(self) -> State:
        """The fitted state as model-file tensors and manifest fields (see :mod:`flowad.io.persistence`)."""
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
        extra_tensors, extra_fields = self._extra_state()
        tensors.update(extra_tensors)
        names = getattr(self, "feature_names_in_", None)
        fields = {
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "threshold": self.threshold_,
            **extra_fields,
        }
        scaling = getattr(self, "scaling_", None)
        if scaling is not None:  # detectors with a fixed transform (images) have none
            fields["scaling"] = scaling
        return tensors, fields

    def _set_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any], *, device: str) -> None:
        """Restore what :meth:`_get_state` wrote into this instance (built from the file's params)."""
        self._validate_params()
        self.device_ = resolve_device(device)
        self.n_features_in_ = int(manifest["n_features_in"])
        if manifest.get("feature_names_in") is not None:
            self.feature_names_in_ = np.asarray(manifest["feature_names_in"], dtype=object)
        self.mean_ = tensors["prep.mean"].numpy().astype(np.float64)
        self.scale_ = tensors["prep.scale"].numpy().astype(np.float64)
        self.constant_features_ = tensors["prep.constant"].numpy().astype(bool)
        if not (self.mean_.shape == self.scale_.shape == self.constant_features_.shape == (self.n_features_in_,)):
            raise ModelFileError(f"standardization shapes do not match {self.n_features_in_} features.")
        # Files written before robust scaling have no "scaling" field: mean and std.
        if type(self)._fit_standardization is BaseFlowDetector._fit_standardization:
            scaling = manifest.get("scaling", "standard")
            if scaling not in METHODS:
                raise ModelFileError(f"scaling must be one of {list(METHODS)}, got {scaling!r}.")
            self.scaling_ = scaling
        self.decision_scores_ = tensors["train.decision_scores"].numpy().astype(np.float64)
        self.history_ = tensors["train.history"].tolist()
        self.threshold_ = float(manifest["threshold"])
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        self._load_extra_state(tensors, manifest)
        state = {k[len("flow.") :]: v for k, v in tensors.items() if k.startswith("flow.")}
        self._restore_flow(int((~self.constant_features_).sum()), state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted detector to ``path`` as a code-free model file.

        The file holds safetensors weights plus a JSON manifest (flowad version, model kind,
        hyper-parameters, feature names, standardization, threshold); see :mod:`flowad.io`.
        """
        check_is_fitted(self)
        save_detector(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> BaseFlowDetector:
        """Load a detector saved with :meth:`save`; the class must match the file's kind.

        Use :func:`flowad.load` to load any kind of flowad model.
        """
        return load_detector(path, cls if cls._kind else None, device=device)
