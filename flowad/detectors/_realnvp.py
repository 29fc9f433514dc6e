"""RealNVP, TrimRealNVP and RobustRealNVP: one implementation, three sets of defaults."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from flowad.bijections import Whitening
from flowad.detectors._base import (
    BaseFlowDetector,
    _check_couplings,
    _check_param,
    _integer,
    _real,
    _store_params,
    register,
)
from flowad.exceptions import InputError, ModelFileError
from flowad.flows.flow import Flow
from flowad.flows.realnvp import build_realnvp
from flowad.nn.mlp import ACTIVATIONS
from flowad.preprocessing import dequantization_widths, robust_covariance
from flowad.training.config import TRIM_SCOPES
from flowad.training.loop import validation_loss

__all__ = ["RealNVP", "TrimRealNVP", "RobustRealNVP"]

_PARAMS_DOC = """
    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.1
        Expected fraction of anomalies in the training data. It sets ``threshold_`` (the
        ``1 - contamination`` quantile of the training anomaly scores) **and**, unlike in
        PyOD or scikit-learn, it also shapes the model: when ``trim_ratio`` is None the
        trimmed loss drops this fraction of every minibatch.
    trim_ratio : float in [0, 0.5) or None
        Fraction of each minibatch (of all training rows each epoch with
        ``trim_scope="epoch"``) with the lowest estimated density left out of the loss. None
        means ``contamination``. 0 disables trimming. Trimming a bit more than the true
        contamination costs little; trimming less lets anomalies shape the density.
    trim_scope : {"batch", "epoch"}
        Where the trimmed fraction is chosen: ``"batch"``, within each minibatch from that
        step's losses (the published algorithm); ``"epoch"``, once per epoch over all training
        rows from the current model's densities (one extra forward pass per epoch), then the
        epoch's minibatches are drawn from the rows kept. They coincide when the training
        set fits in one minibatch. See ``results/odds_sensitivity/trim_scope/`` for the
        comparison. DDP training (:func:`flowad.distributed.fit_distributed`) trims each global
        minibatch: it trains with ``"batch"`` unless told otherwise and refuses ``"epoch"``.
    lipschitz_k : float > 0 or None
        Spectral-normalize every linear layer of the coupling networks to operator norm
        ``k`` (power iteration, persistent vector). None disables it.
    n_couplings : int >= 0, default=6
        Number of affine coupling layers (features are reversed between them). 0 leaves the
        flow with nothing to train: with ``whiten=True`` the detector is its **Gaussian core
        alone** — the robust (trimmed Ledoit–Wolf) Gaussian of the training rows, scored by
        negative log-likelihood (half the squared Mahalanobis distance plus a constant), fitted
        in the time of one covariance; without whitening, the standard normal of the robustly
        standardized columns. The training settings (epochs, optimizer, trimming of the loss)
        then play no part; ``history_`` holds one value.
    hidden : tuple of int, default=(64, 64)
        Hidden widths of each coupling's ``s``/``t`` network.
    activation : {"relu", "leaky_relu", "tanh", "elu", "silu"}, default="tanh"
        Non-linearity of the coupling networks. tanh (smooth, bounded) was chosen over relu
        on the two-moons study, where it keeps RobustRealNVP's density off a clustered
        anomaly (see ``results/defaults/README.md``).
    s_max : float, default=3.0
        Log-scale bound of each coupling (``s = s_max * tanh(raw / s_max)``).
    epochs : int, default=100
        Passes over the training data.
    batch_size : int, default=256
        Minibatch size; trimming acts within each minibatch (``trim_scope="batch"``).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=1e-5
        Adam weight decay.
    grad_clip : float or None, default=10.0
        Maximum gradient norm per step; None disables clipping.
    noise_std : float, default=0.0
        Standard deviation of Gaussian noise added to every training minibatch, in
        standardized units; smooths the density of discrete or duplicated values.
    dequantize : bool
        Dequantize discrete columns during training: a column with at most half as many
        distinct values as rows (counts, codes, binary, one-hot) gets uniform noise of the
        width of its smallest value gap in every training minibatch
        (:func:`flowad.preprocessing.dequantization_widths`, decided from the training rows),
        so the flow learns a density over cells instead of spikes on a lattice. Scores are
        the density at the values themselves; nothing changes at scoring time.
    whiten : bool
        Whiten the standardized features with a robust location and covariance first (a
        fixed :class:`~flowad.bijections.Whitening` layer of the flow onto the covariance's
        principal axes, fitted by :func:`flowad.preprocessing.robust_covariance` with the trim
        ratio, plus the dequantization noise's variance). With ``identity_init`` the untrained flow is that
        robust Gaussian, and training moves away from it only as far as the data take it.
    whiten_trim_ratio : float in [0, 0.5) or None, default=None
        Fraction of training rows the whitening's covariance leaves out (its concentration
        steps); None means ``trim_ratio_``, 0 the plain Ledoit–Wolf covariance of all rows.
        Only used with ``whiten=True``.
    identity_init : bool
        Start every coupling as the identity (spectrally normalized couplings get a gate
        ``tanh(g)``, ``g = 0``; see :class:`~flowad.bijections.AffineCoupling`).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the (unlabeled) training rows, stop when their
        trimmed negative log-likelihood has not improved for ``n_iter_no_change`` epochs,
        and keep the best epoch's weights. Uses no labels.
    validation_fraction : float in (0, 0.5], default=0.1
        Share of training rows held out for early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    threshold : float or None, default=None
        Fixed anomaly-score threshold; None derives it from ``contamination``.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the model and of the computations.
    device : str, default="auto"
        "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
    random_state : int, numpy Generator or None, default=None
        Seed of weight initialization and minibatch order; the same int gives the same model.
        The global numpy/torch RNG states are never touched.
    verbose : int, default=0
        0: silent; 1: log one line per 10 epochs on the ``flowad`` logger.

    Attributes
    ----------
    flow_ : Flow
        The trained flow (on standardized features), in eval mode.
    mean_, scale_ : ndarray of shape (n_features_in_,)
        Robust standardization fitted on the training data (:mod:`flowad.preprocessing`):
        the mean and standard deviation of each column over its rows within 20 median
        absolute deviations of the median (all rows of a column without such extreme values;
        scale 1 for constant columns), so a few extreme training rows cannot move them. The
        flow is trained on the standardized rows winsorized at ``±train_clip_`` (fit time
        only; scoring does not clip).
    train_clip_ : ndarray of shape (n_kept_features,)
        Per-column winsorizing bound of the training rows, in standardized units
        (:meth:`flowad.preprocessing.Standardization.training_bounds`: 10 times the column's
        95th percentile of absolute values, between 20 and 1e6); fit time only, not saved.
    scaling_ : str
        ``"robust"``; ``"standard"`` (mean and std) for models loaded from files written
        before robust scaling.
    constant_features_ : ndarray of bool, shape (n_features_in_,)
        Columns constant in the training data, left out of the model.
    dequantize_widths_ : ndarray of shape (n_features_in_,)
        Width of the training noise of every column, in the column's own units (0: continuous
        or constant, or ``dequantize=False``).
    trim_ratio_ : float
        The trim ratio actually used.
    decision_scores_ : ndarray of shape (n_samples,)
        Anomaly scores (negative log-likelihood) of the training data, as the flow was trained
        on them (winsorized; the same as ``decision_function`` for every row within
        ``train_clip_``).
    threshold_ : float
        Score above which ``predict`` returns 1.
    labels_ : ndarray of shape (n_samples,)
        0/1 labels of the training data.
    history_ : list of float
        Mean (trimmed) training loss of every epoch; with ``n_couplings=0``, the one trimmed
        mean negative log-likelihood of the training rows under the fitted Gaussian.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame.
"""


class _RealNVPFamily(BaseFlowDetector):
    """Shared implementation; the public classes differ only in their defaults."""

    def __init__(
        self,
        *,
        contamination: float = 0.1,
        trim_ratio: float | None = None,
        trim_scope: str = "batch",
        lipschitz_k: float | None = None,
        n_couplings: int = 6,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        s_max: float = 3.0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        noise_std: float = 0.0,
        dequantize: bool = False,
        whiten: bool = False,
        whiten_trim_ratio: float | None = None,
        identity_init: bool = False,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        threshold: float | None = None,
        dtype: str = "float32",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        _store_params(self, locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        t = self.trim_ratio
        _check_param("trim_ratio", t, t is None or (_real(t) and 0.0 <= t < 0.5), "None or a float in [0, 0.5)")
        w = self.whiten_trim_ratio
        _check_param("whiten_trim_ratio", w, w is None or (_real(w) and 0.0 <= w < 0.5), "None or a float in [0, 0.5)")
        _check_param("trim_scope", self.trim_scope, isinstance(self.trim_scope, str) and self.trim_scope in TRIM_SCOPES, "'batch' or 'epoch'")
        k = self.lipschitz_k
        _check_param("lipschitz_k", k, k is None or (_real(k) and k > 0), "None or a float > 0 and finite")
        n = self.n_couplings
        _check_param("n_couplings", n, _integer(n) and n >= 0, "an int >= 0")
        _check_couplings(self)
        _check_param("activation", self.activation, self.activation in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}")
        ns = self.noise_std
        _check_param("noise_std", ns, _real(ns) and ns >= 0, "a float >= 0 and finite")
        for name in ("dequantize", "whiten", "identity_init", "early_stopping"):
            value = getattr(self, name)
            _check_param(name, value, isinstance(value, (bool, np.bool_)), "True or False")
        vf = self.validation_fraction
        _check_param("validation_fraction", vf, _real(vf) and 0 < vf <= 0.5, "a float in (0, 0.5]")
        p = self.n_iter_no_change
        _check_param("n_iter_no_change", p, _integer(p) and p >= 1, "an int >= 1")

    @property
    def trim_ratio_(self) -> float:
        return float(self.contamination if self.trim_ratio is None else self.trim_ratio)

    def _build_flow(self, n_features: int) -> Flow:
        return build_realnvp(
            n_features,
            n_couplings=int(self.n_couplings),
            hidden=tuple(int(w) for w in self.hidden),
            activation=self.activation,
            s_max=float(self.s_max),
            lipschitz_k=None if self.lipschitz_k is None else float(self.lipschitz_k),
            whiten=bool(self.whiten),
            identity_init=bool(self.identity_init),
        )

    def _train(self, flow: Flow, Z: torch.Tensor, generator: torch.Generator) -> list[float]:
        config = self._train_config(
            trim_ratio=self.trim_ratio_, trim_scope=self.trim_scope, noise_std=float(self.noise_std), patience=int(self.n_iter_no_change)
        )
        Z_np = Z.detach().cpu().double().numpy() if self.dequantize or self.whiten else None
        widths = dequantization_widths(Z_np) if self.dequantize else np.zeros(Z.shape[1])
        self.dequantize_widths_ = np.zeros(self.n_features_in_)
        self.dequantize_widths_[~self.constant_features_] = widths * self.scale_[~self.constant_features_]
        self._set_whitening(flow, Z_np, widths)
        if self.n_couplings == 0:  # nothing to train: the Gaussian (or the standard normal) is the model
            return [validation_loss(flow, Z, self.trim_ratio_)]
        dequantize = torch.as_tensor(widths, dtype=Z.dtype, device=Z.device) if widths.any() else None
        Z_val = None
        if self.early_stopping:
            n_val = int(round(self.validation_fraction * Z.shape[0]))
            if n_val < 2 or Z.shape[0] - n_val < 2:
                raise InputError(
                    f"early_stopping needs at least 2 training and 2 validation rows; {Z.shape[0]} rows with "
                    f"validation_fraction={self.validation_fraction} give {n_val} validation rows."
                )
            order = torch.randperm(Z.shape[0], generator=generator, device=generator.device)
            Z, Z_val = Z[order[n_val:]], Z[order[:n_val]]
        return self._fit_flow(flow, Z, config, generator, X_val=Z_val, dequantize=dequantize)

    def _set_whitening(self, flow: Flow, Z: np.ndarray | None, widths: np.ndarray) -> None:
        """Fit the flow's whitening layer (``whiten=True``) on the standardized training rows ``Z``.

        The robust location and covariance of ``Z`` (trim ``whiten_trim_ratio``, None meaning
        ``trim_ratio_``), plus the variance ``width**2 / 12`` of each column's dequantization noise.
        Shared by :meth:`fit` and DDP training (:func:`flowad.distributed.fit_distributed`).
        """
        if not self.whiten:
            return
        whiten_trim = self.trim_ratio_ if self.whiten_trim_ratio is None else float(self.whiten_trim_ratio)
        try:
            loc, cov = robust_covariance(Z, whiten_trim)
        except InputError as err:
            raise InputError(f"{err} The Gaussian core (whiten=True) cannot be fitted: train on more varied rows, or with whiten=False.") from err
        cov[np.diag_indices_from(cov)] += widths**2 / 12.0  # variance of the uniform noise
        next(m for m in flow.modules() if isinstance(m, Whitening)).set_statistics(loc, cov)

    #: Values of hyper-parameters added after model files of this family were first written:
    #: a file that lacks one was written before it existed, i.e. without that feature.
    _LEGACY_PARAMS = {"dequantize": False, "whiten": False, "identity_init": False, "trim_scope": "batch", "whiten_trim_ratio": None}

    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"train.dequantize_widths": torch.from_numpy(self.dequantize_widths_)}, {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        widths = tensors.get("train.dequantize_widths")
        self.dequantize_widths_ = np.zeros(self.n_features_in_) if widths is None else widths.numpy().astype(np.float64)
        if self.dequantize_widths_.shape != (self.n_features_in_,):
            raise ModelFileError(f"train.dequantize_widths has shape {self.dequantize_widths_.shape}, expected ({self.n_features_in_},).")


def _document(doc: str, defaults: dict[str, Any]) -> str:
    """``doc`` with its ``{parameters}`` line replaced by the family's parameter list, where the
    entries of ``defaults`` get their ``default=`` value."""
    lines = _PARAMS_DOC.split("\n")
    for i, line in enumerate(lines):
        name = line.strip().partition(" : ")[0]
        if name in defaults and line.startswith("    ") and not line.startswith("     "):
            lines[i] = f"{line}, default={defaults[name]!r}"
    return doc.replace("    {parameters}\n", "\n".join(lines).strip("\n") + "\n\n")


def _defaults(**defaults: Any) -> Any:
    """Class decorator: the family's ``__init__`` with other defaults, and a true signature.

    scikit-learn reads hyper-parameters from ``inspect.signature(cls.__init__)``, which
    honours ``__signature__``; so ``get_params``, ``clone`` and ``help()`` all see the
    variant's own defaults, while the one implementation stays in :class:`_RealNVPFamily`.
    The class docstring's ``{parameters}`` line becomes the family's parameter list.
    """

    def deco(cls: type[_RealNVPFamily]) -> type[_RealNVPFamily]:
        base = _RealNVPFamily.__init__
        sig = inspect.signature(base)
        unknown = set(defaults) - set(sig.parameters)
        if unknown:  # pragma: no cover - programming error
            raise TypeError(f"unknown hyper-parameters {unknown}")

        def __init__(self: _RealNVPFamily, **params: Any) -> None:
            extra = sorted(set(params) - set(sig.parameters))
            if extra:
                raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s) {extra}; valid: {sorted(sig.parameters)[1:]}.")
            base(self, **{**defaults, **params})

        __init__.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(default=defaults.get(name, p.default)) for name, p in sig.parameters.items()]
        )
        __init__.__doc__ = base.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.__doc__ = _document(cls.__doc__ or "", defaults)
        return cls

    return deco


@register("realnvp")
@_defaults(trim_ratio=0.0, trim_scope="batch", lipschitz_k=None)
class RealNVP(_RealNVPFamily):
    """Plain RealNVP anomaly detector: maximum likelihood, no trimming, no spectral norm.

    The anomaly score is the negative log-likelihood. With the default ``trim_ratio=0`` and
    ``lipschitz_k=None`` it is the baseline that anomalies in the training data can fool.

    {parameters}
    See Also
    --------
    TrimRealNVP, RobustRealNVP

    Examples
    --------
    >>> import numpy as np
    >>> from flowad import RealNVP
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> det = RealNVP(epochs=2, random_state=0).fit(X)
    >>> det.decision_function(X[:2]).shape
    (2,)
    """


@register("trim-realnvp")
@_defaults(trim_ratio=None, trim_scope="batch", lipschitz_k=None)
class TrimRealNVP(_RealNVPFamily):
    """RealNVP trained with the trimmed loss (no spectral normalization).

    Each minibatch drops the ``trim_ratio`` fraction of samples with the largest negative
    log-likelihood before averaging; ``trim_ratio`` defaults to ``contamination``.

    {parameters}
    See Also
    --------
    RealNVP, RobustRealNVP
    """


@register("robust-realnvp")
@_defaults(trim_ratio=None, trim_scope="epoch", lipschitz_k=1.0, dequantize=True, whiten=True, identity_init=True)
class RobustRealNVP(_RealNVPFamily):
    """Robust RealNVP: trimmed loss + k-Lipschitz (spectrally normalized) couplings.

    Robust to anomalies in the training data: the trimmed loss keeps the least likely
    training rows (the ``trim_ratio`` fraction, chosen once per epoch by default) out of the
    gradient, and the Lipschitz bound keeps the density smooth, so a tight cluster of
    anomalies cannot pull a sharp peak of density onto itself.

    flowad's defaults go beyond the published method in four ways, chosen once on a
    26-dataset development set with a small-data track (``results/defaults_dev/``): the flow
    starts as a **robust Gaussian** (``whiten=True``: a trimmed Ledoit–Wolf location and
    covariance, the couplings working on its principal axes; ``identity_init=True``: couplings
    start as the identity), so a few hundred rows give a robust Gaussian and more data let the
    couplings depart from it;
    **discrete columns are dequantized** in training (``dequantize=True``), so counts,
    codes and binary columns get a density instead of spikes; and the trimmed fraction is
    chosen **once per epoch over all training rows** (``trim_scope="epoch"``) rather than
    within each minibatch, which holds up better as contamination grows
    (``results/odds_sensitivity/trim_scope/``). ``whiten=False, identity_init=False,
    dequantize=False, trim_scope="batch"`` is the published method.

    {parameters}
    See Also
    --------
    RealNVP, TrimRealNVP

    References
    ----------
    The trimmed-loss and spectral-normalization method of Robust RealNVP (Algorithm 1 there);
    Dinh et al., "Density estimation using Real NVP", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from flowad import RobustRealNVP
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(190, 2)), rng.normal(6.0, 0.1, size=(10, 2))])
    >>> det = RobustRealNVP(contamination=0.05, epochs=5, random_state=0).fit(X)
    >>> det.predict(X).shape
    (200,)
    """

