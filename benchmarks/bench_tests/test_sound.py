"""The semi-synthetic sound benchmark: how domains and anomalies are made, the run, the report, the command."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from flowad_bench.mixing import power_db
from flowad_bench.sound import (
    EVENT_CLASSES,
    MACHINES,
    METHODS,
    NOISES,
    SoundBenchConfig,
    build_test_set,
    domain_audio,
    experiment_name,
    hvac_noise,
    load_material,
    published_results,
    run_sound_benchmark,
    sound_markdown,
)
from typer.testing import CliRunner

from flowad.cli import app
from flowad.exceptions import InputError

SR = 16_000
TINY = SoundBenchConfig(n_adapt=(10, 50), seeds=(0,), targets=(1,), epochs=2, finetune_epochs=1, audio_ae_epochs=1,
                        max_clips=2)
RECORDED = [n for n in NOISES if n != "hvac"]


def _write(path: Path, y: np.ndarray, sr: int = SR) -> None:
    sf.write(path, y.astype(np.float32), sr)


@pytest.fixture(scope="module")
def sound_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """7 machine types x 2 normal clips of 4 s (harmonic tones + noise) and one anomalous clip; 7 event classes at 44.1 kHz."""
    root = tmp_path_factory.mktemp("sound")
    clips, events = root / "clips", root / "events"
    clips.mkdir()
    events.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    for k, machine in enumerate(MACHINES + tuple(RECORDED)):
        f0 = 80.0 * (k + 1)
        for i in range(2):
            y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3)) + 0.1 * rng.normal(size=t.size)
            _write(clips / f"{machine}_train_section_00_source_train_normal_{i:04d}_a_{i}.wav", 0.1 * y)
        _write(clips / f"{machine}_test_section_00_source_test_anomaly_0009_a_0.wav", 0.1 * rng.normal(size=t.size))
    te = np.arange(int(0.2 * 44_100)) / 44_100
    for cls in EVENT_CLASSES + ("cough",):
        _write(events / f"{cls}001.wav", np.sin(2 * np.pi * 3000 * te) * np.hanning(te.size), 44_100)
    return clips, events


def test_hvac_noise_is_seeded_unit_variance_with_mains_hum() -> None:
    a = hvac_noise(4 * SR, SR, np.random.default_rng(3))
    b = hvac_noise(4 * SR, SR, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(1.0)
    spectrum = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(a.size, 1 / SR)
    hum = spectrum[np.argmin(np.abs(freqs - 50.0))]
    neighbours = spectrum[(freqs > 40) & (freqs < 60) & (np.abs(freqs - 50) > 2)]
    assert hum > 20 * np.median(neighbours)


def test_load_material_keeps_normal_clips_and_study_event_classes(sound_dirs: tuple[Path, Path]) -> None:
    material = load_material(*sound_dirs, TINY)
    assert set(material.clips) == set(MACHINES) | set(RECORDED)
    assert all(len(c) == 2 and c[0].size == 4 * SR for c in material.clips.values())  # the anomalous clip is skipped
    names = [n for n, _ in material.events]
    assert len(names) == len(EVENT_CLASSES) and not any(n.startswith("cough") for n in names)
    assert material.events[0][1].size == pytest.approx(0.2 * SR, abs=2)  # resampled from 44.1 kHz


def test_load_material_errors_name_what_is_missing(sound_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    clips, events = sound_dirs
    for p in clips.glob("gearbox_*"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    with pytest.raises(InputError, match="ToyCar"):
        load_material(tmp_path, events)
    empty = tmp_path / "no_events"
    empty.mkdir()
    _write(empty / "cough001.wav", np.ones(100))
    with pytest.raises(InputError, match="no event file"):
        load_material(clips, empty)


def test_domain_audio_splits_time_and_mixes_at_the_snr(sound_dirs: tuple[Path, Path]) -> None:
    material = load_material(*sound_dirs, TINY)
    cfg = replace(TINY, snr_db=5.0)
    train = domain_audio(material, "fan", "hvac", "train", 0, cfg)
    test = domain_audio(material, "fan", "hvac", "test", 0, cfg)
    cut = int(round(cfg.train_fraction * 4 * SR))
    assert [w.size for w in train] == [cut, cut] and [w.size for w in test] == [4 * SR - cut] * 2
    for w, clip in zip(train, material.clips["fan"], strict=True):
        signal = clip[:cut].astype(np.float64)
        assert power_db(signal) - power_db(w - signal) == pytest.approx(5.0, abs=0.1)
    again = domain_audio(material, "fan", "hvac", "train", 0, cfg)
    np.testing.assert_array_equal(train[0], again[0])
    other_seed = domain_audio(material, "fan", "bearing", "train", 1, cfg)
    assert not np.allclose(other_seed[0], domain_audio(material, "fan", "bearing", "train", 0, cfg)[0])


def test_test_set_pairs_each_normal_segment_with_an_event_at_the_anr(sound_dirs: tuple[Path, Path]) -> None:
    material = load_material(*sound_dirs, TINY)
    waves = domain_audio(material, "fan", "valve", "test", 0, TINY)
    test = build_test_set(material, waves, 0, 2, -10.0, TINY)
    n = len(test.y) // 2
    assert n > 0 and test.y[:n].sum() == 0 and test.y[n:].all()
    assert test.frames.shape[1] == TINY.features.n_features
    assert np.bincount(test.owner).min() > 0
    for normal, anomalous in zip(test.waves[:n], test.waves[n:], strict=True):
        event = anomalous.astype(np.float64) - normal
        span = np.abs(event) > 1e-6
        assert 0 < span.sum() <= 0.2 * SR + 2
        ratio = power_db(event[span]) - power_db(normal[span])
        assert ratio == pytest.approx(-10.0, abs=0.5)  # exact over the event's full span; its faded edges are cut here


def test_tiny_run_scores_every_method_and_resumes(sound_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    results = run_sound_benchmark(*sound_dirs, tmp_path, TINY, progress=False)
    expected = {experiment_name(a) for a in TINY.anr_db}
    assert set(results.experiment) == expected
    assert set(results.method) == set(METHODS)
    assert len(results) == len(expected) * len(TINY.n_adapt) * len(METHODS)
    assert results[["auroc", "pauc"]].notna().all().all()
    assert results[results.method.isin(["adaflow", "nf_finetuned", "nf_unadapted"])]["nll"].notna().all()
    adapted = results[results.method == "adaflow"]
    assert (adapted["adapt_seconds"] > 0).all()
    # the unadapted models do not depend on N
    un = results[results.method == "nf_unadapted"].groupby("experiment")["auroc"].nunique()
    assert (un == 1).all()
    stamp = (tmp_path / "results.csv").stat().st_mtime_ns
    again = run_sound_benchmark(*sound_dirs, tmp_path, TINY, progress=False)
    assert len(again) == len(results) and (tmp_path / "results.csv").stat().st_mtime_ns == stamp
    report = sound_markdown(again, TINY, "flowad bench sound ...", {})
    assert "semi-synthetic" in report.lower() and "study (published)" in report
    assert "AdaFlow against the other methods" in report and "issue" not in report.lower()
    pub = published_results()
    study = pub[(pub.experiment == experiment_name(-20.0)) & (pub.n_adapt == 10)].set_index("method")
    auroc_table = report[report.index("## AUROC, anr-20dB") : report.index("## pAUC")]
    assert "N=10 study (published)" in auroc_table
    for method, value in study["auroc"].items():  # each published AUROC sits in its method's row
        row = next(line for line in auroc_table.splitlines() if line.startswith(f"| {method} |"))
        assert f"{value:.3f}" in row


def test_same_seed_same_results_and_global_rngs_untouched(sound_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    cfg = replace(TINY, anr_db=(-10.0,), n_adapt=(10,))
    torch.manual_seed(123)
    np.random.seed(123)
    a = run_sound_benchmark(*sound_dirs, tmp_path / "a", cfg, progress=False)
    after_torch, after_np = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    np.testing.assert_array_equal(after_torch.numpy(), torch.rand(3).numpy())
    np.testing.assert_array_equal(after_np, np.random.rand(3))
    b = run_sound_benchmark(*sound_dirs, tmp_path / "b", cfg, progress=False)
    pd.testing.assert_frame_equal(a.drop(columns="adapt_seconds"), b.drop(columns="adapt_seconds"))


def test_bad_target_rotation_is_refused(sound_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="rotation"):
        run_sound_benchmark(*sound_dirs, tmp_path, replace(TINY, targets=(4,)), progress=False)


def test_command_quick_run_writes_table(sound_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    clips, events = sound_dirs
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["bench", "sound", "--clips", str(clips), "--events", str(events), "--out", str(out),
                                   "--quick", "--no-audio-ae", "--anr", "-10", "--no-progress"])
    assert res.exit_code == 0, res.output
    table = (out / "table.md").read_text()
    assert "anr-10dB" in table and "Command: `flowad" in table
    assert (out / "auroc.png").stat().st_size > 1000
    rows = pd.read_csv(out / "results.csv")
    assert set(rows.method) == set(METHODS) - {"audio_ae"}
    missing = CliRunner().invoke(app, ["bench", "sound", "--clips", str(tmp_path / "nope"), "--events", str(events),
                                       "--out", str(out / "x"), "--quick"])
    assert missing.exit_code == 2 and "flowad: error:" in missing.output
