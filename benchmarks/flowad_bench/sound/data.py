"""The data of the sound benchmark: real recordings, generated noise, domains and labelled test segments.

Everything here is deterministic given a seed; nothing is trained. See
:mod:`flowad_bench.sound` for how the pieces make a benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowad.exceptions import InputError
from flowad.features.audio import AudioFeatureConfig, context_frames, list_audio_files, log_mel, read_audio
from flowad.features.machine_sound import scan_machine_sound
from flowad_bench.mixing import add_at_anr, mix_at_snr
from flowad_bench.sound.config import EVENT_CLASSES, GENERATED_NOISES, MACHINES, NOISES, SoundBenchConfig

__all__ = [
    "LabelledSegments",
    "SoundMaterial",
    "build_test_set",
    "domain_audio",
    "event_class",
    "frames_of",
    "hvac_noise",
    "load_material",
]


@dataclass
class SoundMaterial:
    """The real recordings a benchmark is built from (mono float32 at the feature rate).

    Attributes
    ----------
    clips : dict of str to list of ndarray
        Normal clips per machine type (for :data:`MACHINES` and the recorded :data:`NOISES`).
    events : list of (str, ndarray)
        ``(file name, signal)`` of the anomaly events.
    sample_rate : int
    """

    clips: dict[str, list[np.ndarray]]
    events: list[tuple[str, np.ndarray]]
    sample_rate: int

    def describe(self) -> dict[str, Any]:
        """Clip counts and seconds per machine type, events per class."""
        sr = self.sample_rate
        per_class: dict[str, int] = {}
        for name, _ in self.events:
            cls = event_class(name)
            per_class[cls] = per_class.get(cls, 0) + 1
        return {
            "clips": {m: {"n": len(c), "seconds": round(sum(x.size for x in c) / sr, 1)} for m, c in self.clips.items()},
            "events": per_class,
        }


def event_class(file_name: str) -> str:
    """The class of a DCASE 2016 event file: ``doorslam012.wav`` -> ``doorslam``."""
    return Path(file_name).stem.rstrip("0123456789")


def load_material(clips: str | Path, events: str | Path, config: SoundBenchConfig | None = None) -> SoundMaterial:
    """Read the machine clips and the office events a benchmark needs.

    Parameters
    ----------
    clips : path
        A folder of DCASE-named machine-sound files (e.g. ``sound/dcase2023_clips``); the first
        ``max_clips`` normal files (by name) of each machine type of :data:`MACHINES` and of the
        recorded :data:`NOISES` are used.
    events : path
        A folder of DCASE 2016 Task 2 event files named ``<class><NNN>.wav``; those of
        :data:`EVENT_CLASSES` are used.
    config : SoundBenchConfig or None

    Raises
    ------
    InputError
        If a folder is missing, a needed machine type has no normal clip, or no event of the
        classes is found.
    """
    cfg = config or SoundBenchConfig()
    feats = cfg.features
    table = scan_machine_sound(clips, strict=False)
    table = table[table["label"] == "normal"].sort_values("path")
    needed = list(MACHINES) + [n for n in NOISES if n not in GENERATED_NOISES]
    material: dict[str, list[np.ndarray]] = {}
    for machine in needed:
        paths = table[table["machine"] == machine]["path"].tolist()[: cfg.max_clips]
        if not paths:
            raise InputError(f"{clips}: no normal clip of machine type {machine!r} (needed: {needed}).")
        material[machine] = [read_audio(p, feats) for p in paths]
    event_dir = Path(events)
    if not event_dir.is_dir():
        raise InputError(f"{event_dir} is not a folder.")
    chosen = [p for p in list_audio_files(event_dir) if event_class(p.name) in EVENT_CLASSES]
    if not chosen:
        raise InputError(f"{event_dir}: no event file of the classes {list(EVENT_CLASSES)} (names like doorslam001.wav).")
    event_list = [(p.name, read_audio(p, feats)) for p in chosen]
    return SoundMaterial(clips=material, events=event_list, sample_rate=feats.sample_rate)


def _pink(n: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Noise with power spectrum ``1 / f**exponent`` (1 = pink, 2 = brown), unit variance."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (exponent / 2.0), n=n)
    return x / x.std()


def hvac_noise(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A generated ventilation-like background of ``n`` samples (unit variance, float64).

    Sum of pink noise, brown noise (weight 0.7) and a 50 Hz mains hum with its 100 and 150 Hz
    harmonics (amplitudes 0.3, 0.15, 0.1 of the noise's scale, random phases), multiplied by a
    slow amplitude modulation ``1 + 0.3 sin(2π f t + φ)`` with ``f`` drawn in [0.1, 0.3] Hz.

    Examples
    --------
    >>> x = hvac_noise(16000, 16000, np.random.default_rng(0))
    >>> x.shape, round(float(x.std()), 6)
    ((16000,), 1.0)
    """
    t = np.arange(n) / sample_rate
    x = _pink(n, rng, 1.0) + 0.7 * _pink(n, rng, 2.0)
    for k, amp in ((1, 0.3), (2, 0.15), (3, 0.1)):
        x += amp * np.sqrt(2.0) * np.sin(2 * np.pi * 50.0 * k * t + rng.uniform(0, 2 * np.pi))
    x *= 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return x / x.std()


def _part(x: np.ndarray, part: str, fraction: float) -> np.ndarray:
    cut = int(round(fraction * x.size))
    return x[:cut] if part == "train" else x[cut:]


def domain_audio(material: SoundMaterial, machine: str, noise: str, part: str, seed: int,
                 config: SoundBenchConfig) -> list[np.ndarray]:
    """The ``part`` ("train" or "test") waveforms of domain ``machine+noise`` (one per machine clip).

    Each machine clip's part is mixed at ``snr_db`` with the same part of the noise: for a
    recorded noise, the concatenated parts of its clips from a random offset (tiled if
    shorter); for ``hvac``, freshly generated noise. Deterministic given ``seed``.
    """
    rng = np.random.default_rng([seed, MACHINES.index(machine), NOISES.index(noise), part == "test"])
    if noise in GENERATED_NOISES:
        pool = None
    else:
        pool = np.concatenate([_part(c, part, config.train_fraction) for c in material.clips[noise]]).astype(np.float64)
    out = []
    for clip in material.clips[machine]:
        signal = _part(clip, part, config.train_fraction).astype(np.float64)
        if pool is None:
            bg = hvac_noise(signal.size, material.sample_rate, rng)
        else:
            bg = np.resize(np.roll(pool, -int(rng.integers(pool.size))), signal.size)
        out.append(mix_at_snr(signal, bg, config.snr_db).astype(np.float32))
    return out


def frames_of(wave: np.ndarray, config: AudioFeatureConfig) -> np.ndarray:
    """Context-window log-mel features of one waveform, shape ``(n, n_mels * (2c + 1))``."""
    return context_frames(log_mel(wave, config), config.context)


def _segments(waves: Sequence[np.ndarray], length: int, hop: int) -> list[np.ndarray]:
    return [w[s : s + length] for w in waves for s in range(0, w.size - length + 1, hop)]


@dataclass
class LabelledSegments:
    """A target's test set: segments, their labels and the frames that score them.

    Attributes
    ----------
    waves : list of ndarray
        The segments: every normal one, then the same ones with an event added.
    y : ndarray of int
        0 = normal, 1 = with an event.
    frames : ndarray of shape (n_frames, n_features)
        Features of every segment's frames, in segment order.
    owner : ndarray of int
        Segment index of each frame.
    """

    waves: list[np.ndarray]
    y: np.ndarray
    frames: np.ndarray
    owner: np.ndarray


def build_test_set(material: SoundMaterial, waves: Sequence[np.ndarray], seed: int, rotation: int, anr_db: float,
                   config: SoundBenchConfig) -> LabelledSegments:
    """Cut the target's test audio into segments; pair each with a copy holding a random event at ``anr_db``.

    The event draws (which event, where) depend on ``seed`` and ``rotation`` only, so every
    ratio gets the same events at the same positions.
    """
    sr = material.sample_rate
    length = int(round(config.segment_seconds * sr))
    hop = int(round(config.segment_hop_seconds * sr))
    normal = _segments(waves, length, hop)
    if not normal:
        raise InputError(f"The target's test audio is shorter than one segment ({config.segment_seconds} s).")
    rng = np.random.default_rng([seed, rotation, 7])
    anomalous = []
    for seg in normal:
        _, event = material.events[int(rng.integers(len(material.events)))]
        event = event[:length]
        start = int(rng.integers(seg.size - event.size + 1))
        anomalous.append(add_at_anr(seg, event, anr_db, start).astype(np.float32))
    segs = normal + anomalous
    y = np.r_[np.zeros(len(normal), dtype=int), np.ones(len(anomalous), dtype=int)]
    per = [frames_of(s, config.features) for s in segs]
    owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(per)])
    return LabelledSegments(waves=segs, y=y, frames=np.concatenate(per), owner=owner)
