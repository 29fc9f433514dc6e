"""Speed of the log-mel feature extraction: seconds per hour of 16 kHz audio on one core.

The audio is written to WAV files first (so that file reading counts), either generated (10 s
files of noise plus a few tones, 16-bit PCM at 16 kHz) or real files of a folder cycled until
the requested duration is reached. :func:`~flowad.features.audio.extract_folder` then reads,
(resamples,) analyses and context-stacks them without a cache, on one thread (BLAS limited to 1).
The first call of librosa in a process compiles and loads its kernels (a few seconds): the
report gives the time of a warm run (after one short warm-up file) and that one-off warm-up.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowad.features.audio import AudioFeatureConfig, describe, extract_folder, file_features, list_audio_files

__all__ = ["AudioSpeedConfig", "run_audio_feature_speed", "format_audio_speed"]


@dataclass(frozen=True)
class AudioSpeedConfig:
    """Settings of :func:`run_audio_feature_speed`."""

    seconds: float = 3600.0
    file_seconds: float = 10.0
    seed: int = 0


def _generated_files(folder: Path, cfg: AudioSpeedConfig, sample_rate: int) -> list[Path]:
    import soundfile as sf

    rng = np.random.default_rng(cfg.seed)
    n = int(round(cfg.file_seconds * sample_rate))
    t = np.arange(n) / sample_rate
    files = []
    for i in range(int(np.ceil(cfg.seconds / cfg.file_seconds))):
        freqs = rng.uniform(100.0, 6000.0, size=3)
        y = 0.05 * rng.standard_normal(n) + sum(0.1 * np.sin(2 * np.pi * f * t) for f in freqs)
        path = folder / f"gen_{i:05d}.wav"
        sf.write(path, y.astype(np.float32), sample_rate, subtype="PCM_16")
        files.append(path)
    return files


def _cycled_files(data: Path, seconds: float) -> list[Path]:
    import soundfile as sf

    real = list_audio_files(data)
    durations = [sf.info(p).duration for p in real]
    files, total, i = [], 0.0, 0
    while total < seconds:
        files.append(real[i % len(real)])
        total += durations[i % len(real)]
        i += 1
    return files


def run_audio_feature_speed(
    data: str | Path | None = None, config: AudioSpeedConfig | None = None, features: AudioFeatureConfig | None = None
) -> dict[str, Any]:
    """Time the extraction of ``config.seconds`` of audio on one thread.

    Parameters
    ----------
    data : path or None, default=None
        Folder of real audio files to cycle through; None: generated files.
    config : AudioSpeedConfig or None
    features : AudioFeatureConfig or None

    Returns
    -------
    dict
        ``audio_seconds``, ``files``, ``vectors``, ``extract_seconds``, ``seconds_per_hour``,
        ``warmup_seconds``, ``source``, the settings and the environment.
    """
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    cfg = config or AudioSpeedConfig()
    feats = features or AudioFeatureConfig()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        tmp_path = Path(tmp)
        files = _cycled_files(Path(data), cfg.seconds) if data is not None else _generated_files(tmp_path, cfg, feats.sample_rate)
        audio_seconds = float(sum(sf.info(p).duration for p in files))
        t0 = time.perf_counter()
        file_features(files[0], feats)  # warm-up: librosa's first call
        warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = extract_folder(files, feats, progress=False)
        seconds = time.perf_counter() - t0
    return {
        "source": str(data) if data is not None else f"generated {cfg.file_seconds:g} s WAV files (PCM 16, {feats.sample_rate} Hz)",
        "audio_seconds": audio_seconds,
        "files": len(files),
        "vectors": int(sum(f.shape[0] for f in res.features)),
        "extract_seconds": seconds,
        "seconds_per_hour": seconds * 3600.0 / audio_seconds,
        "warmup_seconds": warmup,
        "config": asdict(cfg),
        "features": describe(feats),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpu": platform.processor() or platform.machine(), "threads": 1},
    }


def format_audio_speed(result: dict[str, Any]) -> str:
    """Plain-text report of :func:`run_audio_feature_speed`'s result."""
    f = result["features"]
    return "\n".join(
        [
            f"Log-mel feature extraction on one thread ({f['sample_rate']} Hz, FFT {f['n_fft']}, hop {f['hop_length']}, "
            f"{f['n_mels']} mels, context ±{f['context']} -> {f['n_features']} dims; librosa {f['librosa']}, soundfile {f['soundfile']})",
            f"source: {result['source']}",
            f"audio: {result['audio_seconds'] / 3600:.3f} h in {result['files']} files -> {result['vectors']} vectors",
            f"extraction (read + resample + log-mel + context, no cache): {result['extract_seconds']:.1f} s",
            f"seconds per hour of audio: {result['seconds_per_hour']:.1f} s",
            f"one-off librosa warm-up in a fresh process (first file, not included above): {result['warmup_seconds']:.1f} s",
            f"environment: {result['environment']}",
        ]
    )
