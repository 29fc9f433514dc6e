"""Model files are tamper-evident as a whole (manifest and tensors) and their manifest is
validated before anything is built; load's messages name the real problem."""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import flowad
from flowad import AdaFlow, InputError, ModelFileError, RealNVP, RobustRealNVP
from flowad.detectors import BatchNormFlow
from flowad.io import model_file, persistence

DATA = Path(__file__).parent / "data"
FAST = {"n_couplings": 2, "hidden": (8,), "epochs": 2, "random_state": 0, "device": "cpu"}
ADA = {"hidden": (8,), "epochs": 2, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(80, 3))


@pytest.fixture()
def saved(X: np.ndarray, tmp_path: Path) -> Path:
    path = tmp_path / "m.flowad"
    RealNVP(**FAST).fit(X).save(path)
    return path


@pytest.fixture()
def saved_adaflow(X: np.ndarray, tmp_path: Path) -> Path:
    path = tmp_path / "a.flowad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few rows per domain
        AdaFlow(**ADA).fit(np.vstack([X, X + 3]), domains=["a"] * 80 + ["b"] * 80).save(path)
    return path


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def rewrite(path: Path, edit: Callable[[str], str], *, resign: bool = False) -> None:
    """Replace the manifest text by ``edit(text)``, as a hand edit would (``resign``: also
    recompute the manifest digest, as someone deliberately forging a file would)."""
    header, body = _split(path.read_bytes())
    text = edit(header["__metadata__"]["flowad"])
    header["__metadata__"]["flowad"] = text
    if resign:
        header["__metadata__"]["flowad.sha256"] = hashlib.sha256(text.encode()).hexdigest()
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        manifest = json.loads(text)
        change(manifest)
        return json.dumps(manifest)

    return edit


# ------------------------------------------------------------------------------------ tampering
@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(threshold=m["threshold"] + 1.0),
        lambda m: m.update(kind="trim-realnvp"),
        lambda m: m.update(feature_names_in=["a", "b", "c"]),
        lambda m: m["params"].update(contamination=0.3),
        lambda m: m.update(flowad_version="0.0.9"),
    ],
    ids=["threshold", "kind", "feature-names", "params", "version"],
)
def test_any_manifest_edit_is_detected(change: Callable[[dict[str, Any]], None], saved: Path) -> None:
    rewrite(saved, edit_manifest(change))
    with pytest.raises(ModelFileError, match="integrity check: its manifest.*modified or corrupted"):
        flowad.load(saved)


def test_threshold_edited_to_nan_is_detected(saved: Path) -> None:
    rewrite(saved, edit_manifest(lambda m: m.update(threshold=float("nan"))))  # json.dumps writes NaN
    with pytest.raises(ModelFileError, match="modified or corrupted"):
        flowad.load(saved)


def test_swapped_adaflow_domain_names_are_detected(saved_adaflow: Path) -> None:
    rewrite(saved_adaflow, edit_manifest(lambda m: m.update(domains=m["domains"][::-1])))
    with pytest.raises(ModelFileError, match="integrity check.*modified or corrupted"):
        flowad.load(saved_adaflow)


def test_an_edit_claiming_the_unsigned_format_1_is_detected(saved: Path) -> None:
    rewrite(saved, edit_manifest(lambda m: m.update(format_version=1, threshold=-1e9)))
    with pytest.raises(ModelFileError, match="integrity check: its manifest"):
        flowad.load(saved)


def test_removed_manifest_digest_is_detected(saved: Path) -> None:
    header, body = _split(saved.read_bytes())
    del header["__metadata__"]["flowad.sha256"]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    saved.write_bytes(len(raw).to_bytes(8, "little") + raw + body)
    with pytest.raises(ModelFileError, match="integrity check"):
        flowad.load(saved)


def test_new_files_use_the_current_format_and_round_trip(saved: Path, X: np.ndarray) -> None:
    tensors, manifest = model_file.read_model_file(saved)
    assert manifest["format_version"] == model_file.FORMAT_VERSION == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a current file loads without any warning
        flowad.load(saved).decision_function(X)


def test_format_1_files_load_with_an_unsigned_manifest_warning() -> None:
    with pytest.warns(UserWarning, match="format 1, whose manifest .* is not covered by the integrity check"):
        det = flowad.load(DATA / "robust-realnvp-0.1.0.flowad")
    assert type(det) is RobustRealNVP


@pytest.mark.parametrize("version", ["1", 1.0, None, 0, -1, True, [1]])
def test_invalid_format_version_is_not_an_upgrade_problem(version: Any, saved: Path) -> None:
    rewrite(saved, edit_manifest(lambda m: m.update(format_version=version)))
    with pytest.raises(ModelFileError, match="invalid format version") as err:
        flowad.load(saved)
    assert "Upgrade" not in str(err.value)


# ------------------------------------------------------------------ validation before building
def test_a_small_file_asking_for_a_huge_network_fails_fast(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert saved.stat().st_size < 20_000
    rewrite(saved, edit_manifest(lambda m: m["params"].update(hidden=[4096, 4096])), resign=True)
    built = []
    monkeypatch.setattr(RealNVP, "_restore_flow", lambda *a: built.append(a))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"ask for a network of at least 33,570,816 weights.*modified or corrupted"):
        flowad.load(saved)
    assert time.perf_counter() - start < 1.0 and not built


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["params"].update(n_couplings=10**9), "at least 1.* weights"),
        (lambda m: m["params"].update(hidden=[8] * 5000), "at least .* weights"),
        (lambda m: (m["params"].pop("hidden"), m["params"].update(n_couplings=10**7)), "at least 10,000,000 weights"),
        (lambda m: m.update(n_features_in=10**8), "100,000,000 features but only"),
        (lambda m: m.update(n_features_in="3"), "'n_features_in' must be an int >= 1"),
        (lambda m: m.update(n_features_in=True), "'n_features_in' must be an int >= 1"),
        (lambda m: m.update(feature_names_in=["a", "b"]), "'feature_names_in' must be null or a list of 3 strings"),
        (lambda m: m.update(feature_names_in=[1, 2, 3]), "'feature_names_in' must be null or a list of 3 strings"),
        (lambda m: m.update(threshold="1.5"), "'threshold' must be a finite number"),
        (lambda m: m.update(threshold=None), "'threshold' must be a finite number"),
        (lambda m: m.update(kind=["realnvp"]), "'kind' must be a string"),
        (lambda m: m.update(params=[1, 2]), "'params' must be an object"),
        (lambda m: m["params"].update(hidden={"deep": [8]}), "hyper-parameter 'hidden' must be"),
        (lambda m: m.update(digest=None), "'digest' must be a string"),
        (lambda m: m.update(flowad_version=1), "'flowad_version' must be a string"),
    ],
)
def test_forged_manifests_are_refused_before_building(change: Callable[[dict[str, Any]], None], match: str, saved: Path) -> None:
    rewrite(saved, edit_manifest(change), resign=True)
    with pytest.raises(ModelFileError, match=match) as err:
        flowad.load(saved)
    assert str(saved) in str(err.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: re.sub(r'"threshold": [^,}]+', '"threshold": NaN', t), "NaN is not allowed"),
        (lambda t: re.sub(r'"threshold": [^,}]+', '"threshold": Infinity', t), "Infinity is not allowed"),
        (lambda t: re.sub(r'"threshold": [^,}]+', '"threshold": 1e999', t), "out of the float range"),
        (lambda t: t.replace('"lr": ', '"lr": -Infinity, "x": '), "-Infinity is not allowed"),
        (lambda t: t.replace('"threshold": ', '"threshold": ' + "9" * 5000 + ', "x": '), "corrupt flowad manifest"),
        (lambda t: t[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested 100001 levels deep"),
        (lambda t: t[:-1] + ', "deep": ' + "{" * 100_000 + "}", "nested 100001 levels deep"),
        (lambda t: t[:-1] + ', "deep": "' + "[" * 1000 + '"}', None),  # brackets inside a string are text
        (lambda t: t[:20], "corrupt flowad manifest"),
    ],
)
def test_manifest_json_is_parsed_safely(edit: Callable[[str], str], match: str | None, saved: Path) -> None:
    rewrite(saved, edit, resign=True)
    if match is None:
        flowad.load(saved)
        return
    with pytest.raises(ModelFileError, match=match):
        flowad.load(saved)


def test_parse_json_depth_limit_and_message() -> None:
    assert model_file.parse_json('{"a": [[[1]]]}', "x") == {"a": [[[1]]]}
    assert model_file.parse_json('["[[[", "\\"[["]', "x", max_depth=1) == ["[[[", '"[[']
    with pytest.raises(ModelFileError, match="what: nested 3 levels deep, more than the 2"):
        model_file.parse_json("[[[]]]", "what", max_depth=2)
    with pytest.raises(ModelFileError, match="more than the 10 accepted"):
        model_file.parse_json("[" + "1," * 10 + "1]", "what", max_bytes=10)


def test_non_finite_tensors_are_refused(saved_adaflow: Path) -> None:
    tensors, manifest = model_file.read_model_file(saved_adaflow)
    tensors["domains.thresholds"][0] = float("nan")
    model_file.write_model_file(saved_adaflow, tensors, manifest)  # a validly signed file with a NaN threshold
    with pytest.raises(ModelFileError, match="non-finite values in tensor 'domains.thresholds'"):
        flowad.load(saved_adaflow)


def test_writing_a_non_finite_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="finite numbers only"):
        model_file.write_model_file(tmp_path / "m.flowad", {"w": torch.zeros(1)}, {"threshold": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_the_size_bound_holds_for_every_real_architecture(X: np.ndarray, tmp_path: Path) -> None:
    """The lower bound never refuses a genuine file (default widths, couplings and layers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dets = [
            RobustRealNVP(epochs=1, random_state=0, device="cpu").fit(X),
            RealNVP(n_couplings=3, hidden=(16, 4, 16), epochs=1, random_state=0, device="cpu").fit(X),
            AdaFlow(epochs=1, random_state=0, device="cpu").fit(X, domains=["a"] * 40 + ["b"] * 40),
            AdaFlow(n_layers=3, n_couplings=2, epochs=1, random_state=0, device="cpu").fit(X, domains=["a"] * 40 + ["b"] * 40),
            BatchNormFlow(epochs=1, random_state=0, device="cpu").fit(X, domains=["a"] * 40 + ["b"] * 40),
        ]
    for i, det in enumerate(dets):
        det.save(tmp_path / f"{i}.flowad")
        tensors, manifest = model_file.read_model_file(tmp_path / f"{i}.flowad")
        needed = persistence.implied_min_parameters(manifest["params"])
        assert 0 < needed <= sum(t.numel() for k, t in tensors.items() if k.startswith("flow."))
        persistence.check_manifest("x", tensors, manifest)
        np.testing.assert_array_equal(flowad.load(tmp_path / f"{i}.flowad").decision_function(X[:5], **(
            {"domain": "a"} if hasattr(det, "domains_") else {})), det.decision_function(X[:5], **({"domain": "a"} if hasattr(det, "domains_") else {})))


def test_the_size_bound_holds_for_image_flows(tmp_path: Path) -> None:
    from flowad.detectors._image import ImageAdaFlow
    from tests.images._data import SMALL, domain_images

    X = np.concatenate([domain_images("warm", 8, 0), domain_images("cool", 8, 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        det = ImageAdaFlow(**{**SMALL, "epochs": 1}, random_state=0).fit(X, domains=["warm"] * 8 + ["cool"] * 8)
    det.save(tmp_path / "i.flowad")
    tensors, manifest = model_file.read_model_file(tmp_path / "i.flowad")
    assert 0 < persistence.implied_min_parameters(manifest["params"]) <= sum(t.numel() for t in tensors.values())
    assert type(flowad.load(tmp_path / "i.flowad")) is ImageAdaFlow


def test_implied_min_parameters_ignores_unused_or_malformed_sizes() -> None:
    assert persistence.implied_min_parameters({"n_layers": 2, "n_couplings": 0, "hidden": [4096, 4096]}) == 2
    assert persistence.implied_min_parameters({"n_couplings": 2, "hidden": [8, 4]}) == 2 * (8 + 32 + 4)
    assert persistence.implied_min_parameters({"levels": 2, "steps": 3, "hidden": 16}) == 6 * 32
    assert persistence.implied_min_parameters({"n_couplings": "6", "hidden": [True]}) == 0
    assert persistence.implied_min_parameters({"n_couplings": 10**9}) == 10**9  # hidden missing: still >= 1 weight each
    assert persistence.implied_min_parameters({"levels": 10**6}) == 10**6


# --------------------------------------------------------------------------------- messages
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_load_on_cuda_without_cuda_says_so(device: str, saved: Path) -> None:
    with pytest.raises(InputError, match=f"device='{device}' was requested but CUDA is not available"):
        flowad.load(saved, device=device)
    with pytest.raises(InputError, match="CUDA is not available"):
        RealNVP.load(saved, device=device)


def test_directory_and_missing_paths_say_so(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="is a directory"):
        flowad.load(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        flowad.load(tmp_path / "missing.flowad")
    with pytest.raises(ModelFileError, match="is a directory"):
        model_file.write_model_file(tmp_path, {"w": torch.zeros(1)}, {})
