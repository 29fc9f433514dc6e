"""Machine-sound file-name parsers: every naming scheme, the real DCASE 2023 clips, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flowad.exceptions import InputError
from flowad.features.machine_sound import parse_attributes, parse_sound_path, scan_machine_sound

CLIPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "sound" / "dcase2023_clips"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("dev/ToyCar/train/normal_id_01_00000000.wav", ("ToyCar", "01", None, "train", "normal", 0, "ToyCar/id_01", "dcase2020")),
        ("valve/test/anomaly_id_06_00000123.wav", ("valve", "06", None, "test", "anomaly", 1, "valve/id_06", "dcase2020")),
        ("anomaly_id_00_00000001.wav", (None, "00", None, None, "anomaly", 1, "unknown/id_00", "dcase2020")),
        (
            "fan/train/section_02_target_train_normal_0003_m-n_W.wav",
            ("fan", "02", "target", "train", "normal", 0, "fan/section_02/target", "dcase2021"),
        ),
        (
            "x/bearing_test_section_00_source_test_anomaly_0021_vel_8_loc_G.wav",
            ("bearing", "00", "source", "test", "anomaly", 1, "bearing/section_00/source", "dcase2021"),
        ),
        ("slider/test/section_03_0042.wav", ("slider", "03", None, "test", None, -1, "slider/section_03/unknown", "dcase2021")),
        ("section_00_source_train_normal_0000.wav", (None, "00", "source", "train", "normal", 0, "unknown/section_00/source", "dcase2021")),
    ],
)
def test_synthetic_names(path: str, expected: tuple) -> None:
    i = parse_sound_path(path)
    assert (i.machine, i.section, i.domain, i.split, i.label, i.y, i.domain_name, i.naming) == expected


def test_attributes() -> None:
    assert parse_attributes("car_C2_spd_34V_mic_1") == {"car": "C2", "spd": "34V", "mic": "1"}
    assert parse_attributes("volt_1.5_wt_130") == {"volt": "1.5", "wt": "130"}
    assert parse_attributes("A1Spd28VMic1") == {"raw": "A1Spd28VMic1"}
    assert parse_attributes(None) == {}
    assert parse_sound_path("gearbox/train/section_00_source_train_normal_0073_volt_1.5_wt_0.wav").attributes == {"volt": "1.5", "wt": "0"}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="matches no machine-sound naming"):
        parse_sound_path("fan/train/recording_12.wav")
    with pytest.raises(InputError, match="disagree"):
        parse_sound_path("fan/test/section_00_source_train_normal_0001.wav")
    with pytest.raises(InputError, match="No audio files"):
        scan_machine_sound(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        scan_machine_sound(tmp_path / "missing")


def test_scan_layout_and_skip(tmp_path: Path) -> None:
    for rel in ["ToyCar/train/normal_id_01_00000000.wav", "ToyCar/test/anomaly_id_01_00000000.wav", "pump/train/odd.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    with pytest.raises(InputError, match="odd.wav"):
        scan_machine_sound(tmp_path)
    with pytest.warns(UserWarning, match="Skipped 1 file"):
        frame = scan_machine_sound(tmp_path, strict=False)
    assert frame.split.tolist() == ["test", "train"] and frame.y.tolist() == [1, 0]


@pytest.mark.skipif(not CLIPS.is_dir(), reason="needs ../shared/data/sound/dcase2023_clips")
def test_real_dcase2023_clips_match_their_index() -> None:
    frame = scan_machine_sound(CLIPS)
    truth = pd.read_csv(CLIPS / "index.csv", dtype=str)
    assert len(frame) == len(truth) == 28
    frame["file"] = frame.path.map(lambda p: Path(p).name)
    merged = truth.merge(frame, on="file", suffixes=("_truth", ""))
    assert len(merged) == 28
    for col in ("machine", "section", "domain", "split", "label"):
        assert (merged[col] == merged[f"{col}_truth"]).all(), col
    assert (merged.attributes.map(lambda a: "_".join(f"{k}_{v}" for k, v in a.items())) == merged.attributes_truth).all()
    assert frame.y.sum() == 5 and (frame.domain == "target").sum() == 8
    assert frame.domain_name.nunique() == (truth.machine + truth.domain).nunique()
