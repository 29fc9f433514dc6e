"""Model files: code-free, versioned, integrity-checked, atomically written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import flowad
from flowad import ModelFileError, RealNVP, RobustRealNVP, TrimRealNVP, load
from flowad.io import model_file

FAST = {"n_couplings": 2, "hidden": (8,), "epochs": 3}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(120, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]


@pytest.mark.parametrize("cls", [RealNVP, TrimRealNVP, RobustRealNVP])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_gives_identical_scores(cls: type, dtype: str, X: np.ndarray, tmp_path: Path) -> None:
    det = cls(**FAST, dtype=dtype, random_state=0).fit(X)
    path = tmp_path / "m.flowad"
    det.save(path)
    for loaded in (load(path), cls.load(path)):
        assert type(loaded) is cls
        assert loaded.get_params() == {**det.get_params(), "device": "cpu"}
        np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))
        np.testing.assert_array_equal(loaded.predict(X), det.predict(X))
        assert loaded.threshold_ == det.threshold_
        np.testing.assert_array_equal(loaded.decision_scores_, det.decision_scores_)
        assert loaded.history_ == det.history_


def test_feature_names_and_constant_columns_survive(X: np.ndarray, tmp_path: Path) -> None:
    df = pd.DataFrame(np.column_stack([X, np.zeros(len(X))]), columns=["a", "b", "c", "zero"])
    with pytest.warns(UserWarning, match="constant"):
        det = RobustRealNVP(**FAST, random_state=0).fit(df)
    det.save(tmp_path / "m.flowad")
    loaded = load(tmp_path / "m.flowad")
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "zero"]
    assert loaded.constant_features_.tolist() == [False, False, False, True]
    np.testing.assert_array_equal(loaded.score_samples(df), det.score_samples(df))


def test_file_is_plain_safetensors_with_a_json_manifest(X: np.ndarray, tmp_path: Path) -> None:
    RobustRealNVP(**FAST, random_state=0).fit(X).save(tmp_path / "m.flowad")
    data = (tmp_path / "m.flowad").read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    manifest = json.loads(header["__metadata__"]["flowad"])
    assert manifest["format"] == "flowad-model" and manifest["kind"] == "robust-realnvp"
    assert manifest["flowad_version"] == flowad.__version__ and manifest["n_features_in"] == 3
    assert manifest["params"]["lipschitz_k"] == 1.0
    assert b"pickle" not in data and b"\x80\x04\x95" not in data  # no pickle protocol-4 stream


def test_wrong_class_is_refused(X: np.ndarray, tmp_path: Path) -> None:
    RealNVP(**FAST, random_state=0).fit(X).save(tmp_path / "m.flowad")
    with pytest.raises(ModelFileError, match="holds a 'realnvp' model, not a 'robust-realnvp' one.*RealNVP.load"):
        RobustRealNVP.load(tmp_path / "m.flowad")


def test_truncated_file_is_detected(X: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    RealNVP(**FAST, random_state=0).fit(X).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelFileError, match="not a readable flowad model file"):
        load(path)


def test_tampered_weights_are_detected(X: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    RealNVP(**FAST, random_state=0).fit(X).save(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="integrity check"):
        load(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable"),
        (b"garbage that is not a model", "not a readable"),
        (b"\x80\x04\x95pickle-ish", "not a readable"),
    ],
)
def test_foreign_files_are_refused(content: bytes, match: str, tmp_path: Path) -> None:
    path = tmp_path / "x.flowad"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=match):
        load(path)


def test_safetensors_without_manifest_is_refused(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match="not a flowad model"):
        load(tmp_path / "other.safetensors")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "nope.flowad")


def test_newer_format_is_refused_with_upgrade_advice(tmp_path: Path) -> None:
    path = tmp_path / "future.flowad"
    model_file.write_model_file(path, {"w": torch.zeros(1)}, {"kind": "realnvp"})
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    manifest = json.loads(header["__metadata__"]["flowad"])
    manifest["format_version"] = model_file.FORMAT_VERSION + 1
    header["__metadata__"]["flowad"] = json.dumps(manifest)
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    path.write_bytes(len(new_header).to_bytes(8, "little") + new_header + data[8 + n :])
    newer, current = model_file.FORMAT_VERSION + 1, model_file.FORMAT_VERSION
    with pytest.raises(ModelFileError, match=rf"uses model-file format {newer}.*reads formats 1 to {current}\. Upgrade flowad"):
        load(path)


def test_failed_save_keeps_the_previous_model(X: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.flowad"
    old = RealNVP(**FAST, random_state=0).fit(X)
    old.save(path)
    before = path.read_bytes()
    new = RealNVP(**FAST, random_state=1).fit(X)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(model_file.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.flowad"]  # no temporary file left behind
    np.testing.assert_array_equal(load(path).decision_function(X), old.decision_function(X))


def test_version_drift_warns(X: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.flowad"
    RealNVP(**FAST, random_state=0).fit(X).save(path)
    monkeypatch.setattr(flowad._version, "__version__", "99.0.0")
    with pytest.warns(UserWarning, match=r"written by flowad 0\.1\.0; loading it with 99\.0\.0"):
        load(path)


def test_save_to_missing_folder_is_clear(X: np.ndarray, tmp_path: Path) -> None:
    det = RealNVP(**FAST, random_state=0).fit(X)
    with pytest.raises(ModelFileError, match="does not exist"):
        det.save(tmp_path / "no" / "such" / "m.flowad")
