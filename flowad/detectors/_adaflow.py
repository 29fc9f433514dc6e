"""AdaFlow: a flow with per-domain adaptive batch normalization, adapted by forward passes only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from flowad._validation import check_is_fitted
from flowad.bijections.adabn import AdaptiveBatchNorm
from flowad.detectors._base import _check_couplings, _check_param, _integer, _real, _store_params, register
from flowad.detectors._domains import DomainDetector
from flowad.exceptions import InputError, ModelFileError
from flowad.flows.adaflow import adabn_layers, adapt_statistics, build_adaflow, update_statistics
from flowad.flows.flow import Flow, standard_normal_log_prob
from flowad.flows.moments import (
    MIN_SELECTION_ROWS,
    N_FOLDS,
    SELECTION_RULES,
    WEIGHT_GRID,
    CoMoments,
    DomainMixture,
    Frames,
    Selection,
    fit_mixture,
    fold_of,
    held_out_gaussian,
    mixture_log_prob,
    target_for_frames,
)

__all__ = ["AdaFlow", "ADAPTED_DENSITIES", "GAUSSIAN_SPACES"]

#: ``adapted_density``: the flow mixed with a per-domain Gaussian (default), or the flow alone.
ADAPTED_DENSITIES = ("mixture", "flow")
#: ``gaussian_space``: where the per-domain Gaussian lives.
GAUSSIAN_SPACES = ("input", "latent")
#: Version of the per-domain mixture state in model files (0: none, files written before it;
#: 1: the held-out sums, weights by the "likelihood" rule; 2: the same sums, the weight rule in
#: the ``mixture_selection`` hyper-parameter).
MIXTURE_FORMAT = 2


def _check_architecture(det: Any) -> None:
    """The architecture hyper-parameters of AdaFlow and BatchNormFlow."""
    n = det.n_layers
    _check_param("n_layers", n, _integer(n) and n >= 1, "an int >= 1")
    a = det.alpha
    _check_param("alpha", a, _real(a) and 0 < a < 1, "a float in (0, 1)")
    c = det.n_couplings
    ok = _integer(c) and c >= 0 and (c == 0 or n >= 2)
    _check_param("n_couplings", c, ok, "an int >= 0 (and > 0 only with n_layers >= 2)")
    _check_couplings(det)


def _architecture(det: Any) -> dict[str, Any]:
    return {
        "n_layers": int(det.n_layers),
        "alpha": float(det.alpha),
        "n_couplings": int(det.n_couplings),
        "hidden": tuple(int(w) for w in det.hidden),
        "s_max": float(det.s_max),
    }


@register("adaflow")
class AdaFlow(DomainDetector):
    """AdaFlow anomaly detector: one flow for all domains, per-domain batch-norm statistics.

    Every adaptive batch-normalization (AdaBN) layer keeps a mean and variance per domain;
    all weights (and the AdaBN scale and shift) are shared. Adapting to a new domain
    (:meth:`adapt`) computes that domain's statistics by forward passes only: no gradient, no
    optimizer, no weight changes. Architecture (data -> latent), by default the published one:
    LU-linear -> AdaBN -> leaky ReLU -> LU-linear -> AdaBN (see :mod:`flowad.flows.adaflow`).

    Parameters
    ----------
    contamination : float in (0, 0.5], default=0.05
        Target false-alarm rate: each domain's threshold is the ``1 - contamination``
        quantile of the anomaly scores of its own (normal) fit or adaptation rows.
    n_layers : int, default=2
        Number of (LU-linear -> AdaBN) units, with a leaky ReLU between consecutive ones.
    alpha : float in (0, 1), default=0.1
        Negative slope of the leaky ReLUs.
    n_couplings : int, default=0
        Affine couplings after each leaky ReLU, for more capacity (needs ``n_layers >= 2``).
    hidden : tuple of int, default=(64, 64)
        Hidden widths of the couplings' networks (unused without couplings).
    s_max : float, default=3.0
        Log-scale bound of the couplings.
    epochs, batch_size, lr, weight_decay, grad_clip
        Adam training settings (defaults 100, 256, 1e-3, 1e-5, 10.0). Minibatches mix
        domains; each AdaBN normalizes each sample with its own domain's batch statistics.
    threshold : float or None, default=None
        Fixed threshold for every domain; None reads it from ``contamination``.
    adapted_density : {"mixture", "flow"}, default="mixture"
        ``"mixture"``: each domain (trained or adapted) is scored with
        ``w p_flow + (1 - w) p_gauss``, ``p_gauss`` a full-covariance Gaussian of the domain's
        own rows and ``w`` chosen without labels by cross-validated log-likelihood on those rows
        (see Notes). ``"flow"``: the flow alone (the published AdaFlow).
    gaussian_space : {"input", "latent"}, default="input"
        Where the Gaussian of the mixture is fitted: the standardized input, or the flow's
        adapted latent (its density then includes the flow's log-determinant).
    mixture_selection : {"target", "likelihood"}, default="target"
        How each domain's flow weight ``w`` is chosen from its held-out rows (see Notes):
        ``"target"``, ``w = 0.5`` below 10 rows and ``w = 0`` (the domain's own Gaussian)
        from 10 rows on; ``"likelihood"``, the weight of best cross-validated log-likelihood.
    stationary_frames : int, default=1
        Each row stacks this many equal-width frames of a stationary signal, frame-major (the
        context windows of :class:`~flowad.features.audio.AudioFeatureConfig`: ``2 * context +
        1`` log-mel frames; :class:`~flowad.pipelines.sound.SoundDetector` sets it). Each domain's
        Gaussian then ties its mean across frame positions and shrinks its covariance toward
        block-Toeplitz, by an amount that falls as the domain's rows grow (see Notes). 1: no
        structure. Needs ``gaussian_space="input"``.
    dtype : {"float32", "float64"}, default="float32"
    device : str, default="auto"
    random_state : int, numpy Generator or None, default=None
        Seed of weight initialization and minibatch order; the global RNGs are untouched.
    verbose : int, default=0

    Attributes
    ----------
    flow_ : Flow
        The trained flow on standardized features, in eval mode.
    domains_ : list of str
        Known domains: those of ``fit`` (sorted), then adapted ones in order.
    thresholds_ : dict of str to float
        Per-domain threshold used by :meth:`predict`.
    domain_counts_ : dict of str to int
        Rows each domain's statistics summarise.
    threshold_ : float
        Quantile of all training scores pooled (scikit-learn compatibility only).
    mixture_weights_ : dict of str to float or None
        Each domain's flow weight ``w`` (None: the domain is scored by the flow alone, as with
        ``adapted_density="flow"`` or for a domain whose Gaussian was never computed).
    mean_, scale_, scaling_, constant_features_, decision_scores_, labels_, history_, n_features_in_
        As in :class:`~flowad.RealNVP`: robust standardization (extreme rows left out), training
        rows winsorized at per-column bounds (``train_clip_``, at least
        ``flowad.preprocessing.TRAIN_CLIP`` standardized units) while fitting, so a few extreme rows cannot dominate the AdaBN statistics (the training
        scores in ``decision_scores_`` are those of the winsorized rows). Standardization
        is global (fitted on the pooled training domains) and is never refitted by
        ``adapt``: all domains share one input
        space (needed by :meth:`translate`), its log-determinant is the same constant for
        every domain, and each domain's shift and scale are removed by the first
        LU-linear -> AdaBN pair, whose statistics are exact per domain.

    Examples
    --------
    >>> import numpy as np
    >>> from flowad import AdaFlow
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 3)), rng.normal(3, 2, (100, 3))])
    >>> det = AdaFlow(epochs=2, random_state=0).fit(X, domains=["a"] * 100 + ["b"] * 100)
    >>> det = det.adapt(rng.normal(-2, 0.5, (50, 3)), domain="c")
    >>> det.domains_
    ['a', 'b', 'c']
    >>> det.predict(rng.normal(-2, 0.5, (4, 3)), domain="c").shape
    (4,)

    Notes
    -----
    **Stationary frames** (``stationary_frames > 1``). Rows that stack consecutive frames have a
    mean that does not depend on the frame position and a block-Toeplitz covariance; from a few
    rows the domain's sample covariance is far from both. The Gaussian then uses the mean of the
    frame positions and :func:`flowad.flows.moments.stationary_covariance`: the sample covariance
    shrunk toward the nearest block-Toeplitz matrix by an amount set by the sampling noise of its
    entries (1 with a handful of rows, toward 0 with many), then OAS toward the identity by the
    amount the rows' own correlations call for. Both are estimated in the input's units, where
    the frames are stationary (the standardization gave each frame position its own scale), and
    expressed on the standardized features. On the sound benchmark (704 features, 11 frames;
    ``results/sound/``) it lifts the adapted Gaussian most where rows are few.

    **The mixture** (``adapted_density="mixture"``). Per domain, the Gaussian keeps the exact,
    mergeable moments of the domain's rows (count, mean, co-moment matrix; see
    :mod:`flowad.flows.moments`): per-feature scales from the domain's own variances and the
    correlation matrix shrunk by OAS, the same Gaussian as standardizing with the domain's rows
    and fitting a shrinkage covariance there. Held-out log-likelihoods of the candidate
    weights 0, 0.05, ..., 1 are accumulated on the same rows: 5 interleaved folds (row ``i``
    in fold ``i % 5``), each fold's Gaussian refitted from the other folds' merged moments and
    the flow's densities taken from the one adapting pass (the flow is not refitted per fold),
    so adapting costs one flow pass plus six Gaussian fits. With fewer than 10 rows there is no
    selection and ``w = 0.5`` under either rule (each density can then cost at most ``log 2``
    nats against the better of the two). From 10 rows on:

    * ``mixture_selection="target"`` (default): ``w = 0``, the domain's own Gaussian. Held-out
      likelihood is not a safe judge of the flow as an anomaly detector: on the sound benchmark
      (704 features) the flow's held-out log-likelihood is far above the Gaussian's while it
      ranks anomalies clearly worse, and no label-free criterion tried so far tells the two
      apart (``results/sound/README.md``). The flow's part is then its density for domains with
      a handful of rows, and the per-domain AdaBN statistics (``translate``, ``"flow"``).
    * ``mixture_selection="likelihood"``: the weight closest to 0.5 whose held-out
      log-likelihood is within one standard error of the best, so a handful of rows cannot move
      ``w`` far from 0.5 unless they clearly favour it (files written before this option load
      with it, and score as when they were saved).

    ``partial_adapt`` merges the moments exactly and holds each new batch out from the
    Gaussian of the rows before it; the weight follows the rule from the rows held out so far.
    A streamed ``adapt`` takes two more passes (fold moments, held-out likelihoods).

    References
    ----------
    Yamaguchi, Koizumi, Harada. "AdaFlow: Domain-adaptive density estimator with application to
    anomaly detection and unpaired cross-domain translation". ICASSP 2019.
    """

    def __init__(
        self,
        *,
        contamination: float = 0.05,
        n_layers: int = 2,
        alpha: float = 0.1,
        n_couplings: int = 0,
        hidden: Sequence[int] = (64, 64),
        s_max: float = 3.0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        threshold: float | None = None,
        adapted_density: str = "mixture",
        gaussian_space: str = "input",
        mixture_selection: str = "target",
        stationary_frames: int = 1,
        dtype: str = "float32",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        _store_params(self, locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_architecture(self)
        d = self.adapted_density
        _check_param("adapted_density", d, isinstance(d, str) and d in ADAPTED_DENSITIES, "'mixture' or 'flow'")
        g = self.gaussian_space
        _check_param("gaussian_space", g, isinstance(g, str) and g in GAUSSIAN_SPACES, "'input' or 'latent'")
        r = self.mixture_selection
        _check_param("mixture_selection", r, isinstance(r, str) and r in SELECTION_RULES, "'target' or 'likelihood'")
        f = self.stationary_frames
        _check_param("stationary_frames", f, _integer(f) and f >= 1, "an int >= 1")
        self._check_frames_space(f)  # the input's width is checked in _build_flow

    def _build_flow(self, n_features: int) -> Flow:
        self._check_frames(int(self.stationary_frames))  # now that the input's constant features are known
        return build_adaflow(n_features, n_domains=len(self.domains_), **_architecture(self))

    def _fit_model(self, flow: Flow, Z: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows = [torch.nonzero(context == k).squeeze(1) for k in range(len(self.domains_))]
        flow.eval()
        # Explicit data-dependent start: every domain's statistics under the initial weights
        # (used by train mode for a domain with < 2 samples in a minibatch).
        for k, idx in enumerate(rows):
            update_statistics(flow.bijection, Z[idx], k)
        self.history_ = self._train(flow, Z, generator, context)
        # After training, every domain's statistics exactly over its own training rows; the
        # same pass gives the rows' log-densities (and the Gaussian's rows).
        self._mix: list[DomainMixture | None] = [None] * len(self.domains_)
        log_density = Z.new_empty(Z.shape[0], dtype=torch.float64)
        for k, idx in enumerate(rows):
            z, logdet = update_statistics(flow.bijection, Z[idx], k)
            log_density[idx] = self._mixed(Z[idx], z, logdet, k, fit=True)
        return log_density

    # ------------------------------------------------------------------------- the mixture
    @property
    def _mixture(self) -> bool:
        return self.adapted_density == "mixture"

    def _mixed(self, Z: torch.Tensor, z: torch.Tensor, logdet: torch.Tensor, index: int, *,
               fit: bool = False, prior: DomainMixture | None = None) -> torch.Tensor:
        """Log-density (float64) of standardized rows ``Z`` with flow output ``z``, ``logdet`` in
        domain ``index``; ``fit`` first adds the rows to the domain's mixture (merged into ``prior``)."""
        log_flow = standard_normal_log_prob(z) + logdet
        if not self._mixture:
            return log_flow.double()
        log_flow_np = log_flow.double().cpu().numpy()
        latent = self.gaussian_space == "latent"
        rows = (z if latent else Z).detach().double().cpu().numpy()
        extra = logdet.double().cpu().numpy() if latent else 0.0
        if fit:
            state, out = fit_mixture(rows, log_flow_np, extra, prior, rule=self._rule, frames=self._frame_layout)
            self._mix[index] = state
        else:
            state = self._mix[index]
            if state is None:
                return log_flow.double()
            out = mixture_log_prob(log_flow_np, state.gaussian.log_prob(rows) + extra, self._weight(state))
        return torch.from_numpy(out).to(Z.device)

    @property
    def _frames(self) -> int:
        """``stationary_frames``, checked against the fitted input (also after ``set_params``)."""
        f = getattr(self, "stationary_frames", 1)
        if f == 1:
            return 1
        _check_param("stationary_frames", f, _integer(f) and f >= 1, "an int >= 1")
        self._check_frames_space(f)
        if hasattr(self, "constant_features_"):
            self._check_frames(int(f))
        return int(f)

    @property
    def _frame_layout(self) -> Frames | int:
        """The frames of the Gaussian's rows (the standardized non-constant features), with the
        map back to the input's units, where the frames are stationary."""
        f = self._frames
        if f == 1:
            return 1
        keep = ~np.asarray(self.constant_features_, dtype=bool)
        return Frames(f, np.asarray(self.mean_, dtype=np.float64)[keep], np.asarray(self.scale_, dtype=np.float64)[keep])

    def _check_frames_space(self, f: int) -> None:
        if f > 1 and self.gaussian_space != "input":
            raise InputError(
                f"stationary_frames={f} describes the input's frames; it needs gaussian_space='input' "
                f"(the flow's latent has no frame structure), got gaussian_space={self.gaussian_space!r}."
            )

    def _check_frames(self, f: int) -> None:
        """For ``f > 1``: the input splits into ``f`` frames, and dropping the constant features
        (:class:`~flowad.preprocessing.Standardization`) keeps that structure: a feature constant
        in one frame position is constant in all."""
        d = int(self.n_features_in_)
        if f == 1:
            return
        if d % f:
            raise InputError(
                f"stationary_frames={f} needs rows made of {f} equal-width frames, but X has {d} features, "
                f"not a multiple of {f}."
            )
        constant = np.asarray(self.constant_features_, dtype=bool).reshape(f, d // f)
        mixed = np.flatnonzero(constant.any(axis=0) & ~constant.all(axis=0))
        if mixed.size:
            raise InputError(
                f"stationary_frames={f}: frame features {mixed.tolist()} are constant in the training data at some "
                "frame positions but not at others, so the frames are not stationary; pass stationary_frames=1."
            )

    @property
    def _rule(self) -> str:
        # checked here too: set_params after fit or load is not validated until the next fit
        r = getattr(self, "mixture_selection", "target")
        _check_param("mixture_selection", r, isinstance(r, str) and r in SELECTION_RULES, "'target' or 'likelihood'")
        return r

    def _weight(self, state: DomainMixture) -> float:
        """The flow weight of a domain's mixture under this model's ``mixture_selection``: derived
        from the stored held-out sums at use time, so a state built elsewhere (a streamed or
        distributed adaptation) scores the same as one built here."""
        return state.weight_for(self._rule)

    @property
    def mixture_weights_(self) -> dict[str, float | None]:
        check_is_fitted(self)
        mix = getattr(self, "_mix", [None] * len(self.domains_))
        return {name: (None if m is None else float(self._weight(m))) for name, m in zip(self.domains_, mix, strict=True)}

    def _log_density(self, Z: torch.Tensor, index: int) -> torch.Tensor:
        z, logdet = self.flow_.bijection(Z, self._context(Z, index))
        return self._mixed(Z, z, logdet, index)

    def _adapt_rows(self, Z: torch.Tensor, index: int, prior_count: int) -> torch.Tensor:
        prior = self._mix[index] if prior_count else None
        z, logdet = update_statistics(self.flow_.bijection, Z, index, prior_count=prior_count)
        if prior_count and prior is None and self._mixture:
            # a domain without a Gaussian yet (adapted by the flow alone elsewhere, e.g. on Dask)
            return (standard_normal_log_prob(z) + logdet).double()
        return self._mixed(Z, z, logdet, index, fit=True, prior=prior)

    def _adapt_chunks(self, chunks: Callable[[], Iterator[torch.Tensor]], index: int) -> int:
        count = adapt_statistics(self.flow_.bijection, chunks, index)
        if self._mixture:
            self._mix[index] = self._stream_mixture(chunks, index, count)
        return count

    def _gaussian_rows(self, Z: torch.Tensor, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """Flow log-density, the Gaussian's rows and the Gaussian's extra term for rows ``Z``."""
        with torch.no_grad():
            z, logdet = self.flow_.bijection(Z, self._context(Z, index))
        log_flow = (standard_normal_log_prob(z) + logdet).double().cpu().numpy()
        if self.gaussian_space == "latent":
            return log_flow, z.double().cpu().numpy(), logdet.double().cpu().numpy()
        return log_flow, Z.double().cpu().numpy(), 0.0

    def _stream_mixture(self, chunks: Callable[[], Iterator[torch.Tensor]], index: int, count: int) -> DomainMixture:
        """The domain's mixture from a re-readable stream: one pass for the folds' moments, one
        for the held-out likelihoods (the folds are the row positions modulo N_FOLDS, as in memory)."""
        parts: list[CoMoments] | None = None
        seen = 0
        for chunk in chunks():
            mine = self._fold_moments(chunk, index, seen, count)
            parts = mine if parts is None else [a.merge(b) for a, b in zip(parts, mine, strict=True)]
            seen += chunk.shape[0]
        assert parts is not None
        held_out = self._held_out_gaussians(parts, self._frame_layout)
        selection = Selection.empty()
        if held_out:
            seen = 0
            for chunk in chunks():
                selection = selection.merge(self._fold_selection(chunk, index, seen, count, held_out))
                seen += chunk.shape[0]
        return self._finish_mixture(parts, selection, self._frame_layout)

    # The pieces of the streamed mixture, also for distributed adaptation (flowad.dask): each takes
    # standardized rows Z at global row positions start, start + 1, ... of ``count`` rows.
    def _fold_moments(self, Z: torch.Tensor, index: int, start: int, count: int) -> list[CoMoments]:
        """Per-fold moments of the Gaussian's rows of ``Z`` (mergeable with ``CoMoments.merge``)."""
        _, rows, _ = self._gaussian_rows(Z, index)
        folds = fold_of(start + np.arange(rows.shape[0]), count)
        return [CoMoments.of(rows[folds == f]) for f in range(max(1, min(N_FOLDS, count)))]

    @staticmethod
    def _held_out_gaussians(parts: list[CoMoments], frames: Frames | int = 1) -> list[Any]:
        """Each fold's held-out Gaussian (none below MIN_SELECTION_ROWS rows: no selection)."""
        total = CoMoments.empty(parts[0].features)
        for part in parts:
            total = total.merge(part)
        if total.count < MIN_SELECTION_ROWS:
            return []
        structure = target_for_frames(total, frames)  # once for all folds
        return [held_out_gaussian(total, part, frames, structure) for part in parts]

    def _fold_selection(self, Z: torch.Tensor, index: int, start: int, count: int, held_out: list[Any]) -> Selection:
        """The selection sums of rows ``Z`` (mergeable with ``Selection.merge``)."""
        log_flow, rows, extra = self._gaussian_rows(Z, index)
        folds = fold_of(start + np.arange(rows.shape[0]), count)
        held = np.empty(rows.shape[0])
        for f, gauss in enumerate(held_out):
            held[folds == f] = gauss.log_prob(rows[folds == f])
        return Selection.empty().add(log_flow, held + extra)

    @staticmethod
    def _finish_mixture(parts: list[CoMoments], selection: Selection, frames: Frames | int = 1) -> DomainMixture:
        total = CoMoments.empty(parts[0].features)
        for part in parts:
            total = total.merge(part)
        return DomainMixture.build(total, selection, frames=frames)

    def _new_domain(self) -> None:
        super()._new_domain()
        self._mix.append(None)

    def _drop_domain(self, index: int) -> None:
        super()._drop_domain(index)
        self._mix.pop(index)

    def _snapshot(self, index: int) -> Any:
        mix = self._mix[index]
        return super()._snapshot(index), None if mix is None else mix.copy()

    def _restore(self, index: int, snapshot: Any) -> None:
        stats, mix = snapshot
        super()._restore(index, stats)
        self._mix[index] = mix

    # ------------------------------------------------------------------------ persistence
    def _extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, fields = super()._extra_state()
        for i, mix in enumerate(getattr(self, "_mix", [])):
            if mix is None:
                continue
            m, sel = mix.moments, mix.selection
            tensors.update({
                f"domains.mixture.{i}.count": torch.tensor([m.count, sel.count], dtype=torch.int64),
                f"domains.mixture.{i}.mean": torch.from_numpy(m.mean.copy()),
                f"domains.mixture.{i}.comoment": torch.from_numpy(m.comoment.copy()),
                f"domains.mixture.{i}.s3": torch.from_numpy(m.s3.copy()),
                f"domains.mixture.{i}.s4": torch.tensor([m.s4], dtype=torch.float64),
                f"domains.mixture.{i}.selection_sums": torch.from_numpy(sel.sums.copy()),
                f"domains.mixture.{i}.selection_cross": torch.from_numpy(sel.cross.copy()),
            })
        fields["mixture_format"] = MIXTURE_FORMAT
        return tensors, fields

    def _load_extra_state(self, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
        super()._load_extra_state(tensors, manifest)
        version = manifest.get("mixture_format", 0)
        if version not in (0, 1, MIXTURE_FORMAT):
            raise ModelFileError(
                f"its per-domain mixture is in format {version!r}, but this flowad reads formats 0 to "
                f"{MIXTURE_FORMAT}; upgrade flowad to load it."
            )
        if version == 1:
            # written when every weight came from held-out likelihood (no mixture_selection
            # hyper-parameter yet): keep that rule, so the file scores exactly as when it was saved
            self.mixture_selection = "likelihood"
        # Files written before the mixture (format 0) have no Gaussians: every domain is scored
        # by the flow alone, exactly as when it was saved.
        self._mix = []
        for i in range(len(self.domains_)):
            key = f"domains.mixture.{i}"
            if f"{key}.count" not in tensors:
                self._mix.append(None)
                continue
            count, n_sel = (int(v) for v in tensors[f"{key}.count"].tolist())
            mean = tensors[f"{key}.mean"].double().numpy().copy()
            d = mean.shape[0]
            comoment = tensors[f"{key}.comoment"].double().numpy().copy()
            s3 = tensors[f"{key}.s3"].double().numpy().copy()
            sums = tensors[f"{key}.selection_sums"].double().numpy().copy()
            cross = tensors[f"{key}.selection_cross"].double().numpy().copy()
            g = WEIGHT_GRID.size
            if count < 1 or n_sel < 0 or comoment.shape != (d, d) or s3.shape != (d,) or sums.shape != (g,) or cross.shape != (g, g):
                raise ModelFileError(f"the mixture state of domain {self.domains_[i]!r} has inconsistent shapes or counts.")
            moments = CoMoments(count, mean, comoment, s3, float(tensors[f"{key}.s4"].double().item()))
            self._mix.append(DomainMixture.build(moments, Selection(n_sel, sums, cross), self._rule, self._frame_layout))

    # ------------------------------------------------------------ per-domain statistics rows
    def _layers(self) -> list[AdaptiveBatchNorm]:
        return adabn_layers(self.flow_.bijection)

    # ------------------------------------------------------------------------ translation
    def translate(self, X: Any, *, source: Any, target: Any) -> np.ndarray:
        """Map rows of domain ``source`` to domain ``target`` through the shared latent space.

        Runs the forward map with ``source``'s statistics (data -> latent) and the inverse map
        with ``target``'s (latent -> data), in standardized space; constant features pass
        through unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        source, target : str or int
            Known domains.

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64
        """
        check_is_fitted(self)
        src, tgt = self._index(source), self._index(target)
        return self._translate(self._check_input(X), src, tgt)
