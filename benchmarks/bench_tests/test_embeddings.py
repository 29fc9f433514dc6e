"""The image-embedding protocol on synthetic data: one-class files, -u/-c, contamination, PCA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flowad_bench import embeddings as emb
from flowad_bench.embeddings import embedding_split, embedding_tasks, load_one_class_files, pca_project, trimmed_rows
from typer.testing import CliRunner

from flowad.cli import app
from flowad.exceptions import InputError


def _labels(n_per_class: int = 200, classes: tuple[int, ...] = (0, 4, 6)) -> np.ndarray:
    return np.repeat(np.array(classes), n_per_class)


@pytest.mark.parametrize("mode", ["u", "c"])
@pytest.mark.parametrize("level", [0.05, 0.1, 0.2, 0.3, 0.4])
def test_split_reaches_the_contamination_without_repeating_rows(mode: str, level: float) -> None:
    y = _labels()
    train, test, y_test, anomaly_class = embedding_split(y, 4, mode, seed=3, contamination=level)
    assert np.unique(train).size == train.size and np.unique(test).size == test.size  # no row twice
    assert np.intersect1d(train, test).size == 0
    anomalies = y[train] != 4
    assert abs(anomalies.mean() - level) < 0.01
    if level >= 0.1:
        assert train.size == round(120 / 0.9)  # the size at 0.1 kept: fewer normals, not repeated anomalies
    else:
        assert int((~anomalies).sum()) == 120  # the whole pool
    assert int((y_test == 0).sum()) == int((y_test == 1).sum()) == 80  # balanced, 40 % of the class
    np.testing.assert_array_equal(y_test, (y[test] != 4).astype(int))
    if mode == "c":
        assert anomaly_class in (0, 6) and set(y[train][anomalies].tolist()) == {anomaly_class}
    else:
        assert anomaly_class is None and set(y[train][anomalies].tolist()) == {0, 6}


def test_split_levels_are_nested_and_share_the_test_set() -> None:
    y = _labels()
    splits = {c: embedding_split(y, 0, "u", seed=1, contamination=c) for c in (0.1, 0.2, 0.3, 0.4)}
    for c in (0.2, 0.3, 0.4):
        np.testing.assert_array_equal(splits[c][1], splits[0.1][1])  # same test rows at every level
    for lo, hi in [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4)]:
        anom_lo = set(splits[lo][0][y[splits[lo][0]] != 0].tolist())
        anom_hi = set(splits[hi][0][y[splits[hi][0]] != 0].tolist())
        norm_lo = set(splits[lo][0][y[splits[lo][0]] == 0].tolist())
        norm_hi = set(splits[hi][0][y[splits[hi][0]] == 0].tolist())
        assert anom_lo < anom_hi and norm_hi < norm_lo
    # -c and -u share the test set too; the -c class is a seeded draw, the same on every call
    c1 = embedding_split(y, 0, "c", seed=1)
    np.testing.assert_array_equal(c1[1], splits[0.1][1])
    assert embedding_split(y, 0, "c", seed=1)[3] == c1[3]
    assert {embedding_split(y, 0, "c", seed=s)[3] for s in range(12)} == {4, 6}


def test_split_refuses_levels_it_cannot_reach_without_duplicates() -> None:
    y = np.repeat([0, 1], [200, 30])  # few rows of the other class
    with pytest.raises(ValueError, match="training anomalies"):
        embedding_split(y, 0, "u", seed=0, contamination=0.4)


def test_max_train_caps_the_pool_not_the_test_set() -> None:
    y = _labels()
    train, test, _, _ = embedding_split(y, 6, "u", seed=0, max_train=50)
    assert int((y[train] == 6).sum()) == 50 and test.size == 160


def test_pca_is_fitted_on_training_rows_only(rng: np.random.Generator) -> None:
    X_train = rng.normal(size=(60, 10)) * np.arange(1, 11)
    X_test = rng.normal(size=(40, 10))
    a_train, a_test, dim = pca_project(X_train, X_test, 4, seed=0)
    b_train, _, _ = pca_project(X_train, X_test * 100.0 + 7.0, 4, seed=0)  # test rows change nothing
    np.testing.assert_allclose(a_train, b_train)
    assert dim == 4 and a_test.shape == (40, 4)
    from sklearn.decomposition import PCA

    np.testing.assert_allclose(np.abs(a_test), np.abs(PCA(4).fit(X_train).transform(X_test)), atol=1e-8)
    assert pca_project(X_train[:3], X_test, 4, seed=0)[2] == 2  # at most n_train - 1 components


def test_pca_can_be_fitted_on_chosen_rows_and_projects_all(rng: np.random.Generator) -> None:
    X_train = rng.normal(size=(80, 10)) * np.arange(1, 11)
    X_test = rng.normal(size=(30, 10))
    rows = np.arange(80) < 50
    a_train, a_test, dim = pca_project(X_train, X_test, 4, seed=0, fit_rows=rows)
    from sklearn.decomposition import PCA

    pca = PCA(4).fit(X_train[rows])
    assert a_train.shape == (80, 4) and dim == 4
    np.testing.assert_allclose(np.abs(a_train), np.abs(pca.transform(X_train)), atol=1e-8)
    np.testing.assert_allclose(np.abs(a_test), np.abs(pca.transform(X_test)), atol=1e-8)
    assert pca_project(X_train, X_test, 4, seed=0, fit_rows=np.arange(80) < 3)[2] == 2


def test_trimmed_rows_leave_out_a_planted_cluster(rng: np.random.Generator) -> None:
    normal = rng.normal(size=(240, 6)) @ rng.normal(size=(6, 6))
    cluster = rng.normal(0.0, 0.3, size=(60, 6)) + np.full(6, 5.0)  # 20 % of the rows, off the normal cloud
    Z = np.vstack([normal, cluster])
    keep = trimmed_rows(Z, 0.25)
    assert keep.sum() == 300 - 75
    assert not keep[240:].any()  # every planted row trimmed
    assert trimmed_rows(Z, 0.0).all()


def test_pca_fit_is_part_of_the_task_and_validated(tmp_path: Path) -> None:
    src = emb._Source("D", "p", (), (0, 1))
    plain = embedding_tasks([src], ["IForest"], modes=("u",), seeds=1)
    trimmed = embedding_tasks([src], ["IForest"], modes=("u",), seeds=1, pca_fit="trimmed")
    assert all("pca_fit" not in t.task_id for t in plain)
    assert [t.task_id for t in trimmed] == [t.task_id + "|pca_fit=trimmed" for t in plain]
    with pytest.raises(InputError, match="pca_fit"):
        emb.run_embeddings(tmp_path, tmp_path / "out", pca_fit="robust")


def _one_class_folder(tmp: Path, rng: np.random.Generator) -> Path:
    folder = tmp / "cifar"
    folder.mkdir()
    centers = {0: 0.0, 4: 4.0, 6: -4.0}
    for k, c in centers.items():
        X = np.concatenate([rng.normal(c, 1.0, size=(150, 12)), rng.normal(9.0, 1.0, size=(8, 12))])
        y = np.r_[np.zeros(150, int), np.ones(8, int)]
        np.savez(folder / f"TOY_{k}.npz", X=X.astype(np.float32), y=y)
    return folder


def test_one_class_files_pool_their_normal_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = _one_class_folder(tmp_path, rng)
    X, y = load_one_class_files(sorted(folder.glob("*.npz")))
    assert X.shape == (450, 12)
    assert {int(k): int(n) for k, n in zip(*np.unique(y, return_counts=True), strict=True)} == {0: 150, 4: 150, 6: 150}
    assert np.abs(X[y == 4].mean() - 4.0) < 0.3  # the anomaly rows (mean 9) were left out
    sources, skipped = emb._sources(folder)
    assert [(s.name, s.classes) for s in sources] == [("TOY", (0, 4, 6))] and not skipped


def test_tasks_share_the_01_points_and_are_seed_major() -> None:
    src = emb._Source("D", "p", (), (0, 1))
    tasks = embedding_tasks([src], ["RobustRealNVP", "RealNVP", "IForest"], modes=("u", "c"), seeds=2,
                            trim_ratios=(0.05, 0.1), contaminations=(0.1, 0.4),
                            sensitivity_methods=["RobustRealNVP", "RealNVP", "IForest"])
    ids = [t.task_id for t in tasks]
    assert len(ids) == len(set(ids))
    # per seed and class: 6 table, 1 extra trim (0.1 is the table's), 3 extra contamination (0.4)
    assert len(tasks) == 2 * 2 * (6 + 1 + 3)
    assert [t.seed for t in tasks] == sorted(t.seed for t in tasks)
    robust_04 = [t for t in tasks if t.method == "RobustRealNVP" and t.level == 0.4]
    assert all(t.trim_ratio == 0.4 for t in robust_04)
    assert {t.trim_ratio for t in tasks if t.experiment == "trim-sensitivity"} == {0.05}


def test_cli_runs_the_table_and_both_studies(tmp_path: Path, rng: np.random.Generator, fake_methods: None) -> None:
    folder = _one_class_folder(tmp_path, rng)
    out = tmp_path / "out"
    args = ["bench", "embeddings", "-d", str(folder), "-o", str(out), "--methods", "Random,FirstFeature",
            "--sensitivity-methods", "Random,FirstFeature", "--seeds", "1", "--pca-dim", "5",
            "--contaminations", "0.1,0.3", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 3 * (4 + 2)  # 3 classes x (2 methods x 2 modes + 2 methods at 0.3)
    assert (rows["pca_dim"] == 5).all() and rows["versions"].str.contains("flowad").all()
    text = (out / "table.md").read_text()
    assert "TOY / class 4" in text and "Contamination sensitivity" in text and "-c anomaly class" in text
    assert (out / "contamination.png").exists() and (out / "embeddings.png").exists()
    again = CliRunner().invoke(app, args)
    assert "0 run(s) done, 18 resumed" in again.output
    report = CliRunner().invoke(app, [*args[:-1], "--seeds", "2", "--report-only", "--no-progress"])
    assert report.exit_code == 0, report.output
    assert "0 run(s) done" in report.output and len(pd.read_csv(out / "results.csv")) == 18  # nothing ran
    assert "PARTIAL: 18 of 36 runs have no result yet." in (out / "table.md").read_text()


def test_pca_fit_chooses_the_rows_the_pca_is_fitted_on(
    tmp_path: Path, rng: np.random.Generator, fake_methods: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _one_class_folder(tmp_path, rng)
    fitted: list[np.ndarray | None] = []
    project = emb.pca_project

    def spy(X_train: np.ndarray, X_test: np.ndarray, dim: int, seed: int, *, fit_rows: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        fitted.append(None if fit_rows is None else np.asarray(fit_rows).copy())
        return project(X_train, X_test, dim, seed, fit_rows=fit_rows)

    monkeypatch.setattr(emb, "pca_project", spy)
    X, y = emb.load_embeddings(folder / "TOY_4.npz")
    train_idx, test_idx, _, _ = embedding_split(y, 0, "u", 0, max_train=27, contamination=0.1)
    is_anom = y[train_idx] == 1
    assert is_anom.sum() == 3
    rows = {}
    for fit in ("all", "trimmed", "normal"):
        task = emb.EmbeddingTask("TOY_4", str(folder / "TOY_4.npz"), 0, "u", "FirstFeature", 0, pca_dim=5,
                                 max_train=27, pca_fit=fit)
        fitted.clear()
        rows[fit] = emb.run_embedding_task(task)
        rows[fit]["fit_rows"] = fitted[-1]
    assert rows["all"]["fit_rows"] is None
    np.testing.assert_array_equal(rows["normal"]["fit_rows"], ~is_anom)
    # label-free: the rows a trimmed Gaussian keeps in the plain projection, at the task's level
    expected = trimmed_rows(project(X[train_idx], X[test_idx], 5, 0)[0], 0.1)
    np.testing.assert_array_equal(rows["trimmed"]["fit_rows"], expected)
    assert expected.sum() == 27 and (expected[~is_anom].mean() > expected[is_anom].mean())
    assert "pca_fit=trimmed" in emb.EmbeddingTask("D", "p", 0, "u", "X", 0, pca_fit="trimmed").task_id
    header = emb.embeddings_markdown(pd.DataFrame(), ["X"], pca_dim=16, pca_fit="trimmed").splitlines()[0]
    assert "PCA 16 fitted on the training rows a trimmed Gaussian keeps" in header


def test_own_anomalies_keep_each_file_with_its_own_anomaly_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = _one_class_folder(tmp_path, rng)
    sources, skipped = emb._sources(folder, own_anomalies=True)
    assert [(s.name, s.classes, s.files) for s in sources] == [(f"TOY_{k}", (0,), ()) for k in (0, 4, 6)] and not skipped
    task = emb.EmbeddingTask("TOY_4", sources[1].path, 0, "u", "IForest", 0, pca_dim=5, max_train=9, level=0.4)
    X, y = emb._cached(task.path, task.files)
    train_idx, test_idx, y_test, _ = embedding_split(y, 0, "u", 0, max_train=9, contamination=0.4)
    assert set(np.flatnonzero(y == 1)) >= set(train_idx[y[train_idx] == 1]) | set(test_idx[y_test == 1])
    assert np.abs(X[train_idx[y[train_idx] == 1]].mean() - 9.0) < 0.5  # the file's own anomalies (mean 9)
    assert np.abs(X[train_idx[y[train_idx] == 0]].mean() - 4.0) < 0.5  # and its normal rows (class 4)
    assert emb._label("CIFAR10_4", 0, True) == "CIFAR10_4 / normal rows (deer)"
    assert emb._label("TOY_4", 0, True) == "TOY_4 / normal rows"
    assert emb._label("TOY_4", 0) == "TOY_4 / class 0"  # a multi-class file named like a one-class file
    assert sources[1].own_anomalies and emb.embedding_tasks(sources[1:2], ["IForest"], modes=("u",), seeds=1)[0].own_anomalies
    row = emb.run_embedding_task(task)
    assert row["n_train_anomalies"] == 4 and row["n_train"] == 10 and 0.0 <= row["auc"] <= 1.0


def test_tables_call_class_0_normal_rows_only_for_a_one_class_file_on_its_own(
    tmp_path: Path, rng: np.random.Generator, fake_methods: None
) -> None:
    folder = _one_class_folder(tmp_path, rng)
    y = np.repeat([0, 1, 2], 60)
    np.savez(folder / "FOO_3.npz", X=rng.normal(size=(180, 6)) + y[:, None], y=y)  # three classes, a one-class-like name
    out = tmp_path / "out"
    args = ["bench", "embeddings", "-d", str(folder), "-o", str(out), "--methods", "FirstFeature", "--modes", "u",
            "--seeds", "1", "--pca-dim", "4", "--classes", "0", "--own-anomalies", "--max-train", "20", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (out / "table.md").read_text()
    assert "FOO_3 / class 0" in text and "FOO_3 / normal rows" not in text
    assert "TOY_4 / normal rows" in text


def test_variants_run_in_the_table_and_the_study_with_their_own_arguments() -> None:
    src = emb._Source("D", "p", (), (0,))
    label = "RobustRealNVP[lipschitz_k=2.0]"
    fixed = "RobustRealNVP[trim_ratio=0.1]"
    tasks = embedding_tasks([src], ["IForest", label, fixed], modes=("u",), seeds=1, contaminations=(0.1, 0.4),
                            sensitivity_methods=["IForest", label, fixed],
                            variants={label: (("lipschitz_k", 2.0),), fixed: (("trim_ratio", 0.1),)})
    by = {(t.method, t.level): t for t in tasks}
    assert dict(by[(label, 0.4)].overrides) == {"trim_ratio": 0.4, "lipschitz_k": 2.0}  # the study's trim, its own k
    assert by[(label, 0.4)].trim_ratio == 0.4 and by[(label, 0.1)].overrides == (("lipschitz_k", 2.0),)
    assert by[(fixed, 0.4)].trim_ratio == 0.1  # its own argument wins over the study's
    frame = pd.DataFrame({"mode": "u", "method": [label, fixed, "RobustRealNVP", "RobustRealNVP"], "level": [0.4] * 4,
                          "trim": [0.4, 0.1, 0.4, 0.2], "dataset": "D", "normal_class": 0, "label": "D / class 0"})
    kept = emb._contamination_frame(frame, [0.4], [label, fixed, "RobustRealNVP"])
    assert sorted(zip(kept["method"], kept["trim"], strict=True)) == [("RobustRealNVP", 0.4), (label, 0.4), (fixed, 0.1)]
