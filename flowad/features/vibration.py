"""Features of short vibration snapshots, and the FEMTO / PRONOSTIA bearing data set.

Per snapshot (one 0.1 s record of a horizontal and a vertical accelerometer at 25.6 kHz),
:func:`snapshot_features` gives, **per axis** (horizontal first, then vertical):

* ``n_bands`` (32) log band energies: the signal minus its mean, Hann-windowed, real FFT;
  the log of the mean power spectral density (|FFT|² of the bins whose frequency lies in
  ``[f_k, f_{k+1})``) in each of ``n_bands`` bands with log-spaced edges from ``f_min`` (50 Hz)
  to ``f_max`` (12.8 kHz, the Nyquist frequency);
* log RMS of the mean-removed signal;
* log kurtosis (Pearson's, so positive; 3 for a Gaussian signal);
* log crest factor (peak |x| / RMS of the mean-removed signal).

That is ``2 * (32 + 3) = 70`` features. Logs use the named guard :data:`LOG_EPS`. The log of
kurtosis and crest factor (instead of the raw values) keeps their heavy right tail from
dominating Gaussian and flow models; it is a monotone change, so rank-based scores are unaffected.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flowad.exceptions import InputError

__all__ = [
    "LOG_EPS",
    "VibrationFeatureConfig",
    "feature_names",
    "snapshot_features",
    "read_femto_snapshot",
    "load_femto_index",
    "femto_features",
]

logger = logging.getLogger(__name__)

#: Added inside every log (powers in g², amplitudes in g), so that a silent axis stays finite.
LOG_EPS = 1e-12
#: Columns of ``index.csv`` that :func:`load_femto_index` needs.
FEMTO_INDEX_COLUMNS = ("path", "bearing", "condition", "life_fraction", "label")


@dataclass(frozen=True)
class VibrationFeatureConfig:
    """Settings of :func:`snapshot_features` (defaults: the FEMTO protocol of the data README).

    Attributes
    ----------
    sample_rate : float, default=25600.0
    n_bands : int, default=32
    f_min, f_max : float, default=50.0, 12800.0
        Lowest and highest band edge in Hz (``f_max`` at most the Nyquist frequency).
    """

    sample_rate: float = 25_600.0
    n_bands: int = 32
    f_min: float = 50.0
    f_max: float = 12_800.0

    def validate(self) -> None:
        """Raise :class:`~flowad.exceptions.InputError` on an impossible setting."""
        if not self.sample_rate > 0:
            raise InputError(f"sample_rate must be > 0, got {self.sample_rate}.")
        if not (isinstance(self.n_bands, int) and self.n_bands >= 1):
            raise InputError(f"n_bands must be an int >= 1, got {self.n_bands!r}.")
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
            raise InputError(
                f"Band edges must satisfy 0 < f_min < f_max <= sample_rate / 2 = {self.sample_rate / 2}; "
                f"got f_min={self.f_min}, f_max={self.f_max}."
            )


def feature_names(n_axes: int = 2, config: VibrationFeatureConfig | None = None) -> list[str]:
    """Names of the features of :func:`snapshot_features`, in column order."""
    cfg = config or VibrationFeatureConfig()
    axes = ["h", "v"] if n_axes == 2 else [f"axis{i}" for i in range(n_axes)]
    names = []
    for a in axes:
        names += [f"{a}_band{k:02d}" for k in range(cfg.n_bands)]
        names += [f"{a}_log_rms", f"{a}_log_kurtosis", f"{a}_log_crest"]
    return names


def snapshot_features(signal: np.ndarray, config: VibrationFeatureConfig | None = None) -> np.ndarray:
    """Features of one multi-axis snapshot (see the module docstring).

    Parameters
    ----------
    signal : ndarray of shape (n_samples, n_axes)
        Acceleration of each axis (any unit; g for FEMTO).
    config : VibrationFeatureConfig or None, default=None

    Returns
    -------
    ndarray of shape (n_axes * (n_bands + 3),), float64

    Raises
    ------
    InputError
        If the snapshot is not 2-D, is too short for the lowest band, or is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(2560) / 25600.0
    >>> x = np.stack([np.sin(2 * np.pi * 1000 * t), 0.1 * np.sin(2 * np.pi * 3000 * t)], axis=1)
    >>> snapshot_features(x).shape
    (70,)
    """
    cfg = config or VibrationFeatureConfig()
    cfg.validate()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 16:
        raise InputError(f"signal must have shape (n_samples >= 16, n_axes), got {x.shape}.")
    if not np.isfinite(x).all():
        raise InputError("signal contains NaN or infinite values.")
    n = x.shape[0]
    freqs = np.fft.rfftfreq(n, d=1.0 / cfg.sample_rate)
    edges = np.geomspace(cfg.f_min, cfg.f_max, cfg.n_bands + 1)
    band = np.searchsorted(edges, freqs, side="right") - 1  # band index of each bin; -1 / n_bands outside
    band[np.isclose(freqs, cfg.f_max)] = cfg.n_bands - 1  # the top edge belongs to the top band
    inside = (band >= 0) & (band < cfg.n_bands)
    counts = np.bincount(band[inside], minlength=cfg.n_bands)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise InputError(
            f"Bands {empty} contain no FFT bin: a snapshot of {n} samples at {cfg.sample_rate} Hz has a "
            f"resolution of {cfg.sample_rate / n:.3g} Hz; use longer snapshots, fewer bands or a higher f_min."
        )
    centred = x - x.mean(axis=0)
    spectrum = np.fft.rfft(centred * np.hanning(n)[:, None], axis=0)
    power = spectrum.real**2 + spectrum.imag**2
    out = []
    for a in range(x.shape[1]):
        energy = np.bincount(band[inside], weights=power[inside, a], minlength=cfg.n_bands) / counts
        c = centred[:, a]
        ms = np.mean(c**2)
        rms = np.sqrt(ms)
        kurt = np.mean(c**4) / (ms**2 + LOG_EPS)
        crest = np.max(np.abs(c)) / (rms + LOG_EPS)
        out.append(np.log(energy + LOG_EPS))
        out.append(np.log(np.array([rms, kurt, crest]) + LOG_EPS))
    return np.concatenate(out)


def read_femto_snapshot(path: str | Path) -> np.ndarray:
    """The two acceleration columns (horizontal, vertical) of one FEMTO snapshot file.

    The files have no header and 6 columns (hour, minute, second, microsecond, horizontal g,
    vertical g); the separator is ``,`` except in ``Full_Test_Set/Bearing1_4`` (``;``), so it is
    detected from the first line.

    Returns
    -------
    ndarray of shape (n_samples, 2), float64
    """
    p = Path(path)
    with open(p, encoding="ascii") as fh:
        first = fh.readline()
    sep = ";" if first.count(";") > first.count(",") else ","
    data = pd.read_csv(p, sep=sep, header=None).to_numpy(dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 6:
        raise InputError(f"{p}: expected 6 columns (h, m, s, us, horizontal, vertical), got shape {data.shape}.")
    return data[:, 4:6]


def load_femto_index(root: str | Path) -> pd.DataFrame:
    """``index.csv`` of a FEMTO / PRONOSTIA folder (one row per snapshot file).

    Raises
    ------
    InputError
        If the folder or its index is missing, or the index lacks a needed column.
    """
    root = Path(root)
    index = root / "index.csv"
    if not index.is_file():
        raise InputError(f"No index.csv in {root}: pass the femto_pronostia folder (with index.csv) as the data folder.")
    frame = pd.read_csv(index)
    missing = [c for c in FEMTO_INDEX_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{index} lacks columns {missing}; it has {list(frame.columns)}.")
    return frame


def _cache_key(paths: Sequence[str], cfg: VibrationFeatureConfig) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(asdict(cfg).items())).encode())
    for p in paths:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def femto_features(
    root: str | Path,
    cache: str | Path | None = None,
    *,
    config: VibrationFeatureConfig | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of every snapshot listed in ``root/index.csv``, cached in a ``.npz``.

    Parameters
    ----------
    root : path
        The ``femto_pronostia`` folder.
    cache : path or None, default=None
        ``.npz`` file for the features; reused when its key (the feature settings and the
        list of files) matches, rewritten otherwise. None: no cache.
    config : VibrationFeatureConfig or None, default=None
    progress : bool, default=False
        Show a tqdm progress bar on stderr.

    Returns
    -------
    index : DataFrame
        The rows of ``index.csv``, in its order.
    X : ndarray of shape (n_snapshots, n_features), float64
    """
    cfg = config or VibrationFeatureConfig()
    cfg.validate()
    root = Path(root)
    index = load_femto_index(root)
    paths = index["path"].astype(str).tolist()
    key = _cache_key(paths, cfg)
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                logger.info("features read from cache %s", cache)
                return index, z["X"].astype(np.float64)
        logger.info("cache %s is for other files or settings; recomputing", cache)
    from tqdm.auto import tqdm

    rows = []
    for rel in tqdm(paths, desc="vibration features", unit="file", disable=not progress):
        rows.append(snapshot_features(read_femto_snapshot(root / rel), cfg))
    X = np.vstack(rows)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, X=X, key=np.array(key), names=np.array(feature_names(2, cfg)))
    return index, X
