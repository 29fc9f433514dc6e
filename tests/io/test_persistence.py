"""Detector model files (flowad.io.persistence): the kind registry, the state hooks, old files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import flowad
from flowad import AdaFlow, ModelFileError, RealNVP, RobustRealNVP
from flowad.detectors import DETECTOR_REGISTRY, BatchNormFlow
from flowad.detectors._base import register as register_from_detectors
from flowad.io import model_file, persistence

DATA = Path(__file__).parent / "data"
FAST = {"n_couplings": 2, "hidden": (8,), "epochs": 2, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(80, 3))


def test_registry_is_one_table_known_by_kind() -> None:
    assert DETECTOR_REGISTRY is persistence.REGISTRY
    assert register_from_detectors is persistence.register
    assert {"realnvp", "trim-realnvp", "robust-realnvp", "adaflow", "batchnorm-flow"} <= set(persistence.REGISTRY)
    assert persistence.REGISTRY["robust-realnvp"] is RobustRealNVP and RobustRealNVP._kind == "robust-realnvp"
    assert "autoencoder" not in persistence.REGISTRY  # a benchmark baseline, not a library model


def test_params_round_trip_through_json() -> None:
    params = RobustRealNVP(hidden=(16, 8), random_state=np.random.default_rng(0)).get_params()
    stored = persistence.params_to_json(params)
    assert stored["hidden"] == [16, 8] and stored["random_state"] is None
    assert persistence.params_from_json(stored)["hidden"] == (16, 8)


@pytest.mark.parametrize(
    "name",
    ["robust-realnvp", "adaflow", "batchnorm-flow"],
)
def test_files_of_flowad_0_1_0_still_load_and_score_the_same(name: str) -> None:
    """Written before save/load moved to flowad.io (tests/io/data, float64 models)."""
    ref = np.load(DATA / "scores-0.1.0.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a newer flowad version warns that it reads an older file
        det = flowad.load(DATA / f"{name}-0.1.0.flowad")
    assert type(det)._kind == name
    key = {"robust-realnvp": "robust", "adaflow": "adaflow", "batchnorm-flow": "batchnorm"}[name]
    scores = det.decision_function(ref["X"]) if name == "robust-realnvp" else det.decision_function(ref["X"], domain="c")
    np.testing.assert_allclose(scores, ref[key], rtol=1e-9, atol=1e-9)


def test_a_file_with_the_cholesky_whitening_of_before_still_loads_and_scores_the_same() -> None:
    """Written by the default RobustRealNVP when its whitening was ``W = L^{-1}`` (lower
    triangular) and the layer kept no log-determinant: the same scores from the stored ``W``."""
    ref = np.load(DATA / "scores-cholesky-whitening-0.1.0.npz")
    det = flowad.load(DATA / "robust-realnvp-cholesky-whitening-0.1.0.flowad")
    weight = det.flow_.bijection.layers[0].weight
    assert torch.equal(weight, torch.tril(weight)) and not torch.equal(weight, torch.diag(torch.diagonal(weight)))
    np.testing.assert_allclose(det.decision_function(ref["X"]), ref["robust"], rtol=1e-5, atol=1e-5)


def test_a_file_is_written_in_one_go_with_extra_state(X: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    det = RealNVP(**FAST).fit(X)
    writes = []
    real = persistence.write_model_file
    monkeypatch.setattr(persistence, "write_model_file", lambda *a: writes.append(a) or real(*a))
    persistence.save_detector(det, tmp_path / "m.flowad", extra=({"extra.w": torch.ones(2)}, {"note": {"by": "test"}}))
    assert len(writes) == 1
    back, manifest = persistence.read_detector(tmp_path / "m.flowad")
    assert manifest["note"] == {"by": "test"} and manifest["kind"] == "realnvp"
    assert list(manifest)[4:7] == ["kind", "params", "n_features_in"]  # after format, version, flowad and torch versions
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))
    tensors, _ = model_file.read_model_file(tmp_path / "m.flowad")
    assert torch.equal(tensors["extra.w"], torch.ones(2))


@pytest.mark.parametrize("extra", [({}, {"kind": "other"}), ({}, {"threshold": 1.0}), ({"prep.mean": torch.zeros(3)}, {})])
def test_extra_state_cannot_overwrite_the_detector(extra: persistence.State, X: np.ndarray, tmp_path: Path) -> None:
    det = RealNVP(**FAST).fit(X)
    with pytest.raises(ValueError, match="would overwrite"):
        persistence.save_detector(det, tmp_path / "m.flowad", extra=extra)
    assert not (tmp_path / "m.flowad").exists()


def test_unregistered_detectors_cannot_be_saved(X: np.ndarray, tmp_path: Path) -> None:
    class Mine(RealNVP):
        _kind = ""

    det = Mine(**FAST).fit(X)
    with pytest.raises(ModelFileError, match="Mine is not a registered flowad model kind"):
        det.save(tmp_path / "m.flowad")


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    """e.g. a file of the autoencoder baseline that left the library."""
    model_file.write_model_file(tmp_path / "ae.flowad", {"w": torch.zeros(1)}, {"kind": "autoencoder", "params": {}})
    for call in (lambda: flowad.load(tmp_path / "ae.flowad"), lambda: RealNVP.load(tmp_path / "ae.flowad")):
        with pytest.raises(ModelFileError, match=r"holds a 'autoencoder' model.*known kinds: \['adaflow'"):
            call()


def test_wrong_class_names_the_right_one(X: np.ndarray, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        AdaFlow(**{k: v for k, v in FAST.items() if k != "n_couplings"}).fit(X).save(tmp_path / "a.flowad")
    with pytest.raises(ModelFileError, match="not a 'batchnorm-flow' one; load it with AdaFlow.load or flowad.load"):
        BatchNormFlow.load(tmp_path / "a.flowad")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t, m: m.pop("n_features_in"), "does not describe a valid 'realnvp' model: 'n_features_in'"),
        (lambda t, m: t.update({"prep.mean": torch.zeros(5, dtype=torch.float64)}), "standardization shapes do not match 3"),
        (lambda t, m: m["params"].update({"epochs": 0}), "epochs must be an int >= 1"),
        (lambda t, m: t.pop(next(k for k in t if k.startswith("flow."))), "valid 'realnvp' model: Error.*state_dict"),
    ],
)
def test_inconsistent_files_name_the_path_and_the_problem(change: object, match: str, X: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    RealNVP(**FAST).fit(X).save(path)
    tensors, manifest = model_file.read_model_file(path)
    change(tensors, manifest)
    model_file.write_model_file(path, tensors, {k: v for k, v in manifest.items() if k not in ("format", "format_version", "digest")})
    with pytest.raises(ModelFileError, match=match) as err:
        flowad.load(path)
    assert str(path) in str(err.value)
