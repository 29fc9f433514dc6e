"""Log-mel features of audio files, with context windows (the DCASE Task 2 baseline's input).

Pipeline per file (:func:`file_features`):

1. :func:`read_audio` reads the file with ``soundfile`` (libsndfile: WAV, FLAC, OGG, ...),
   averages the channels to mono, and resamples to ``sample_rate`` (16 kHz) with
   ``librosa.resample`` (``soxr`` high quality) when the file has another rate;
2. :func:`log_mel` computes a power mel spectrogram with ``librosa.feature.melspectrogram``
   (centred Hann-windowed STFT, ``n_fft`` 512, ``hop_length`` 256, ``n_mels`` 64 Slaney mel
   filters from 0 Hz to the Nyquist frequency) and takes the log amplitude
   ``20 / power * log10(mel + LOG_EPS)`` (decibels, as the DCASE baselines do);
3. :func:`context_frames` stacks each frame with ``context`` (5) frames on each side:
   row ``t`` is ``[m(t), m(t+1), ..., m(t+2c)]`` (frame-major, ``n_mels`` values per frame), so
   a file of ``T`` frames gives ``T - 2c`` rows of ``n_mels * (2c + 1)`` = 704 values.

:func:`extract_folder` runs this over a folder with a tqdm progress bar and an optional
per-file ``.npy`` cache keyed by the file's path, size, modification time and the settings.
librosa is imported on first use (its first call also takes a few seconds to warm up).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowad.exceptions import InputError

__all__ = [
    "LOG_EPS",
    "SILENCE_PEAK",
    "AudioFeatureConfig",
    "FolderFeatures",
    "read_audio",
    "log_mel",
    "context_frames",
    "file_features",
    "list_audio_files",
    "extract_folder",
]

logger = logging.getLogger(__name__)

#: Added to the mel power before the log (``sys.float_info.epsilon`` in the DCASE baselines;
#: a fixed value here so that float32 and float64 give the same floor, -200 dB at power 2).
LOG_EPS = 1e-20
#: A file whose peak absolute sample value is at most this (full scale = 1) is "silent".
SILENCE_PEAK = 1e-6
#: File name suffixes :func:`list_audio_files` picks up by default.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Settings of the log-mel features (defaults: the AdaFlow study and the DCASE baselines).

    Attributes
    ----------
    sample_rate : int, default=16000
        Rate the audio is analysed at; files at another rate are resampled (or rejected with
        ``resample=False``).
    n_fft : int, default=512
    hop_length : int, default=256
    n_mels : int, default=64
    context : int, default=5
        Frames on each side of a frame in a feature vector; 0 gives single frames.
    power : float, default=2.0
        Exponent of the magnitude spectrum (2 = power, 1 = magnitude).
    fmin, fmax : float or None, default=0.0, None
        Range of the mel filters; None for ``fmax`` means ``sample_rate / 2``.
    resample : bool, default=True
        Resample files at another rate; False raises :class:`~flowad.exceptions.InputError`.
    allow_silent : bool, default=False
        Accept all-zero (silent) files instead of raising.
    """

    sample_rate: int = 16_000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 64
    context: int = 5
    power: float = 2.0
    fmin: float = 0.0
    fmax: float | None = None
    resample: bool = True
    allow_silent: bool = False

    @property
    def frames(self) -> int:
        """Log-mel frames stacked in a feature vector (a context window): ``2 * context + 1``."""
        return 2 * self.context + 1

    @property
    def n_features(self) -> int:
        """Length of a feature vector: ``n_mels * frames``."""
        return self.n_mels * self.frames

    def validate(self) -> None:
        """Raise :class:`~flowad.exceptions.InputError` for an impossible setting."""
        checks = [
            ("sample_rate", self.sample_rate, isinstance(self.sample_rate, int) and self.sample_rate > 0, "an int > 0"),
            ("n_fft", self.n_fft, isinstance(self.n_fft, int) and self.n_fft >= 16, "an int >= 16"),
            ("hop_length", self.hop_length, isinstance(self.hop_length, int) and self.hop_length >= 1, "an int >= 1"),
            ("n_mels", self.n_mels, isinstance(self.n_mels, int) and self.n_mels >= 1, "an int >= 1"),
            ("context", self.context, isinstance(self.context, int) and self.context >= 0, "an int >= 0"),
            ("power", self.power, self.power > 0, "a float > 0"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise InputError(f"{name} must be {expected}, got {value!r}.")
        top = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise InputError(
                f"The mel range must satisfy 0 <= fmin < fmax <= sample_rate / 2 = {self.sample_rate / 2}; "
                f"got fmin={self.fmin}, fmax={self.fmax}."
            )


def read_audio(path: str | os.PathLike[str], config: AudioFeatureConfig | None = None) -> np.ndarray:
    """Read an audio file as mono float32 at ``config.sample_rate``.

    Parameters
    ----------
    path : path-like
    config : AudioFeatureConfig or None, default=None

    Returns
    -------
    ndarray of shape (n_samples,), float32
        Samples in [-1, 1] for integer PCM files.

    Raises
    ------
    InputError
        If the file is missing or cannot be decoded, is empty, is silent (unless
        ``allow_silent``), contains non-finite samples, or has another sample rate while
        ``resample=False``.
    """
    import soundfile as sf

    cfg = config or AudioFeatureConfig()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Audio file {p} does not exist (or is not a file).")
    try:
        data, rate = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise InputError(f"{p} cannot be read as audio ({err}); expected a WAV, FLAC or OGG file.") from None
    if data.shape[0] == 0:
        raise InputError(f"{p} contains no samples.")
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(y).all():
        raise InputError(f"{p} contains NaN or infinite samples.")
    if not cfg.allow_silent and float(np.max(np.abs(y))) <= SILENCE_PEAK:
        raise InputError(
            f"{p} is silent (peak |sample| <= {SILENCE_PEAK:g} of full scale): its log-mel features would all sit "
            "at the log floor. Remove it, or pass allow_silent=True."
        )
    if rate != cfg.sample_rate:
        if not cfg.resample:
            raise InputError(
                f"{p} has a sample rate of {rate} Hz, but {cfg.sample_rate} Hz is expected; "
                "pass resample=True to resample it."
            )
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=cfg.sample_rate, res_type="soxr_hq").astype(np.float32)
    return np.ascontiguousarray(y, dtype=np.float32)


def log_mel(y: np.ndarray, config: AudioFeatureConfig | None = None) -> np.ndarray:
    """Log-mel spectrogram of a mono signal at ``config.sample_rate``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    config : AudioFeatureConfig or None, default=None

    Returns
    -------
    ndarray of shape (n_frames, n_mels), float32
        ``20 / power * log10(mel_power + LOG_EPS)``; ``n_frames = 1 + n_samples // hop_length``
        (centred frames).
    """
    import librosa

    cfg = config or AudioFeatureConfig()
    cfg.validate()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise InputError(f"y must be a non-empty 1-D signal, got shape {y.shape}.")
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        power=cfg.power,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )
    return (20.0 / cfg.power * np.log10(mel.T + LOG_EPS)).astype(np.float32)


def context_frames(frames: np.ndarray, context: int) -> np.ndarray:
    """Stack each frame with ``context`` frames on each side (frame-major).

    Parameters
    ----------
    frames : ndarray of shape (n_frames, n_mels)
    context : int

    Returns
    -------
    ndarray of shape (n_frames - 2 * context, n_mels * (2 * context + 1))
        Row ``t`` is ``frames[t : t + 2 * context + 1].ravel()``.

    Examples
    --------
    >>> context_frames(np.arange(8.0).reshape(4, 2), 1)
    array([[0., 1., 2., 3., 4., 5.],
           [2., 3., 4., 5., 6., 7.]])
    """
    width = 2 * context + 1
    if frames.ndim != 2 or frames.shape[0] < width:
        raise InputError(
            f"A context of {context} frames on each side needs at least {width} frames, got {frames.shape[0]}: "
            "the signal is too short (use a shorter context or a smaller hop)."
        )
    windows = np.lib.stride_tricks.sliding_window_view(frames, width, axis=0)  # (n, n_mels, width)
    return np.ascontiguousarray(windows.transpose(0, 2, 1).reshape(windows.shape[0], -1))


def file_features(path: str | os.PathLike[str], config: AudioFeatureConfig | None = None) -> np.ndarray:
    """Context-window log-mel features of one file, shape ``(n_vectors, n_mels * (2c + 1))``, float32."""
    cfg = config or AudioFeatureConfig()
    cfg.validate()
    try:
        return context_frames(log_mel(read_audio(path, cfg), cfg), cfg.context)
    except InputError as err:
        msg = str(err)
        raise InputError(msg if str(path) in msg else f"{path}: {msg}") from None


def list_audio_files(folder: str | os.PathLike[str], suffixes: Sequence[str] = AUDIO_SUFFIXES, recursive: bool = True) -> list[Path]:
    """Audio files under ``folder`` (sorted), by suffix (case-insensitive).

    Raises
    ------
    InputError
        If ``folder`` is not a directory or holds no audio file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder.")
    walker = root.rglob("*") if recursive else root.glob("*")
    wanted = {s.lower() for s in suffixes}
    files = sorted(p for p in walker if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise InputError(f"No audio files ({', '.join(sorted(wanted))}) in {root}{' or its subfolders' if recursive else ''}.")
    return files


@dataclass
class FolderFeatures:
    """Features of a set of files.

    Attributes
    ----------
    paths : list of Path
    features : list of ndarray
        One ``(n_vectors_i, n_features)`` array per file, in the order of ``paths``.
    config : AudioFeatureConfig
    """

    paths: list[Path]
    features: list[np.ndarray]
    config: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """All vectors in one array and the file index of each row.

        Returns
        -------
        X : ndarray of shape (n_vectors, n_features)
        file_index : ndarray of shape (n_vectors,), int64
        """
        X = np.concatenate(self.features, axis=0)
        idx = np.repeat(np.arange(len(self.features)), [f.shape[0] for f in self.features])
        return X, idx


def _cache_name(path: Path, cfg: AudioFeatureConfig) -> str:
    st = path.stat()
    key = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, asdict(cfg)], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24] + ".npy"


def extract_folder(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    config: AudioFeatureConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    recursive: bool = True,
) -> FolderFeatures:
    """Features of every audio file of a folder (or of a list of files), with progress and caching.

    Parameters
    ----------
    source : path-like or iterable of path-like
        A folder (its ``.wav``/``.flac``/``.ogg`` files, sorted) or explicit files.
    config : AudioFeatureConfig or None, default=None
    cache_dir : path-like or None, default=None
        Folder of per-file ``.npy`` caches; a file is recomputed when its path, size,
        modification time or the settings change.
    progress : bool, default=True
        tqdm progress bar on stderr.
    recursive : bool, default=True
        Look into subfolders of a folder.

    Returns
    -------
    FolderFeatures

    Raises
    ------
    InputError
        For an empty folder, and for the first file that cannot be used (the message names it).
    """
    from tqdm.auto import tqdm

    cfg = config or AudioFeatureConfig()
    cfg.validate()
    if isinstance(source, (str, os.PathLike)):
        paths = list_audio_files(source, recursive=recursive)
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise InputError("No audio files given.")
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    feats: list[np.ndarray] = []
    hits = 0
    for p in tqdm(paths, desc="log-mel features", unit="file", disable=not progress):
        target = cache / _cache_name(p, cfg) if cache is not None and p.is_file() else None
        if target is not None and target.is_file():
            feats.append(np.load(target))
            hits += 1
            continue
        f = file_features(p, cfg)
        if target is not None:
            np.save(target, f)
        feats.append(f)
    if cache is not None:
        logger.info("%d of %d files read from the cache %s", hits, len(paths), cache)
    return FolderFeatures(paths=paths, features=feats, config=cfg)


def describe(config: AudioFeatureConfig) -> dict[str, Any]:
    """The settings and the library versions, for result records."""
    import librosa
    import soundfile as sf

    return {**asdict(config), "n_features": config.n_features, "librosa": librosa.__version__, "soundfile": sf.__version__}
