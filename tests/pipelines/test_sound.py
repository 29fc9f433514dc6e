"""Folder of WAV files -> fitted, adapted AdaFlow -> per-file scores (flowad.pipelines.sound)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile", reason="the audio extra (soundfile, librosa) is not installed")
pytest.importorskip("librosa", reason="the audio extra (soundfile, librosa) is not installed")

from flowad import AdaFlow, load  # noqa: E402
from flowad.exceptions import InputError, ModelFileError, UnknownDomainError  # noqa: E402
from flowad.features.audio import AudioFeatureConfig, file_features  # noqa: E402
from flowad.pipelines.sound import SoundDetector, aggregate_frames, scan_sound_folder  # noqa: E402

SR = 16_000
#: The shared data sit in ``shared/`` inside the checkout or next to it (``../shared``, as in the README).
CLIPS = next(
    (p for p in (Path(__file__).resolve().parents[i] / "shared/data/sound/dcase2023_clips" for i in (2, 3)) if p.is_dir()),
    Path("shared/data/sound/dcase2023_clips"),
)
#: Small features keep the tests fast: 16 mel bands x (2 * 2 + 1) frames = 80 values.
SMALL = AudioFeatureConfig(n_mels=16, context=2)


def _hum(rng: np.random.Generator, f0: float, seconds: float, anomaly: bool) -> np.ndarray:
    """A machine-like hum: harmonics of ``f0`` in noise; anomalies add clicks."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3))
    y = y + 0.05 * rng.standard_normal(t.size)
    if anomaly:
        for start in rng.integers(0, t.size - 400, 6):
            y[start : start + 400] += 0.6 * rng.standard_normal(400)
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def _dcase_folder(root: Path, seconds: float = 1.0) -> Path:
    """``fan/{train,test}/section_00_<source|target>_<split>_<label>_NNNN_f0_<Hz>.wav``: the source
    hums at 120 Hz, the target at 300 Hz (a domain shift); 4 source + 2 target training files."""
    rng = np.random.default_rng(0)
    plan = [("source", "train", "normal", 120)] * 4 + [("target", "train", "normal", 300)] * 2
    plan += [("source", "test", "normal", 120), ("source", "test", "anomaly", 120)]
    plan += [("target", "test", "normal", 300), ("target", "test", "anomaly", 300)]
    for n, (dom, split, label, f0) in enumerate(plan):
        folder = root / "fan" / split
        folder.mkdir(parents=True, exist_ok=True)
        name = f"section_00_{dom}_{split}_{label}_{n:04d}_f0_{f0}.wav"
        sf.write(folder / name, _hum(rng, f0 * rng.uniform(0.97, 1.03), seconds, label == "anomaly"), SR)
    return root


def _small(epochs: int = 3) -> SoundDetector:
    return SoundDetector(AdaFlow(epochs=epochs, random_state=0), SMALL)


@pytest.fixture(scope="module")
def dcase(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dcase_folder(tmp_path_factory.mktemp("dcase"))


def test_scan_gives_domains_from_names(dcase: Path) -> None:
    table = scan_sound_folder(dcase)
    assert len(table) == 10
    assert set(table["domain"]) == {"fan/section_00/source", "fan/section_00/target"}
    assert set(scan_sound_folder(dcase, domain_by="section")["domain"]) == {"fan/section_00"}
    assert "fan/section_00/f0_120" in set(scan_sound_folder(dcase, domain_by="attributes")["domain"])
    assert set(scan_sound_folder(dcase, domain="mine")["domain"]) == {"mine"}
    with pytest.raises(InputError, match="machines found"):
        scan_sound_folder(dcase, machine="valve")


def test_fit_adapt_score_end_to_end(dcase: Path, tmp_path: Path) -> None:
    sd = _small().fit(dcase, adapt_target=True)
    # trained on the source, the target domain added by adaptation (forward passes only)
    assert sd.domains_ == ["fan/section_00/source", "fan/section_00/target"]
    assert (
        sd.detector.domain_counts_["fan/section_00/target"]
        == 2 * file_features(next((dcase / "fan/train").glob("*target*")), SMALL).shape[0]
    )
    scores = sd.score(dcase)
    assert len(scores) == 4 and set(scores["label"]) == {"normal", "anomaly"}
    assert np.isfinite(scores["score"]).all()
    # the clicked files score above the normal ones of their domain
    for dom, group in scores.groupby("domain"):
        assert group.loc[group["y"] == 1, "score"].min() > group.loc[group["y"] == 0, "score"].max(), dom
    # per-file score = mean of the frames' anomaly scores in the file's domain
    row = scores.iloc[0]
    frames = sd.detector.decision_function(file_features(row["path"], SMALL), domain=row["domain"])
    assert row["n_frames"] == frames.size
    assert row["score"] == pytest.approx(frames.mean(), rel=1e-6)
    # save / load keeps the feature settings, and scores the same
    path = tmp_path / "fan.flowad"
    sd.save(path)
    again = SoundDetector.load(path)
    assert again.config == SMALL and again.aggregate == "mean"
    np.testing.assert_allclose(again.score(dcase)["score"], scores["score"], rtol=1e-6)
    assert load(path).domains_ == sd.domains_  # still an ordinary flowad model file


def test_adapt_and_explicit_domain(dcase: Path) -> None:
    sd = _small(epochs=2).fit(dcase, adapt_target=False)  # both domains trained jointly
    assert sd.domains_ == ["fan/section_00/source", "fan/section_00/target"]
    sd.adapt(dcase / "fan" / "train", domain="pooled")
    assert sd.detector.domain_counts_["pooled"] == sum(
        file_features(p, SMALL).shape[0] for p in (dcase / "fan/train").glob("*.wav")
    )
    scores = sd.score(dcase, domain="pooled", split=None)
    assert len(scores) == 10 and set(scores["domain"]) == {"pooled"}
    with pytest.raises(UnknownDomainError, match="nowhere"):
        sd.score(dcase, domain="nowhere")


def test_section_domains_train_on_source_and_target(dcase: Path) -> None:
    sd = SoundDetector(AdaFlow(epochs=1, random_state=0), SMALL, domain_by="section").fit(dcase)
    train = sorted((dcase / "fan/train").glob("*.wav"))
    assert sd.domains_ == ["fan/section_00"]
    assert sd.detector.domain_counts_["fan/section_00"] == sum(file_features(p, SMALL).shape[0] for p in train)


def test_dcase2020_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split, label, n in [("train", "normal", 3), ("test", "normal", 1), ("test", "anomaly", 1)]:
        folder = tmp_path / "pump" / split
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            sf.write(folder / f"{label}_id_02_{k:08d}.wav", _hum(rng, 150, 1.0, label == "anomaly"), SR)
    sd = _small(epochs=2).fit(tmp_path)
    assert sd.domains_ == ["pump/id_02"]
    scores = sd.score(tmp_path)
    assert list(scores["y"]) == [1, 0] and np.isfinite(scores["score"]).all()


def test_aggregates() -> None:
    s = np.array([1.0, 2.0, 3.0, 10.0])
    assert aggregate_frames(s) == 4.0
    assert aggregate_frames(s, "median") == 2.5
    assert aggregate_frames(s, "max") == 10.0
    with pytest.raises(InputError, match="aggregate"):
        aggregate_frames(s, "sum")
    with pytest.raises(InputError, match="non-empty"):
        aggregate_frames(np.array([]))


def test_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="No audio files"):
        _small().fit(empty)
    silent = tmp_path / "silent" / "fan" / "train"
    silent.mkdir(parents=True)
    sf.write(silent / "section_00_source_train_normal_0000_a_1.wav", np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(InputError, match="silent"):
        _small().fit(tmp_path / "silent")
    broken = tmp_path / "broken" / "fan" / "train"
    broken.mkdir(parents=True)
    (broken / "section_00_source_train_normal_0000_a_1.wav").write_bytes(b"not a wav file")
    with pytest.raises(InputError, match="cannot be read as audio"):
        _small().fit(tmp_path / "broken")
    only_test = tmp_path / "only_test" / "fan" / "test"
    only_test.mkdir(parents=True)
    sf.write(
        only_test / "section_00_source_test_normal_0000_a_1.wav", _hum(np.random.default_rng(0), 100, 1.0, False), SR
    )
    with pytest.raises(InputError, match="No normal training files"):
        _small().fit(tmp_path / "only_test")
    with pytest.raises(InputError, match="domain_by"):
        SoundDetector(domain_by="room")


def test_save_writes_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings go into the manifest of the one write; the file is never read back."""
    from flowad.io import persistence

    det = AdaFlow(epochs=1, hidden=(8,), random_state=0).fit(np.random.default_rng(0).normal(size=(64, SMALL.n_features)))
    writes = []
    monkeypatch.setattr(persistence, "write_model_file", lambda *a: writes.append(a) or a[0])
    monkeypatch.setattr(persistence, "read_model_file", lambda *a: pytest.fail("save read the file back"))
    SoundDetector(det, SMALL, aggregate="max").save(tmp_path / "m.flowad")
    assert len(writes) == 1
    monkeypatch.undo()
    SoundDetector(det, SMALL, aggregate="max").save(tmp_path / "m.flowad")
    again = SoundDetector.load(tmp_path / "m.flowad")
    assert again.config == SMALL and again.aggregate == "max" and again.domains_ == ["default"]


def test_load_refuses_plain_models(tmp_path: Path) -> None:
    det = AdaFlow(epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        det.fit(np.random.default_rng(0).normal(size=(64, 3)))
    det.save(tmp_path / "plain.flowad")
    with pytest.raises(ModelFileError, match="not a machine-sound model"):
        SoundDetector.load(tmp_path / "plain.flowad")


@pytest.mark.skipif(not CLIPS.is_dir(), reason="the shared DCASE 2023 clips are not available")
def test_real_dcase2023_clips(tmp_path: Path) -> None:
    """The 28 real clips (16 kHz, 64 mel bands; one context frame each side to keep the test fast):
    fit on the 14 source training clips, one score per clip."""
    config = AudioFeatureConfig(context=1)
    sd = SoundDetector(AdaFlow(epochs=1, batch_size=2048, random_state=0), config, cache_dir=tmp_path / "cache")
    sd.fit(CLIPS)
    assert len(sd.domains_) == 7 and all(d.endswith("/source") for d in sd.domains_)
    parts = []
    for machine in sorted({d.split("/")[0] for d in sd.domains_}):
        sd.machine = machine  # the clips have no target training files: score each machine in its source domain
        parts.append(sd.score(CLIPS, domain=f"{machine}/section_00/source", split=None))
    sd.machine = None
    n_clips = len(list(CLIPS.glob("*.wav")))
    files = [f for p in parts for f in p["file"]]
    assert len(files) == n_clips == len(set(files))
    scores = np.concatenate([p["score"] for p in parts])
    assert np.isfinite(scores).all()
    assert all((p["n_frames"] > 500).all() for p in parts)  # 10-12 s at hop 256, minus the context
