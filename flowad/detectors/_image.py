"""ImageAdaFlow: a Glow image flow with per-domain AdaBN; bits/dim per domain and unpaired
translation between domains (the image experiment of the AdaFlow study)."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from flowad._validation import check_is_fitted
from flowad.bijections.image import AdaptiveBatchNorm2d
from flowad.detectors._base import _check_param, _store_params, register
from flowad.detectors._domains import DomainDetector
from flowad.exceptions import InputError, ModelFileError
from flowad.flows.flow import Flow, standard_normal_log_prob
from flowad.flows.glow import adabn2d_layers, build_glow, update_image_statistics

__all__ = ["ImageAdaFlow", "IMAGE_BATCH"]

#: Images per forward pass when scoring or translating (bounds the memory of the conv activations).
IMAGE_BATCH = 256
#: Pixel values are 8-bit: ``v`` in 0..255, dequantized to ``v + u`` and scaled by 1/256.
N_BINS = 256
#: ``translate`` warns about images with pixel values more than this outside [0, 255].
FAR_OUTSIDE = 255.0


class _Dequantized(nn.Module):
    """Training view of a flow on scaled images: adds uniform dequantization noise in train mode.

    ``x`` holds bin midpoints ``(v + 1/2)/256 - 1/2``; in train mode each call adds
    ``(u - 1/2)/256`` with ``u ~ U[0, 1)`` drawn from ``generator``, so the flow sees
    ``(v + u)/256 - 1/2`` (uniform dequantization, Theis et al. 2016).
    """

    def __init__(self, flow: Flow, generator: torch.Generator) -> None:
        super().__init__()
        self.flow = flow
        self.generator = generator

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            u = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            x = x + (u - 0.5) / N_BINS
        return self.flow.log_prob(x, context)


@register("image-adaflow")
class ImageAdaFlow(DomainDetector):
    """Glow with per-domain AdaBN for images: density per domain, anomaly scores in bits/dim,
    and unpaired translation between domains.

    The flow is :func:`flowad.flows.glow.build_glow`: ``levels`` scales, each a squeeze,
    ``steps`` x (AdaBN2d -> invertible 1x1 conv (LU) -> affine coupling with a small conv net)
    and a factor-out of half the channels. Every AdaBN layer keeps per-channel statistics per
    domain; all weights are shared. Training mixes domains in each minibatch, each AdaBN
    normalizing each image with its own domain's batch statistics; afterwards each domain's
    statistics are computed exactly over its own training images by a forward pass, and
    :meth:`adapt` adds a domain the same way (no gradient).

    Images are ``(N, C, H, W)`` arrays of 8-bit pixel values (uint8, or floats in [0, 255]);
    see :mod:`flowad.features.images` to read folders. ``H`` and ``W`` must be divisible by
    ``2**levels``. Pixels are uniformly dequantized when training and taken at bin midpoints
    (``v + 1/2``) when scoring, so scores are deterministic.

    Scores: ``score_samples`` is the log-density of the dequantized pixel values in
    :math:`[0, 256)^D` (as in every flowad detector, higher = more normal);
    :meth:`bits_per_dim` is ``-score_samples / (D log 2)``, the figure image flows report.

    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.05
        Target false-alarm rate of each domain's threshold.
    levels : int, default=3
        Scales of the multi-scale flow.
    steps : int, default=4
        Glow steps per level.
    hidden : int, default=64
        Hidden channels of the coupling networks.
    s_max : float, default=1.0
        Log-scale bound of the couplings (see :func:`~flowad.flows.glow.build_glow` for why 1).
    epochs, batch_size, lr, weight_decay, grad_clip
        Adam training settings (defaults 30, 32, 1e-3, 0.0, 50.0).
    threshold : float or None, default=None
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
    random_state : int, numpy Generator or None, default=None
        Seed of initialization, minibatch order and dequantization noise.
    verbose : int, default=0

    Attributes
    ----------
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.
    domains_, thresholds_, domain_counts_, decision_scores_, labels_, threshold_, history_
        As in :class:`~flowad.AdaFlow`; ``history_`` is the training loss per epoch in bits/dim
        (of dequantized training images, under batch statistics).

    References
    ----------
    Kingma, Dhariwal. "Glow: Generative Flow with Invertible 1x1 Convolutions". NeurIPS 2018.
    Yamaguchi, Koizumi, Harada. "AdaFlow: Domain-adaptive density estimator with application to
    anomaly detection and unpaired cross-domain translation". ICASSP 2019.
    """

    def __init__(
        self,
        *,
        contamination: float = 0.05,
        levels: int = 3,
        steps: int = 4,
        hidden: int = 64,
        s_max: float = 1.0,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        grad_clip: float | None = 50.0,
        threshold: float | None = None,
        dtype: str = "float32",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        _store_params(self, locals())

    # ------------------------------------------------------------------------- params
    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("levels", "steps", "hidden"):
            v = getattr(self, name)
            _check_param(name, v, isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1, "an int >= 1")
        s = self.s_max
        _check_param("s_max", s, isinstance(s, numbers.Real) and not isinstance(s, bool) and s > 0, "a float > 0")

    # -------------------------------------------------------------------------- input
    def _check_input(self, X: Any, *, fitting: bool = False, pixel_range: bool = True) -> np.ndarray:
        if hasattr(X, "detach") and hasattr(X, "cpu"):
            X = X.detach().cpu().numpy()
        try:
            arr = np.asarray(X)
        except Exception as err:  # ragged nested lists
            raise InputError(f"X could not be read as an (N, C, H, W) image array: {err}") from None
        if arr.ndim != 4:
            raise InputError(
                f"X must be images of shape (N, C, H, W) (channels first, 8-bit pixel values), got shape {arr.shape}; "
                "read image folders with flowad.features.images.read_image_folder."
            )
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == bool:
            raise InputError(f"X must hold numeric pixel values, got dtype {arr.dtype}.")
        n, c, h, w = arr.shape
        if fitting:
            if n < 2:
                raise InputError(f"Fitting needs at least 2 images, got {n}.")
            div = 2 ** int(self.levels)
            if h % div or w % div:
                raise InputError(
                    f"Image height and width ({h}x{w}) must be divisible by 2**levels = {div}; "
                    "resize the images (e.g. --size 32) or use fewer levels."
                )
            self.image_shape_ = (int(c), int(h), int(w))
            self.n_features_in_ = c * h * w
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif (c, h, w) != tuple(self.image_shape_):
            raise InputError(
                f"These images have shape (C, H, W) = {(c, h, w)}, but the model was fitted on {tuple(self.image_shape_)}; "
                "read them with the same --size and channel count."
            )
        if n == 0:
            raise InputError("X holds no images.")
        flat = arr.reshape(n, -1).astype(np.float64)
        if not np.isfinite(flat).all():
            raise InputError("X holds NaN or infinite pixel values.")
        lo, hi = float(flat.min()), float(flat.max())
        if pixel_range and (lo < 0 or hi > N_BINS - 1):
            raise InputError(
                f"Pixel values must lie in [0, 255] (8-bit images), got values in [{lo:.4g}, {hi:.4g}]; "
                "images scaled to [0, 1] must be multiplied by 255 first."
            )
        return flat

    def _fit_standardization(self, X: np.ndarray) -> None:
        # (v - 127.5) / 256 = (v + 1/2) / 256 - 1/2: bin midpoints scaled into [-1/2, 1/2); the
        # scale's log-det (-D log 256) makes score_samples a density on [0, 256)^D.
        d = X.shape[1]
        self.mean_ = np.full(d, (N_BINS - 1) / 2.0)
        self.scale_ = np.full(d, float(N_BINS))
        self.constant_features_ = np.zeros(d, dtype=bool)

    # -------------------------------------------------------------------------- model
    def _build_flow(self, n_features: int) -> Flow:
        if n_features != math.prod(self.image_shape_):
            raise ValueError(f"{n_features} features do not match the image shape {self.image_shape_}.")
        return build_glow(
            self.image_shape_,
            n_domains=len(self.domains_),
            levels=int(self.levels),
            steps=int(self.steps),
            hidden=int(self.hidden),
            s_max=float(self.s_max),
        )

    def _domain_statistics(self, flow: Flow, Z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Every domain's statistics from its own rows; return the rows' log-densities."""
        flow.eval()
        log_density = Z.new_empty(Z.shape[0])
        for k in range(len(self.domains_)):
            idx = torch.nonzero(context == k).squeeze(1)
            z, logdet = update_image_statistics(flow.bijection, Z[idx], k)
            log_density[idx] = standard_normal_log_prob(z) + logdet
        return log_density

    def _fit_model(self, flow: Flow, Z: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # Data-dependent start (the stored statistics serve domains with < 2 images in a batch).
        self._domain_statistics(flow, Z, context)
        noise = torch.Generator(device=Z.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        nll = self._train(_Dequantized(flow, noise), Z, generator, context)
        d = Z.shape[1]
        self.history_ = [(v + d * math.log(N_BINS)) / (d * math.log(2.0)) for v in nll]
        return self._domain_statistics(flow, Z, context)

    def _log_density(self, Z: torch.Tensor, index: int) -> torch.Tensor:
        return self.flow_.log_prob(Z, self._context(Z, index))

    def _adapt_rows(self, Z: torch.Tensor, index: int, prior_count: int) -> torch.Tensor:
        z, logdet = update_image_statistics(self.flow_.bijection, Z, index, prior_count=prior_count)
        return standard_normal_log_prob(z) + logdet

    def _batched_log_density(self, X: np.ndarray, log_density: Any = None) -> np.ndarray:
        parts = [super(ImageAdaFlow, self)._batched_log_density(X[s : s + IMAGE_BATCH], log_density) for s in range(0, X.shape[0], IMAGE_BATCH)]
        return np.concatenate(parts) if parts else np.empty(0)

    # ------------------------------------------------------------ per-domain statistics rows
    def _layers(self) -> list[AdaptiveBatchNorm2d]:
        return adabn2d_layers(self.flow_)

    # ------------------------------------------------------------------------- scoring
    def bits_per_dim(self, X: Any, domain: Any = None) -> np.ndarray:
        """Bits per dimension of each image under ``domain``'s statistics (lower = more normal).

        ``-score_samples(X, domain) / (C H W log 2)``: the negative log-likelihood of the 8-bit
        image (dequantized at bin midpoints) in bits, per pixel and channel.
        """
        return -self.score_samples(X, domain) / (self.n_features_in_ * math.log(2.0))

    # ------------------------------------------------------------------------ translation
    def translate(self, X: Any, *, source: Any, target: Any) -> np.ndarray:
        """Translate images of domain ``source`` to domain ``target`` (unpaired, AdaFlow).

        Each image goes to the latent space with ``source``'s statistics (forward map) and
        back with ``target``'s (inverse map); the weights are shared, so only the per-domain
        normalization changes. ``translate(translate(X, a, b), b, a)`` returns ``X`` up to
        rounding.

        Parameters
        ----------
        X : array-like of shape (N, C, H, W)
            Pixel values in [0, 255].
        source, target : str or int
            Known domains.

        Returns
        -------
        ndarray of shape (N, C, H, W), float64
            Pixel values; not clipped or rounded (clip to [0, 255] and round to show them).
        """
        check_is_fitted(self)
        src, tgt = self._index(source), self._index(target)
        flat = self._check_input(X, pixel_range=False)  # translated images may leave [0, 255] slightly
        out = self._translate(flat, src, tgt, IMAGE_BATCH)  # no constant features: every pixel moves
        far = np.flatnonzero(((out < -FAR_OUTSIDE) | (out > N_BINS - 1 + FAR_OUTSIDE)).any(axis=1))
        if far.size:
            warnings.warn(
                f"{far.size} of {out.shape[0]} translated image(s) (first: {far[:5].tolist()}) have pixel values far outside "
                f"[0, 255] (from {out[far].min():.3g} to {out[far].max():.3g}): {self.domains_[tgt]!r}'s statistics map their "
                "latent codes outside the data. Clip them to show them; translating them back is exact only up to the "
                "float precision of such values (use dtype='float64' for an exact round trip).",
                UserWarning,
                stacklevel=2,
            )
        return out.reshape(-1, *self.image_shape_)

    # ------------------------------------------------------------------------ persistence
    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super()._extra_state()
        return tensors, {**meta, "image_shape": [int(s) for s in self.image_shape_]}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        super()._load_extra_state(tensors, manifest)
        shape = manifest.get("image_shape")
        ok = isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s >= 1 for s in shape)
        if not ok or math.prod(shape) != self.n_features_in_:
            raise ModelFileError(f"the manifest's image_shape must be [C, H, W] matching {self.n_features_in_} features, got {shape!r}.")
        self.image_shape_ = tuple(shape)
