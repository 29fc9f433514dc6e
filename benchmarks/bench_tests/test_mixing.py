"""Mixing at a requested SNR / ANR gives that power ratio within 0.1 dB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flowad_bench.mixing import add_at_anr, mix_at_snr, power_db

from flowad.exceptions import InputError

SOUND = Path(__file__).resolve().parents[3] / "shared" / "data" / "sound"


@pytest.mark.parametrize("snr", [-10.0, 0.0, 6.0, 20.0])
def test_snr(snr: float, rng: np.random.Generator) -> None:
    s = np.sin(np.arange(16_000) * 0.05) + 0.1 * rng.normal(size=16_000)
    v = rng.laplace(size=5_000)  # shorter: tiled
    mixed = mix_at_snr(s, v, snr)
    assert abs(power_db(s) - power_db(mixed - s) - snr) < 0.1


@pytest.mark.parametrize("anr", [-20.0, -6.0, 0.0])
def test_anr(anr: float, rng: np.random.Generator) -> None:
    x = rng.normal(size=16_000) * np.linspace(0.5, 2.0, 16_000)  # non-stationary: the span matters
    e = rng.normal(size=2_000)
    out = add_at_anr(x, e, anr, start=9_000)
    added = out - x
    assert np.all(added[:9_000] == 0) and np.all(added[11_000:] == 0)
    assert abs(power_db(added[9_000:11_000]) - power_db(x[9_000:11_000]) - anr) < 0.1


def test_errors(rng: np.random.Generator) -> None:
    with pytest.raises(InputError, match="silent"):
        mix_at_snr(rng.normal(size=100), np.zeros(100), 0.0)
    with pytest.raises(InputError, match="fits"):
        add_at_anr(rng.normal(size=100), rng.normal(size=50), -20.0, start=60)
    with pytest.raises(InputError, match="1-D"):
        mix_at_snr(np.ones((2, 2)), np.ones(4), 0.0)


@pytest.mark.skipif(not SOUND.is_dir(), reason="needs ../shared/data/sound")
def test_real_event_into_real_clip() -> None:
    pytest.importorskip("librosa", reason="the audio extra is not installed")
    from flowad.features.audio import read_audio

    clip = read_audio(sorted((SOUND / "dcase2023_clips").glob("fan_train_*.wav"))[0])
    event = read_audio(sorted((SOUND / "dcase2016_office_events").glob("doorslam*.wav"))[0])  # 44.1 kHz -> 16 kHz
    out = add_at_anr(clip, event, -20.0, start=16_000)
    seg = slice(16_000, 16_000 + event.size)
    assert abs(power_db((out - clip)[seg]) - power_db(clip[seg]) + 20.0) < 0.1
