"""Vibration snapshot features and the FEMTO / PRONOSTIA reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowad.exceptions import InputError
from flowad.features.vibration import (
    VibrationFeatureConfig,
    feature_names,
    femto_features,
    read_femto_snapshot,
    snapshot_features,
)

FEMTO = Path(__file__).resolve().parents[3] / "shared" / "data" / "vibration" / "femto_pronostia"
FS = 25_600.0


def _tone(freq: float, amp: float = 1.0, n: int = 2560) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / FS)


def test_shape_and_names() -> None:
    x = np.stack([_tone(1000.0), _tone(3000.0, 0.1)], axis=1)
    f = snapshot_features(x)
    assert f.shape == (70,)
    assert len(feature_names(2)) == 70
    assert feature_names(2)[32] == "h_log_rms" and feature_names(2)[-1] == "v_log_crest"


@pytest.mark.parametrize("freq", [120.0, 1000.0, 5000.0])
def test_tone_lands_in_its_band(freq: float) -> None:
    x = np.stack([_tone(freq), _tone(freq)], axis=1)
    f = snapshot_features(x)
    edges = np.geomspace(50.0, 12_800.0, 33)
    expected = int(np.searchsorted(edges, freq, side="right") - 1)
    assert int(np.argmax(f[:32])) == expected
    assert int(np.argmax(f[35:67])) == expected


def test_time_domain_statistics_of_a_sine() -> None:
    amp = 2.0
    x = np.stack([_tone(1000.0, amp), _tone(1000.0, amp)], axis=1)
    f = snapshot_features(x)
    np.testing.assert_allclose(f[32], np.log(amp / np.sqrt(2)), atol=1e-6)  # log RMS
    np.testing.assert_allclose(f[33], np.log(1.5), atol=1e-3)  # kurtosis of a sine = 3/2
    np.testing.assert_allclose(f[34], np.log(np.sqrt(2)), atol=1e-3)  # crest factor


def test_silent_axis_stays_finite() -> None:
    x = np.stack([_tone(1000.0), np.zeros(2560)], axis=1)
    assert np.isfinite(snapshot_features(x)).all()


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="shape"):
        snapshot_features(np.zeros(2560))
    with pytest.raises(InputError, match="NaN"):
        snapshot_features(np.full((2560, 2), np.nan))
    with pytest.raises(InputError, match="no FFT bin"):
        snapshot_features(np.zeros((256, 2)))
    with pytest.raises(InputError, match="f_max"):
        snapshot_features(np.zeros((2560, 2)), VibrationFeatureConfig(f_max=20_000.0))


def _write(path: Path, data: np.ndarray, sep: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = np.column_stack([np.zeros((data.shape[0], 4)), data])
    np.savetxt(path, cols, delimiter=sep, fmt="%.5g")


@pytest.mark.parametrize("sep", [",", ";"])
def test_reader_detects_separator(tmp_path: Path, sep: str) -> None:
    data = np.column_stack([_tone(500.0), _tone(700.0)])
    _write(tmp_path / "acc.csv", data, sep)
    np.testing.assert_allclose(read_femto_snapshot(tmp_path / "acc.csv"), data, atol=1e-4)


def test_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    root = tmp_path / "femto"
    rng = np.random.default_rng(0)
    lines = ["path,bearing,condition,rpm,load_N,snapshot_idx,life_snapshots,life_fraction,label"]
    for k in range(3):
        _write(root / f"B/acc_{k}.csv", rng.normal(size=(2560, 2)), ",")
        lines.append(f"B/acc_{k}.csv,B,C1,1800,4000,{k},3,{k / 2},0")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    cache = tmp_path / "out" / "features.npz"
    index, X = femto_features(root, cache)
    assert X.shape == (3, 70) and len(index) == 3 and cache.is_file()
    (root / "B/acc_0.csv").unlink()  # a cache hit does not read the files again
    _, X2 = femto_features(root, cache)
    np.testing.assert_array_equal(X, X2)
    with pytest.raises(FileNotFoundError):  # other settings: the key differs, files are read
        femto_features(root, cache, config=VibrationFeatureConfig(n_bands=16))


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="index.csv"):
        femto_features(tmp_path)


@pytest.mark.skipif(not FEMTO.is_dir(), reason="needs ../shared/data/vibration/femto_pronostia")
def test_real_files_both_separators() -> None:
    comma = read_femto_snapshot(FEMTO / "Learning_set/Bearing1_1/acc_00142.csv")
    semi_dir = FEMTO / "Full_Test_Set/Bearing1_4"
    semi = read_femto_snapshot(sorted(semi_dir.iterdir())[0])
    for x in (comma, semi):
        assert x.shape == (2560, 2)
        f = snapshot_features(x)
        assert f.shape == (70,) and np.isfinite(f).all()
