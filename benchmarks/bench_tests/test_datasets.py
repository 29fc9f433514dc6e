"""Reading dataset folders: formats, and bad files reported by name and skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flowad_bench.datasets import DatasetError, load_dataset, load_folder


def _good(rng: np.random.Generator, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 3))
    y = np.zeros(n, dtype=int)
    y[:5] = 1
    return X, y


def test_reads_npz_mat_and_csv(tmp_path: Path, rng: np.random.Generator) -> None:
    import pandas as pd
    import scipy.io

    X, y = _good(rng)
    np.savez(tmp_path / "a.npz", X=X, y=y)
    scipy.io.savemat(tmp_path / "b.mat", {"X": X, "y": y[:, None].astype(float)})  # ODDS stores y as a column
    frame = pd.DataFrame(X, columns=["f0", "f1", "f2"])
    frame["label"] = y
    frame.to_csv(tmp_path / "c.csv", index=False)
    for name in ("a.npz", "b.mat", "c.csv"):
        ds = load_dataset(tmp_path / name)
        np.testing.assert_allclose(ds.X, X)
        np.testing.assert_array_equal(ds.y, y)
        assert ds.name == name.split(".")[0]


def test_bad_files_are_reported_by_name_and_skipped(tmp_path: Path, rng: np.random.Generator) -> None:
    X, y = _good(rng)
    np.savez(tmp_path / "good.npz", X=X, y=y)
    np.savez(tmp_path / "no_y.npz", X=X)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    np.savez(tmp_path / "has_nan.npz", X=Xn, y=y)
    np.savez(tmp_path / "one_class.npz", X=X, y=np.zeros_like(y))
    np.savez(tmp_path / "bad_labels.npz", X=X, y=y * 2)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    (tmp_path / "nolabel.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "notes.txt").write_text("ignored: not a dataset suffix")

    datasets, skipped = load_folder(tmp_path)
    assert [d.name for d in datasets] == ["good"]
    reasons = {s.name: s.reason for s in skipped}
    assert set(reasons) == {"no_y", "has_nan", "one_class", "bad_labels", "garbage", "nolabel"}
    assert "'y'" in reasons["no_y"]
    assert "NaN" in reasons["has_nan"]
    assert "single class" in reasons["one_class"]
    assert "0 (normal) / 1 (anomaly)" in reasons["bad_labels"]
    assert "cannot be read" in reasons["garbage"]
    assert "label column" in reasons["nolabel"]


def test_unknown_requested_name_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no dataset file for \\['x'\\]"):
        load_folder(tmp_path, ["x"])
