"""Mixing signals at a set power ratio (SNR for background noise, ANR for anomalous events).

Used to build semi-synthetic sound data: normal machine sound mixed with a noise environment
at a signal-to-noise ratio, and anomalous sound made by adding a real event at an
anomaly-to-normal power ratio. Powers are mean squares over the samples that take part:

* :func:`mix_at_snr`: ``10 log10(P_signal / P_noise_scaled) = snr_db`` over the signal's whole
  length (the noise is tiled or cut to that length first);
* :func:`add_at_anr`: ``10 log10(P_event_scaled / P_normal[span]) = anr_db``, where ``span`` is the
  stretch of the normal sound that the event overlaps (from ``start``, the event's length).

Anomalies made this way are **semi-synthetic**: say so wherever results built on them appear.
"""

from __future__ import annotations

import numpy as np

from flowad.exceptions import InputError

__all__ = ["power_db", "mix_at_snr", "add_at_anr"]

#: A signal whose mean square is at most this has no defined power ratio.
MIN_POWER = 1e-20


def power_db(x: np.ndarray) -> float:
    """``10 log10(mean(x**2))`` of a 1-D signal (float64 arithmetic)."""
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x * x)))


def _checked(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D signal, got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise InputError(f"{name} contains NaN or infinite values.")
    if np.mean(x * x) <= MIN_POWER:
        raise InputError(f"{name} is silent (mean square <= {MIN_POWER:g}): no power ratio can be set.")
    return x


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with ``g`` chosen so that the signal-to-noise ratio is ``snr_db``.

    Parameters
    ----------
    signal, noise : ndarray of shape (n,) and (m,)
        The noise is tiled (if shorter) and cut to ``n`` samples before its power is measured.
    snr_db : float

    Returns
    -------
    ndarray of shape (n,), float64

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s, v = rng.normal(size=1000), rng.normal(size=300)
    >>> mixed = mix_at_snr(s, v, 6.0)
    >>> round(power_db(s) - power_db(mixed - s), 6)
    6.0
    """
    s = _checked(signal, "signal")
    v = _checked(noise, "noise")
    v = np.resize(v, s.shape)  # tiles a shorter noise, cuts a longer one
    v = _checked(v, "noise (cut to the signal's length)")
    gain = np.sqrt(np.mean(s * s) / (np.mean(v * v) * 10.0 ** (snr_db / 10.0)))
    return s + gain * v


def add_at_anr(normal: np.ndarray, event: np.ndarray, anr_db: float, start: int = 0) -> np.ndarray:
    """Add ``event`` into ``normal`` from sample ``start`` at the anomaly-to-normal ratio ``anr_db``.

    Parameters
    ----------
    normal : ndarray of shape (n,)
    event : ndarray of shape (m,), m <= n - start
    anr_db : float
        ``10 log10(P_event_scaled / P_normal[start:start + m])``; the AdaFlow study used -20 dB.
    start : int, default=0

    Returns
    -------
    ndarray of shape (n,), float64
    """
    x = _checked(normal, "normal")
    e = _checked(event, "event")
    if not 0 <= start <= x.size - e.size:
        raise InputError(
            f"start must be in [0, {x.size - e.size}] so that the event ({e.size} samples) fits in the normal "
            f"sound ({x.size} samples), got {start}."
        )
    span = _checked(x[start : start + e.size], "normal (the span under the event)")
    gain = np.sqrt(np.mean(span * span) * 10.0 ** (anr_db / 10.0) / np.mean(e * e))
    out = x.copy()
    out[start : start + e.size] += gain * e
    return out
