"""Streaming, exactly mergeable moments of rows, shrinkage covariances and the Gaussian built on them.

:class:`CoMoments` holds, in float64, the count ``n``, mean ``m`` and co-moment matrix
``C = sum_i (x_i - m)(x_i - m)^T`` of some rows, plus (for Ledoit–Wolf) ``s3 = sum_i |x_i - m|^2
(x_i - m)`` and ``s4 = sum_i |x_i - m|^4``. Two sets of rows merge exactly (Chan, Golub and
LeVeque, extended to the third and fourth terms), whatever the chunking: with
``d = m_B - m_A`` and ``n = n_A + n_B``,

.. math::
    m = m_A + d\\,n_B/n, \\qquad C = C_A + C_B + d d^T n_A n_B / n,

and ``s3``, ``s4`` of each part are first moved to the merged mean with the exact shift
formulas of :meth:`CoMoments._shifted`.

Shrinkage (both equal scikit-learn's estimators on the same rows, see the tests):

* :func:`oas` — Chen et al.'s oracle approximating shrinkage; needs only ``n`` and ``C``, so it
  also applies to a rescaled matrix (a correlation matrix), which :class:`ShrunkGaussian` uses;
* :func:`ledoit_wolf` — Ledoit and Wolf's; needs ``s4`` as well, in the rows' own coordinates.

Rows that stack ``frames`` consecutive frames of a stationary signal (a context window of log-mel
frames, frame-major) have a block-Toeplitz covariance; :func:`stationary_covariance` uses that
structure when few rows are available (see :class:`ShrunkGaussian`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_WEIGHT",
    "MIN_SELECTION_ROWS",
    "N_FOLDS",
    "SELECTION_RULES",
    "WEIGHT_GRID",
    "CoMoments",
    "DomainMixture",
    "Frames",
    "Selection",
    "ShrunkGaussian",
    "StationaryTarget",
    "fit_mixture",
    "fold_of",
    "held_out_gaussian",
    "ledoit_wolf",
    "mixture_log_prob",
    "oas",
    "select_weight",
    "shrunk_covariance",
    "stationary_covariance",
    "stationary_target",
    "target_for_frames",
]

#: Floor of a per-feature variance of a domain (the input is already standardized to unit scale
#: over the training domains): a feature constant in a domain keeps a finite scale.
VAR_FLOOR = 1e-6


@dataclass
class CoMoments:
    """Count, mean, co-moment matrix and the fourth-order terms of some ``(n, D)`` rows, in float64."""

    count: int
    mean: np.ndarray
    comoment: np.ndarray
    s3: np.ndarray
    s4: float

    @classmethod
    def empty(cls, features: int) -> CoMoments:
        d = int(features)
        return cls(0, np.zeros(d), np.zeros((d, d)), np.zeros(d), 0.0)

    @classmethod
    def of(cls, x: np.ndarray) -> CoMoments:
        """The moments of the rows of ``x`` (any float array of shape ``(n, D)``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"rows must be a 2-D array, got shape {x.shape}.")
        if x.shape[0] == 0:
            return cls.empty(x.shape[1])
        mean = x.mean(axis=0)
        y = x - mean
        # The fourth-order terms (s3, s4) feed only Ledoit-Wolf; rows near 1e77 overflow them to inf
        # without a warning here, and the finite checks of the estimators that use them decide.
        with np.errstate(over="ignore", invalid="ignore"):
            sq = np.einsum("ij,ij->i", y, y)
            return cls(int(x.shape[0]), mean, y.T @ y, sq @ y, float(sq @ sq))

    @property
    def features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def covariance(self) -> np.ndarray:
        """Biased (maximum-likelihood) covariance ``C / n``."""
        if self.count == 0:
            raise ValueError("No rows were accumulated.")
        return self.comoment / self.count

    def _shifted(self, center: np.ndarray) -> tuple[np.ndarray, float]:
        """``s3`` and ``s4`` of these rows about ``center`` instead of their mean."""
        with np.errstate(over="ignore", invalid="ignore"):  # like CoMoments.of: only Ledoit-Wolf reads them
            d = center - self.mean
            cd = self.comoment @ d
            tr = float(np.trace(self.comoment))
            dd = float(d @ d)
            n = self.count
            s3 = self.s3 - d * tr - 2.0 * cd - n * dd * d
            s4 = self.s4 - 4.0 * float(self.s3 @ d) + 4.0 * float(d @ cd) + 2.0 * dd * tr + n * dd * dd
        return s3, s4

    def merge(self, other: CoMoments) -> CoMoments:
        """The moments of both sets of rows together (exact up to rounding)."""
        if other.features != self.features:
            raise ValueError(f"cannot merge moments of {self.features} and {other.features} features.")
        if other.count == 0:
            return self.copy()
        if self.count == 0:
            return other.copy()
        n = self.count + other.count
        d = other.mean - self.mean
        mean = self.mean + d * (other.count / n)
        comoment = _add_outer(self.comoment + other.comoment, d, self.count * other.count / n)
        a3, a4 = self._shifted(mean)
        b3, b4 = other._shifted(mean)
        return CoMoments(n, mean, comoment, a3 + b3, a4 + b4)

    def update(self, x: np.ndarray) -> CoMoments:
        """Merge the rows of ``x`` in place; returns self."""
        merged = self.merge(CoMoments.of(x))
        self.count, self.mean, self.comoment, self.s3, self.s4 = merged.count, merged.mean, merged.comoment, merged.s3, merged.s4
        return self

    def copy(self) -> CoMoments:
        return CoMoments(self.count, self.mean.copy(), self.comoment.copy(), self.s3.copy(), float(self.s4))


def shrunk_covariance(cov: np.ndarray, shrinkage: float, overwrite: bool = False) -> np.ndarray:
    """``(1 - a) S + a (tr S / D) I`` (written into ``cov`` with ``overwrite``)."""
    d = cov.shape[0]
    mu = float(np.trace(cov)) / d
    out = np.multiply(cov, 1.0 - shrinkage, out=cov if overwrite else None)
    out.flat[:: d + 1] += shrinkage * mu
    return out


def _add_outer(a: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``a += alpha * outer(x, x)`` in place: one pass (BLAS ``ger``) for a C-ordered float64 ``a``."""
    from scipy.linalg.blas import dger

    if a.dtype != np.float64 or not a.flags.c_contiguous:
        a += alpha * np.outer(x, x)
        return a
    with np.errstate(over="ignore", invalid="ignore"):
        dger(alpha, x, x, a=a.T, overwrite_a=1)  # a.T is Fortran-ordered and shares a's memory: in place
    return a


def _scaled(a: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a * outer(x, x)`` (``a_ij x_i x_j``) in two passes, into ``out`` (may be ``a``) if given."""
    out = np.multiply(a, x[:, None], out=out)
    out *= x[None, :]
    return out


def _oas_shrinkage(mu: float, alpha: float, d: int, count: int) -> float:
    """OAS's amount from ``mu = tr(S) / D`` and ``alpha = mean(S_ij^2)`` (sklearn's formula)."""
    num = alpha + mu**2
    den = (count + 1.0) * (alpha - mu**2 / d)
    return 1.0 if den == 0 else min(num / den, 1.0)


def _weighted_square_sum(a: np.ndarray, w: np.ndarray) -> float:
    """``sum_ij a_ij^2 w_i w_j`` (``w >= 0``)."""
    m = _scaled(a, np.sqrt(w))
    return float(np.vdot(m, m))


def _oas_amount_of_correlation(comoment: np.ndarray, count: int) -> float:
    """OAS's amount for the correlation matrix of the covariance ``comoment / count`` (variances
    floored at VAR_FLOOR), without forming either: its trace is ``D`` and its mean square
    ``sum c_ij^2 w_i w_j / D^2``."""
    d = comoment.shape[0]
    w = 1.0 / np.maximum(np.diag(comoment) / count, VAR_FLOOR)
    alpha = _weighted_square_sum(comoment, w / count) / (d * d)
    # alpha >= 1 / D for a correlation matrix; below (floored variances) the amount is 1, as at 1 / D
    return _oas_shrinkage(1.0, min(max(alpha, 1.0 / d), 1.0), d, count) if math.isfinite(alpha) else 1.0


def oas(cov: np.ndarray, count: int, overwrite: bool = False) -> tuple[np.ndarray, float]:
    """Oracle approximating shrinkage of the biased covariance ``cov`` of ``count`` rows.

    The formula of ``sklearn.covariance.oas``; returns ``(shrunk covariance, shrinkage)``
    (written into ``cov`` with ``overwrite``).
    """
    d = cov.shape[0]
    shrinkage = _oas_shrinkage(float(np.trace(cov)) / d, float(np.vdot(cov, cov)) / (d * d), d, count)
    return shrunk_covariance(cov, shrinkage, overwrite), shrinkage


def block_toeplitz(cov: np.ndarray, frames: int) -> np.ndarray:
    """The block-Toeplitz matrix nearest ``cov`` (Frobenius norm): ``cov`` seen as ``frames x
    frames`` blocks, each block replaced by the mean of the blocks on its block diagonal."""
    d = cov.shape[0]
    m = d // frames
    blocks = cov.reshape(frames, m, frames, m)
    out = np.empty_like(blocks)
    for k in range(frames):
        lag = sum(blocks[t, :, t + k, :] for t in range(frames - k)) / (frames - k)
        for t in range(frames - k):
            out[t, :, t + k, :] = lag
            out[t + k, :, t, :] = lag.T
    return out.reshape(d, d)


def _negative_count(a: np.ndarray) -> int:
    """How many eigenvalues of the symmetric ``a`` are negative, by Sylvester's law of inertia
    from its Bunch–Kaufman LDL^T factorization (LAPACK ``sytrf``; a fraction of an
    eigendecomposition's cost): the negative eigenvalues of the block-diagonal ``D``."""
    from scipy.linalg import LinAlgError
    from scipy.linalg.lapack import get_lapack_funcs

    sytrf, sytrf_lwork = get_lapack_funcs(("sytrf", "sytrf_lwork"), (a,))
    lwork, info = sytrf_lwork(a.shape[0], lower=1)
    factor, pivots, info = sytrf(a, lwork=max(1, int(lwork)), lower=1, overwrite_a=False)
    if info < 0:
        raise LinAlgError(f"sytrf: illegal argument {-info}.")
    diag, off = np.diag(factor), np.diag(factor, -1)
    count, i, d = 0, 0, a.shape[0]
    while i < d:
        if pivots[i] < 0:  # a 2 x 2 block: one negative eigenvalue if det < 0, two if det > 0 and trace < 0
            det = diag[i] * diag[i + 1] - off[i] * off[i]
            count += 1 if det < 0 else (2 if diag[i] + diag[i + 1] < 0 else 0)
            i += 2
        else:
            count += int(diag[i] < 0)
            i += 1
    return count


def _psd(a: np.ndarray) -> np.ndarray:
    """``a`` (symmetric) with its negative eigenvalues clipped at 0: ``a - V diag(w) V^T`` over its
    negative eigenpairs ``(w, V)``.

    Runs in float32 (precision enough for a shrinkage target; float64 when entries are too large
    for it). The negative eigenvalues are counted first (:func:`_negative_count`) and only those
    eigenpairs computed: from more rows than features a block-Toeplitz target of a stationary
    signal has none or a handful, and the partial problem costs a fraction of the full one. With
    many (few rows, or a signal far from stationary) the full eigendecomposition is faster. The
    result is float64.
    """
    from scipy.linalg import LinAlgError, eigh

    if not np.isfinite(a).all():  # overflowed moments: left to the correlation step's guards
        return a
    d = a.shape[0]
    b = a.astype(np.float32) if float(np.abs(a).max(initial=0.0)) < 1e30 else a
    try:
        neg = _negative_count(b)
        if neg == 0:
            return a
        if neg <= d // 8:
            w, v = eigh(b, driver="evr", subset_by_index=(0, neg - 1), check_finite=False)
        else:
            w, v = eigh(b, driver="evd", check_finite=False)
    except (LinAlgError, ValueError):
        return a
    keep = w < 0.0
    v = v[:, keep]
    return a - ((v * w[keep]) @ v.T).astype(np.float64)


@dataclass(frozen=True)
class Frames:
    """How the features of a row form frames of a stationary signal: ``count`` equal-width frames,
    frame-major. ``shift`` and ``scale`` (shape ``(D,)``, optional) map a row to the frames' own
    units, ``x = shift + scale * row``, where the signal is stationary (rows standardized per
    feature are only nearly so: each frame position got its own scale)."""

    count: int
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None


def _frames(frames: Frames | int) -> Frames:
    return frames if isinstance(frames, Frames) else Frames(int(frames))


@dataclass(frozen=True)
class StationaryTarget:
    """The structured half of :func:`stationary_covariance` for some rows, in the frames' own
    units: the shrunk mean, its weight ``gamma`` and the positive semi-definite block-Toeplitz
    target ``T`` (one eigendecomposition of a ``D x D`` matrix; reused by held-out folds), with
    ``root_weights`` ``u = diag(T)^(-1/2)`` (variances floored at VAR_FLOOR: ``T``'s correlation
    scale) and ``T * outer(u, u)``, which every covariance shrunk toward ``T`` needs."""

    mean: np.ndarray
    target: np.ndarray
    gamma: float
    root_weights: np.ndarray
    weighted_target: np.ndarray


def stationary_target(mean: np.ndarray, comoment: np.ndarray, count: int, frames: Frames | int) -> StationaryTarget:
    """The :class:`StationaryTarget` of rows with moments ``(count, mean, comoment)``."""
    layout = _frames(frames)
    mean, cov = _in_frame_units(mean, comoment, count, layout)
    d, f = mean.shape[0], layout.count
    tied = np.tile(mean.reshape(f, d // f).mean(axis=0), f)
    gap_m = float(np.sum((mean - tied) ** 2))
    noise_m = float(np.trace(cov)) / count
    gamma = 1.0 if gap_m <= noise_m else noise_m / gap_m
    shrunk_mean = (1.0 - gamma) * mean + gamma * tied
    shift = mean - shrunk_mean
    _add_outer(cov, shift)
    target = _psd(block_toeplitz(cov, f))
    u = 1.0 / np.sqrt(np.maximum(np.diag(target), VAR_FLOOR))
    return StationaryTarget(shrunk_mean, target, float(gamma), u, _scaled(target, u))


def target_for_frames(moments: CoMoments, frames: Frames | int) -> StationaryTarget | None:
    """:func:`stationary_target` of ``moments`` for rows of several frames, None for one frame."""
    return stationary_target(moments.mean, moments.comoment, moments.count, frames) if _frames(frames).count > 1 else None


def _in_frame_units(mean: np.ndarray, comoment: np.ndarray, count: int, layout: Frames) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (a new array) of rows with moments ``(count, mean, comoment)``, in the frames' units."""
    if layout.scale is None:
        return mean, comoment / count
    scale = np.asarray(layout.scale)
    return np.asarray(layout.shift) + scale * mean, _scaled(comoment, scale / math.sqrt(count))


def _stationary_in_frame_units(mean: np.ndarray, comoment: np.ndarray, count: int, layout: Frames,
                               structure: StationaryTarget | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """:func:`stationary_covariance`'s mean (in the rows' units), covariance (a new array, in the
    frames' units), ``gamma`` and ``delta``; ``structure`` None: computed from these rows."""
    if structure is None:
        structure = stationary_target(mean, comoment, count, layout)
    mean, cov = _in_frame_units(mean, comoment, count, layout)
    _add_outer(cov, mean - structure.mean)  # second moment about the shrunk mean
    u = structure.root_weights  # T's correlation scale: entries times u_i^2 u_j^2 below
    work = _scaled(cov, u)
    own = float(np.vdot(work, work))
    noise = (own + float(np.diag(cov) @ (u * u)) ** 2) / count
    work -= structure.weighted_target
    gap = float(np.vdot(work, work))
    delta = 1.0 if gap <= noise else noise / gap
    cov *= 1.0 - delta  # (1 - delta) S + delta T, in place
    cov += np.multiply(structure.target, delta, out=work)
    shrunk_mean = structure.mean
    if layout.scale is not None:  # the mean back in the rows' units
        shrunk_mean = (shrunk_mean - layout.shift) / layout.scale
    return shrunk_mean, cov, float(structure.gamma), float(delta)


def stationary_covariance(mean: np.ndarray, comoment: np.ndarray, count: int, frames: Frames | int,
                          structure: StationaryTarget | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""Mean and covariance of rows that stack ``frames`` equal-width frames of a stationary signal.

    Stationarity makes the mean the same at every frame position and the covariance
    block-Toeplitz (a block depends only on the lag between two positions). From few rows the
    sample mean ``m`` and covariance ``S`` are far from that structure; each is shrunk toward its
    structured version (``m_bar``, the mean over frame positions, and ``T``, the nearest
    block-Toeplitz matrix to ``S`` about the shrunk mean, with negative eigenvalues clipped at 0)
    by the amount the sampling noise calls for:

    .. math::
        \hat m = (1 - \gamma) m + \gamma \bar m, \qquad
        \gamma = \min\Big(1, \frac{\operatorname{tr} S / n}{\lVert m - \bar m \rVert^2}\Big),

        \hat\Sigma = (1 - \delta) S + \delta T, \qquad
        \delta = \min\Big(1, \frac{\sum_{ij} (S_{ij}^2 + S_{ii} S_{jj}) / n}{\sum_{ij} (S_{ij} - T_{ij})^2}\Big),

    ``delta`` computed on the correlation scale of ``T``. The numerators are the sampling
    variances of the entries of ``m`` and ``S`` for Gaussian rows, so both amounts go from 1 (a
    handful of rows: the structure) toward 0 when many rows show the signal is not stationary,
    as in Ledoit–Wolf shrinkage toward a structured target. No label and no tuned constant.
    ``frames`` is a frame count or a :class:`Frames` (the estimate is then made in the frames'
    own units and returned in the rows'). ``structure``: the structured half computed from other
    rows (:func:`stationary_target`; held-out folds take all rows'), else from these.

    Returns
    -------
    mean : ndarray of shape (D,)
    covariance : ndarray of shape (D, D)
        Positive semi-definite.
    gamma, delta : float
        The weights of the structured mean and covariance.
    """
    layout = _frames(frames)
    shrunk_mean, out, gamma, delta = _stationary_in_frame_units(mean, comoment, count, layout, structure)
    if layout.scale is not None:  # the covariance back in the rows' units
        _scaled(out, 1.0 / np.asarray(layout.scale), out=out)
    return shrunk_mean, out, gamma, delta


def ledoit_wolf(moments: CoMoments) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrinkage from the moments (the formula of ``sklearn.covariance.ledoit_wolf``).

    Returns ``(shrunk covariance, shrinkage)``; needs ``s4``, so it holds in the coordinates the
    rows were accumulated in.
    """
    n, d = moments.count, moments.features
    if n == 0:
        raise ValueError("No rows were accumulated.")
    cov = moments.covariance
    if d == 1:
        return cov.copy(), 0.0
    trace = float(np.trace(cov))
    mu = trace / d
    delta_ = float(np.sum(cov**2))
    beta = (moments.s4 / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    return shrunk_covariance(cov, shrinkage), shrinkage


@dataclass
class ShrunkGaussian:
    """A full-covariance Gaussian from moments: per-feature scales from the rows' own variances,
    the correlation matrix shrunk by :func:`oas`.

    ``log_prob(x) = const - |L^{-1} ((x - mean) / s)|^2 / 2`` with ``L L^T`` the shrunk
    correlation matrix and ``s`` the per-feature standard deviations (floored at
    ``sqrt(VAR_FLOOR)``): the same Gaussian as standardizing with the rows' own mean and
    standard deviation and fitting a shrinkage covariance there (what the target-only Gaussian
    baseline does). :attr:`factor` is ``L^{-1} diag(1/s)``, for graphs without a triangular solve.

    With ``frames > 1`` the rows stack that many frames of a stationary signal: the mean and
    covariance are :func:`stationary_covariance`'s (shrunk toward the same mean at every frame
    position and toward block-Toeplitz, the latter by ``toeplitz_weight``) before the scales and
    the OAS step; OAS's amount is the one of the rows' own correlation matrix.
    """

    mean: np.ndarray
    scale: np.ndarray
    chol: np.ndarray
    const: float
    shrinkage: float
    toeplitz_weight: float = 0.0

    @classmethod
    def fit(cls, moments: CoMoments, frames: Frames | int = 1) -> ShrunkGaussian:
        return cls.from_comoment(moments.count, moments.mean, moments.comoment, frames)

    @classmethod
    def from_comoment(cls, count: int, mean: np.ndarray, comoment: np.ndarray, frames: Frames | int = 1,
                      structure: StationaryTarget | None = None) -> ShrunkGaussian:
        if count < 1:
            raise ValueError("A Gaussian needs at least one row.")
        n_frames = _frames(frames).count
        if n_frames < 1 or mean.shape[0] % n_frames:
            raise ValueError(f"{mean.shape[0]} features cannot be split into {n_frames} equal frames.")
        delta = 0.0
        if n_frames > 1 and np.isfinite(comoment).all():  # overflowed moments: no structure, the guards below
            layout = _frames(frames)
            a = _oas_amount_of_correlation(comoment, count)  # the amount the rows' own correlations call for
            mean, cov, _, delta = _stationary_in_frame_units(mean, comoment, count, layout, structure)
            s, corr = _correlation(cov, layout.scale)  # the correlations are the same in the rows' units
            shrunk = shrunk_covariance(corr, a, overwrite=True)
        else:
            s, corr = _correlation(comoment, None, count)
            shrunk, a = oas(corr, count, overwrite=True)
        chol = _cholesky(shrunk)
        d = mean.shape[0]
        const = -float(np.log(s).sum()) - float(np.log(np.diag(chol)).sum()) - 0.5 * d * math.log(2.0 * math.pi)
        return cls(np.array(mean, dtype=np.float64), s, chol, const, float(a), float(delta))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        u = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        y = solve_triangular(self.chol, u.T, lower=True, check_finite=False)
        return self.const - 0.5 * np.einsum("ij,ij->j", y, y)

    @property
    def factor(self) -> np.ndarray:
        """``A = L^{-1} diag(1/s)``: ``log_prob(x) = const - |A (x - mean)|^2 / 2``."""
        from scipy.linalg import solve_triangular

        inv = solve_triangular(self.chol, np.eye(self.chol.shape[0]), lower=True, check_finite=False)
        return inv / self.scale[None, :]


def _correlation(cov: np.ndarray, units: np.ndarray | None = None, count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature scales (variances floored at VAR_FLOOR) and the correlation matrix (a new
    array, or ``cov`` itself when ``units`` is given) of the covariance ``cov / count``.

    ``units``: ``cov`` is in other units, feature ``i`` multiplied by ``units[i]`` (the frames'
    units of :class:`Frames`); the scales are those of the rows (``cov``'s divided by ``units``)
    and ``cov`` is overwritten by the correlations (the same in both units)."""
    var = np.diag(cov) / count
    if units is None:
        s = np.sqrt(np.maximum(var, VAR_FLOOR))
        scale, out = s * math.sqrt(count), None
    else:
        units = np.asarray(units)
        s = np.sqrt(np.maximum(var / units**2, VAR_FLOOR))
        scale, out = s * units, cov
    with np.errstate(over="ignore", invalid="ignore"):
        corr = _scaled(cov, 1.0 / scale, out=out)
    # A correlation matrix: unit diagonal, entries in [-1, 1]. Features whose variance is at
    # the floor (or whose moments overflowed) would otherwise leave a zero or non-finite row.
    if not np.isfinite(corr).all():
        np.nan_to_num(corr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(corr, -1.0, 1.0, out=corr)
    np.fill_diagonal(corr, 1.0)
    return s, corr


def _cholesky(a: np.ndarray) -> np.ndarray:
    """Cholesky factor of a shrunk correlation matrix, with a growing diagonal jitter if rounding
    made ``a`` indefinite; if even that fails, the identity (the features taken as uncorrelated)."""
    from scipy.linalg import LinAlgError, cholesky

    jitter = 0.0
    scale = float(np.mean(np.diag(a))) or 1.0
    for _ in range(8):
        try:
            return cholesky(a if jitter == 0 else a + jitter * np.eye(a.shape[0]), lower=True, check_finite=False)
        except (LinAlgError, ValueError):
            jitter = scale * 1e-10 if jitter == 0 else 10 * jitter
    return np.eye(a.shape[0])


# ----------------------------------------------------------------------------------- mixture
#: Candidate weights of the flow in ``w p_flow + (1 - w) p_gauss``.
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 10)
#: The weight used until the cross-validation has enough rows, and the one the selection
#: leans to when the data cannot tell the candidates apart (one-standard-error rule).
DEFAULT_WEIGHT = 0.5
#: Fewer cross-validated rows than this: the weight is DEFAULT_WEIGHT, whatever they say.
MIN_SELECTION_ROWS = 10
#: Folds of the cross-validation of an in-memory batch (rows ``i`` with ``i % N_FOLDS == f``
#: form fold ``f``: deterministic, no random state).
N_FOLDS = 5


#: How a domain's flow weight is chosen from its held-out rows (:func:`select_weight`):
#: ``"target"`` (AdaFlow's default) and ``"likelihood"`` (the weight of best held-out likelihood).
SELECTION_RULES = ("target", "likelihood")


def select_weight(selection: Selection, rule: str = "likelihood") -> float:
    """The flow weight of a domain whose held-out rows gave ``selection``, under ``rule``.

    * ``"likelihood"``: :meth:`Selection.weight` (the weight of best held-out log-likelihood,
      one-standard-error rule toward :data:`DEFAULT_WEIGHT`);
    * ``"target"``: :data:`DEFAULT_WEIGHT` below :data:`MIN_SELECTION_ROWS` held-out rows, ``0``
      (the domain's own Gaussian alone) from there on. Held-out likelihood cannot be the judge
      of the flow: on the 704-dimensional sound frames of ``results/sound`` the flow's held-out
      log-likelihood is hundreds of nats per row above the Gaussian's (paired t from 5 at
      N = 10 to 66 at N = 1000, so no significance margin rejects it) while it ranks anomalies
      0.06-0.10 AUROC worse; on FEMTO both criteria agree with the Gaussian. With fewer rows
      than that no Gaussian can be checked, and the flow is kept at weight one half.

    Raises
    ------
    ValueError
        For an unknown rule.
    """
    if rule == "likelihood":
        return selection.weight()
    if rule == "target":
        return DEFAULT_WEIGHT if selection.count < MIN_SELECTION_ROWS else 0.0
    raise ValueError(f"unknown selection rule {rule!r}; expected one of {SELECTION_RULES}.")


def mixture_log_prob(log_flow: np.ndarray, log_gauss: np.ndarray, weight: float) -> np.ndarray:
    """``log(w exp(log_flow) + (1 - w) exp(log_gauss))``, exact at ``w`` = 0 and 1."""
    log_flow = np.asarray(log_flow, dtype=np.float64)
    if weight >= 1.0:
        return log_flow.copy()
    log_gauss = np.asarray(log_gauss, dtype=np.float64)
    if weight <= 0.0:
        return log_gauss.copy()
    return np.logaddexp(math.log(weight) + log_flow, math.log1p(-weight) + log_gauss)


def _relative_log_likelihoods(log_flow: np.ndarray, log_gauss: np.ndarray) -> np.ndarray:
    """Per row and candidate weight: the mixture's log-likelihood minus that at DEFAULT_WEIGHT
    (bounded for inner weights, so sums of squares keep their precision)."""
    ref = mixture_log_prob(log_flow, log_gauss, DEFAULT_WEIGHT)
    return np.stack([mixture_log_prob(log_flow, log_gauss, float(w)) - ref for w in WEIGHT_GRID], axis=1)


@dataclass
class Selection:
    """Mergeable sums of the held-out log-likelihoods of the candidate weights.

    ``count`` rows; ``sums[g] = sum_i r_i(w_g)`` and ``cross[g, h] = sum_i r_i(w_g) r_i(w_h)``
    with ``r_i(w)`` row ``i``'s held-out mixture log-likelihood relative to ``w = 0.5``.
    """

    count: int
    sums: np.ndarray
    cross: np.ndarray

    @classmethod
    def empty(cls) -> Selection:
        g = WEIGHT_GRID.size
        return cls(0, np.zeros(g), np.zeros((g, g)))

    def add(self, log_flow: np.ndarray, log_gauss_held_out: np.ndarray) -> Selection:
        r = _relative_log_likelihoods(log_flow, log_gauss_held_out)
        return Selection(self.count + r.shape[0], self.sums + r.sum(axis=0), self.cross + r.T @ r)

    def merge(self, other: Selection) -> Selection:
        return Selection(self.count + other.count, self.sums + other.sums, self.cross + other.cross)

    def copy(self) -> Selection:
        return Selection(self.count, self.sums.copy(), self.cross.copy())

    def weight(self) -> float:
        """The selected weight: DEFAULT_WEIGHT below MIN_SELECTION_ROWS rows; otherwise, among the
        weights whose mean held-out log-likelihood is within one standard error (of the per-row
        difference) of the best one, the closest to DEFAULT_WEIGHT (ties: the higher likelihood,
        then the smaller weight)."""
        n = self.count
        if n < MIN_SELECTION_ROWS:
            return DEFAULT_WEIGHT
        mean = self.sums / n
        best = int(np.argmax(mean))
        second = self.cross / n
        diff_var = np.diag(second) - 2.0 * second[:, best] + second[best, best] - (mean - mean[best]) ** 2
        se = np.sqrt(np.maximum(diff_var, 0.0) / n)
        ok = np.flatnonzero(mean >= mean[best] - se)
        distance = np.abs(WEIGHT_GRID[ok] - DEFAULT_WEIGHT)
        order = np.lexsort((WEIGHT_GRID[ok], -mean[ok], np.round(distance, 9)))
        return float(WEIGHT_GRID[ok[order[0]]])


@dataclass
class DomainMixture:
    """A domain's Gaussian part and mixing weight: the moments of its rows (in the space the
    Gaussian lives in), the selection sums, the chosen weight and the Gaussian fitted on all rows."""

    moments: CoMoments
    selection: Selection
    weight: float
    gaussian: ShrunkGaussian

    @classmethod
    def build(cls, moments: CoMoments, selection: Selection, rule: str = "likelihood", frames: Frames | int = 1,
              structure: StationaryTarget | None = None) -> DomainMixture:
        """``structure``: the :func:`stationary_target` of ``moments`` when already computed."""
        gaussian = ShrunkGaussian.from_comoment(moments.count, moments.mean, moments.comoment, frames, structure)
        return cls(moments, selection, select_weight(selection, rule), gaussian)

    def weight_for(self, rule: str) -> float:
        """The flow weight under selection ``rule`` (:func:`select_weight` of this domain's sums)."""
        return select_weight(self.selection, rule)

    def copy(self) -> DomainMixture:
        return DomainMixture(self.moments.copy(), self.selection.copy(), self.weight, self.gaussian)


def held_out_gaussian(total: CoMoments, part: CoMoments, frames: Frames | int = 1,
                      structure: StationaryTarget | None = None) -> ShrunkGaussian:
    """The Gaussian that holds ``part`` out of ``total`` *for its correlations only*: the mean and
    per-feature scales are those of all rows of ``total``, the correlation matrix that of the rows
    not in ``part`` (an exact downdate of the co-moment), shrunk by OAS.

    The flow's per-domain statistics (AdaBN means and variances) are computed once from all rows,
    so its held-out likelihood is in-sample for exactly those per-feature statistics; giving the
    Gaussian the same in-sample per-feature statistics keeps the comparison fair, and what the
    Gaussian learns beyond them (the correlations, D(D-1)/2 numbers) is held out. ``frames``:
    see :class:`ShrunkGaussian`; with frames, the structured half (``structure``, the
    :func:`stationary_target` of ``total``, computed once for all folds) is in-sample too, as the
    scales are: only the rows' own covariance is held out.
    """
    n = total.count - part.count
    if n < 1:
        raise ValueError("Nothing is left once the part is held out.")
    mean = (total.mean * total.count - part.mean * part.count) / n
    d = part.mean - mean
    comoment = _add_outer(total.comoment - part.comoment, d, -n * part.count / total.count)
    s_rest = np.sqrt(np.maximum(np.diag(comoment) / n, VAR_FLOOR))
    s_all = np.sqrt(np.maximum(np.diag(total.comoment) / total.count, VAR_FLOOR))
    _scaled(comoment, s_all / s_rest, out=comoment)
    structure = structure or target_for_frames(total, frames)
    return ShrunkGaussian.from_comoment(n, total.mean, comoment, frames, structure)


def fold_of(positions: np.ndarray, count: int) -> np.ndarray:
    """Fold of each row position of a batch of ``count`` rows (``min(N_FOLDS, count)`` folds)."""
    return positions % max(1, min(N_FOLDS, count))


def fit_mixture(rows: np.ndarray, log_flow: np.ndarray, extra: np.ndarray | float = 0.0,
                prior: DomainMixture | None = None, rule: str = "likelihood", frames: Frames | int = 1) -> tuple[DomainMixture, np.ndarray]:
    """Add a batch of a domain's rows to its mixture; return it and the rows' mixture log-densities.

    Parameters
    ----------
    rows : ndarray of shape (n, D)
        The rows in the Gaussian's space (the standardized input, or the flow's latent).
    log_flow : ndarray of shape (n,)
        The flow's log-density of each row (from the pass that adapted the flow).
    extra : ndarray of shape (n,) or float
        Added to the Gaussian's log-density of a row (the flow's log-determinant when the
        Gaussian lives in the latent space; 0 in the input space).
    prior : DomainMixture or None
        The domain's state from earlier batches (``partial_adapt``), None for a fresh one.
    rule : {"likelihood", "target"}, default="likelihood"
        How the weight is chosen from the held-out sums (:func:`select_weight`).
    frames : Frames or int, default=1
        Frames of a stationary signal stacked in each row (:class:`Frames`, :class:`ShrunkGaussian`).

    Notes
    -----
    Without ``prior`` the held-out log-likelihoods are :data:`N_FOLDS`-fold (every fold's
    Gaussian is refitted from the merged moments of the other folds; the flow's densities are
    reused), and only when the batch has at least :data:`MIN_SELECTION_ROWS` rows; with a
    ``prior`` of at least that many rows each new row is held out from the prior's Gaussian
    (prequential). The weight is then :meth:`Selection.weight` of all held-out rows so far.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[0]
    log_flow = np.asarray(log_flow, dtype=np.float64)
    extra = np.broadcast_to(np.asarray(extra, dtype=np.float64), (n,))
    batch = CoMoments.of(rows) if prior is not None or n < MIN_SELECTION_ROWS else None
    selection = Selection.empty() if prior is None else prior.selection
    if prior is not None and prior.moments.count >= MIN_SELECTION_ROWS:
        selection = selection.add(log_flow, prior.gaussian.log_prob(rows) + extra)
    elif prior is None and n >= MIN_SELECTION_ROWS:
        folds = fold_of(np.arange(n), n)
        parts = [CoMoments.of(rows[folds == f]) for f in range(int(folds.max()) + 1)]
        batch = CoMoments.empty(rows.shape[1])
        for part in parts:
            batch = batch.merge(part)
        structure = target_for_frames(batch, frames)
        held = np.empty(n)
        for f, part in enumerate(parts):
            held[folds == f] = held_out_gaussian(batch, part, frames, structure).log_prob(rows[folds == f])
        selection = selection.add(log_flow, held + extra)
    else:
        structure = None
    assert batch is not None
    moments = batch if prior is None else prior.moments.merge(batch)
    state = DomainMixture.build(moments, selection, rule, frames, structure if prior is None else None)
    return state, mixture_log_prob(log_flow, state.gaussian.log_prob(rows) + extra, state.weight)
