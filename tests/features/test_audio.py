"""Log-mel audio features: values against a direct computation, shapes, resampling, errors, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile", reason="the audio extra (soundfile, librosa) is not installed")
librosa = pytest.importorskip("librosa", reason="the audio extra (soundfile, librosa) is not installed")

from flowad.exceptions import InputError  # noqa: E402
from flowad.features import audio  # noqa: E402
from flowad.features.audio import (  # noqa: E402
    AudioFeatureConfig,
    extract_folder,
    file_features,
    log_mel,
    read_audio,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sound"


def _tone(freq: float, seconds: float = 1.0, sr: int = 16_000, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _mel_band_of(freq: float, cfg: AudioFeatureConfig) -> int:
    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
    bin_ = int(round(freq * cfg.n_fft / cfg.sample_rate))
    return int(np.argmax(fb[:, bin_]))


@pytest.mark.parametrize("freq", [250.0, 1000.0, 4000.0])
def test_pure_tone_lands_in_its_mel_band(freq: float) -> None:
    cfg = AudioFeatureConfig()
    m = log_mel(_tone(freq), cfg)
    assert m.shape == (1 + 16_000 // 256, 64) and m.dtype == np.float32
    assert int(np.argmax(m[10:-10].mean(axis=0))) == _mel_band_of(freq, cfg)


def test_values_match_a_direct_computation() -> None:
    cfg = AudioFeatureConfig()
    y = _tone(1000.0) + 0.01 * np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    m = log_mel(y, cfg)
    t = 20  # a frame away from the edges: centred frame t covers samples [t*hop - n_fft/2, t*hop + n_fft/2)
    seg = y[t * 256 - 256 : t * 256 + 256].astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann
    power = np.abs(np.fft.rfft(seg * window)) ** 2
    mel = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=64) @ power
    np.testing.assert_allclose(m[t], 10 * np.log10(mel + audio.LOG_EPS), atol=1e-3)


def test_context_shape_and_order(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", _tone(1000.0, 2.0), 16_000)
    f = file_features(tmp_path / "a.wav")
    frames = log_mel(read_audio(tmp_path / "a.wav"))
    assert f.shape == (frames.shape[0] - 10, 704)
    np.testing.assert_array_equal(f[3, :64], frames[3])
    np.testing.assert_array_equal(f[3, 64 * 5 : 64 * 6], frames[8])  # the centre frame of row 3
    small = AudioFeatureConfig(n_mels=32, context=2, n_fft=1024, hop_length=512)
    assert file_features(tmp_path / "a.wav", small).shape[1] == 32 * 5 == small.n_features


def test_resamples_44k1(tmp_path: Path) -> None:
    sf.write(tmp_path / "hi.wav", _tone(1000.0, 1.0, sr=44_100), 44_100)
    y = read_audio(tmp_path / "hi.wav")
    assert abs(y.size - 16_000) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16_000 / y.size - 1000.0) < 2.0
    with pytest.raises(InputError, match="44100 Hz.*16000 Hz.*resample=True"):
        read_audio(tmp_path / "hi.wav", AudioFeatureConfig(resample=False))


def test_stereo_is_averaged(tmp_path: Path) -> None:
    sf.write(tmp_path / "st.wav", np.stack([_tone(500.0), -_tone(500.0) + 0.25], axis=1), 16_000)
    np.testing.assert_allclose(read_audio(tmp_path / "st.wav"), 0.125, atol=1e-4)


def test_clear_errors(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    with pytest.raises(InputError, match="silent"):
        file_features(tmp_path / "silent.wav")
    assert read_audio(tmp_path / "silent.wav", AudioFeatureConfig(allow_silent=True)).size == 16_000
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(InputError, match="cannot be read as audio"):
        file_features(tmp_path / "text.wav")
    with pytest.raises(InputError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")
    sf.write(tmp_path / "short.wav", _tone(1000.0, 0.05), 16_000)
    with pytest.raises(InputError, match="short.wav.*too short"):
        file_features(tmp_path / "short.wav")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="No audio files"):
        extract_folder(empty, progress=False)
    with pytest.raises(InputError, match="n_mels"):
        log_mel(_tone(1000.0), AudioFeatureConfig(n_mels=0))


def test_folder_extraction_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "wavs"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.wav", "b.WAV", "sub/c.wav"]):
        sf.write(folder / name, _tone(300.0 * (i + 1)), 16_000)
    (folder / "notes.txt").write_text("ignored")
    res = extract_folder(folder, cache_dir=tmp_path / "cache", progress=False)
    assert [p.name for p in res.paths] == ["a.wav", "b.WAV", "c.wav"]
    X, idx = res.stacked()
    assert X.shape == (3 * 53, 704) and np.bincount(idx).tolist() == [53, 53, 53]

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(audio, "file_features", boom)
    again = extract_folder(folder, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.stacked()[0], X)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: not a cache hit
        extract_folder(folder, AudioFeatureConfig(n_mels=32), cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.skipif(not (SHARED / "dcase2023_clips").is_dir(), reason="needs ../shared/data/sound")
def test_real_clips_and_44k1_events() -> None:
    clip = sorted((SHARED / "dcase2023_clips").glob("fan_*.wav"))[0]
    f = file_features(clip)
    assert f.shape[1] == 704 and f.shape[0] > 500 and np.isfinite(f).all()
    event = sorted((SHARED / "dcase2016_office_events").glob("knock*.wav"))[0]
    assert sf.info(event).samplerate == 44_100
    y = read_audio(event)
    assert abs(y.size - round(sf.info(event).frames * 16_000 / 44_100)) <= 1
