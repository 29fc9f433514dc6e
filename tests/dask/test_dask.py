"""flowad.dask on a LocalCluster of 2 worker processes: scores, adaptation, bad partitions, a killed worker, the CLI."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import flowad.dask as fdask  # noqa: E402
from flowad import AdaFlow, RealNVP, load  # noqa: E402
from flowad.cli import app  # noqa: E402
from flowad.dask._adapt import Moments, merge_moments  # noqa: E402
from flowad.dask._data import folder_parts  # noqa: E402
from flowad.exceptions import InputError  # noqa: E402
from flowad.flows.adaflow import adabn_layers  # noqa: E402

COLS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=COLS)
    X.loc[150:, "a"] += 3.0
    ada = AdaFlow(epochs=2, n_couplings=1, hidden=(8,), random_state=0).fit(X, domains=["north"] * 150 + ["south"] * 150)
    ada.save(folder / "ada.flowad")
    RealNVP(epochs=2, n_couplings=2, hidden=(8,), random_state=0).fit(X).save(folder / "nvp.flowad")
    return {"ada": folder / "ada.flowad", "nvp": folder / "nvp.flowad"}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(0.5, 1.5, size=(n, 3)), columns=COLS)
    df["rid"] = [f"r{seed}-{i}" for i in range(n)]
    return df


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Three Parquet files (row groups of 300: 7 partitions) and one CSV file, 2500 rows in all."""
    path = tmp_path_factory.mktemp("data")
    frames = [_frame(700, s) for s in range(3)] + [_frame(400, 3)]
    for i, f in enumerate(frames[:3]):
        f.to_parquet(path / f"p{i}.parquet", index=False, row_group_size=300)
    frames[3].to_csv(path / "p3.csv", index=False)
    return path, pd.concat(frames, ignore_index=True)


def _stats(det: AdaFlow, domain: str) -> list[np.ndarray]:
    i = det.domains_.index(domain)
    return [t.double().numpy() for layer in adabn_layers(det.flow_.bijection) for t in layer.statistics(i)]


# ------------------------------------------------------------------------------ moments
def test_merged_moments_equal_the_whole_data_whatever_the_split() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(1000, 4))
    cuts = [0, 1, 7, 300, 301, 1000]
    parts = [Moments.of(torch.from_numpy(x[a:b])) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    total = merge_moments(merge_moments(*parts[:2]), merge_moments(*parts[2:]))
    assert total.count == 1000
    np.testing.assert_allclose(total.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(total.var, x.var(axis=0), rtol=1e-12)


def test_folder_partitions_are_row_groups_with_offsets(folder, client) -> None:
    path, full = folder
    parts = folder_parts(path)
    assert [p.rows for p in parts] == [300, 300, 100] * 3 + [400]
    assert [p.offset for p in parts] == list(np.cumsum([0] + [p.rows for p in parts])[:-1])
    assert "p3.csv" in parts[-1].label and "rows 2100-2499" in parts[-1].label


# ------------------------------------------------------------------------------- scoring
def test_scores_of_a_folder_equal_one_process_in_row_order(models, folder, client) -> None:
    path, full = folder
    out = fdask.score(models["ada"], path, domain="south").compute()
    det = load(models["ada"])
    ref = det.score_samples(full[COLS], domain="south")
    assert list(out.columns) == ["id", "anomaly_score", "log_density", "label"]
    np.testing.assert_array_equal(out.index.to_numpy(), np.arange(len(full)))
    np.testing.assert_array_equal(out["id"].to_numpy(), np.arange(len(full)))
    np.testing.assert_allclose(out["log_density"].to_numpy(), ref, rtol=1e-6)
    np.testing.assert_array_equal(out["label"].to_numpy(), (-ref > det.thresholds_["south"]).astype(int))
    # the model travelled as bytes scattered to both workers, and each worker loaded it once
    assert all(len(v) == 1 for v in client.run(lambda: __import__("flowad.dask._model", fromlist=["_cache"])._cache.keys()).values())


def test_scores_of_a_dask_dataframe_keep_its_index_and_ids(models, client) -> None:
    df = _frame(1000, 7)
    df.index = np.arange(5000, 6000)[::-1]  # a descending, non-default index
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    out = fdask.score(models["nvp"], ddf, id_column="rid").compute()
    ref = load(models["nvp"]).score_samples(df[COLS])
    np.testing.assert_array_equal(out.index.to_numpy(), df.index.to_numpy())
    assert out["id"].tolist() == df["rid"].tolist()
    np.testing.assert_allclose(out["log_density"].to_numpy(), ref, rtol=1e-6)
    assert len(fdask.score(models["nvp"], ddf[ddf["a"] > 100]).compute()) == 0  # empty partitions score to nothing


def test_scores_of_a_dask_array(models, client) -> None:
    X = _frame(900, 8)[COLS].to_numpy()
    out = fdask.score(models["nvp"], da.from_array(X, chunks=(250, 3))).compute()
    np.testing.assert_allclose(out["log_density"].to_numpy(), load(models["nvp"]).score_samples(pd.DataFrame(X, columns=COLS)), rtol=1e-6)


def test_lazy_scores_name_the_bad_partition(models, folder, client, tmp_path) -> None:
    bad = _frame(50, 9)
    bad.loc[10, "b"] = np.nan
    bad.to_parquet(tmp_path / "x.parquet", index=False)
    with pytest.raises(InputError, match=r"partition 0 \(file .*x\.parquet.*NaN"):
        fdask.score(models["nvp"], tmp_path).compute()


# ------------------------------------------------------------------------------- writing
def _bad_folder(path: Path, folder: Path) -> Path:
    """The good folder plus a file with a NaN row and one lacking column 'c'."""
    data = path / "in"
    data.mkdir()
    for f in folder.iterdir():
        (data / f.name).symlink_to(f)
    nan = _frame(30, 10)
    nan.loc[3, "a"] = np.nan
    nan.to_parquet(data / "q0.parquet", index=False)
    _frame(20, 11).drop(columns="c").to_parquet(data / "q1.parquet", index=False)
    return data


def test_write_stops_cleanly_at_a_bad_partition(models, folder, client, tmp_path) -> None:
    data = _bad_folder(tmp_path, folder[0])
    with pytest.raises(InputError, match=r"(q0\.parquet.*NaN|q1\.parquet.*lacks).*nothing written"):
        fdask.write_scores(models["nvp"], data, tmp_path / "out", client=client)
    assert not (tmp_path / "out").exists()


def test_write_skips_bad_partitions_and_lists_them(models, folder, client, tmp_path) -> None:
    path, full = folder
    data = _bad_folder(tmp_path, path)
    report = fdask.write_scores(models["nvp"], data, tmp_path / "out", on_bad="skip", client=client, id_column="rid")
    assert report.rows == len(full) and report.parts == 10 and len(report.bad) == 2
    back = pd.read_parquet(tmp_path / "out")
    assert back["id"].tolist() == full["rid"].tolist()
    listed = pd.read_csv(tmp_path / "out" / "_bad_partitions.csv")
    assert listed["where"].str.contains("q0.parquet").any() and listed["where"].str.contains("q1.parquet").any()
    assert listed["error"].str.contains("NaN").any() and listed["error"].str.contains("'c'").any()
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("_")) == ["_bad_partitions.csv"]


def test_write_a_dask_dataframe_names_its_bad_partition(models, client, tmp_path) -> None:
    df = _frame(400, 13)
    df.loc[250, "c"] = np.inf
    ddf = dd.from_pandas(df, npartitions=4)  # rows 250 in partition 2
    with pytest.raises(InputError, match=r"^partition 2: X contains 0 NaN and 1 infinite"):
        fdask.write_scores(models["nvp"], ddf, tmp_path / "stop", client=client)
    assert not (tmp_path / "stop").exists()
    report = fdask.write_scores(models["nvp"], ddf, tmp_path / "skip", on_bad="skip", client=client)
    assert (report.rows, report.parts, [b["where"] for b in report.bad]) == (300, 3, ["partition 2"])
    back = pd.read_parquet(tmp_path / "skip")
    assert back["id"].tolist() == [*range(200), *range(300, 400)]


def test_write_refuses_a_non_empty_output_folder(models, folder, tmp_path, client) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"x")
    with pytest.raises(InputError, match="not an empty folder"):
        fdask.write_scores(models["nvp"], folder[0], tmp_path / "out", client=client)


# ---------------------------------------------------------------------------- adaptation
@pytest.mark.parametrize("split_every", [2, 8])
def test_distributed_adaptation_equals_one_process(models, folder, client, split_every) -> None:
    path, full = folder
    one = load(models["ada"]).adapt(full[COLS], domain="east", chunk_size=100_000)
    dist = fdask.adapt(models["ada"], path, domain="east", client=client, split_every=split_every)
    assert dist.domains_ == one.domains_ and dist.domain_counts_ == one.domain_counts_
    for a, b in zip(_stats(dist, "east"), _stats(one, "east"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(dist.thresholds_["east"], one.thresholds_["east"], rtol=1e-6)
    np.testing.assert_allclose(dist.score_samples(full[COLS][:50], domain="east"), one.score_samples(full[COLS][:50], domain="east"), rtol=1e-6)


def test_distributed_adaptation_replaces_a_known_domain(models, client) -> None:
    df = _frame(800, 12)
    one = load(models["ada"]).adapt(df[COLS], domain="north")
    ddf = dd.concat([dd.from_pandas(df.iloc[:0], npartitions=1), dd.from_pandas(df, npartitions=3)])  # partition 0 is empty
    dist = fdask.adapt(load(models["ada"]), ddf, domain="north", client=client)
    for a, b in zip(_stats(dist, "north"), _stats(one, "north"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert dist.domains_ == ["north", "south"] and dist.domain_counts_["north"] == 800


def test_adaptation_needs_an_adaflow_model(models, folder, client) -> None:
    with pytest.raises(InputError, match="adaflow"):
        fdask.adapt(models["nvp"], folder[0], domain="x", client=client)


# ------------------------------------------------------------------------------------ CLI
runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_cli_score_and_adapt_on_a_folder_through_a_scheduler(models, folder, client, tmp_path) -> None:
    path, full = folder
    address = client.scheduler.address
    code, out = run("score", models["ada"], path, "-o", tmp_path / "scores", "--dask", "--scheduler", address, "--domain", "north", "--id-column", "rid", "-q")
    assert code == 0, out
    back = pd.read_parquet(tmp_path / "scores")
    assert back["id"].tolist() == full["rid"].tolist()
    np.testing.assert_allclose(back["log_density"], load(models["ada"]).score_samples(full[COLS], domain="north"), rtol=1e-6)
    target = tmp_path / "adapted.flowad"
    code, out = run("adapt", models["ada"], path, "--domain", "west", "-o", target, "--dask", "--scheduler", address)
    assert code == 0, out
    assert "Adapted domain 'west' on 2500 rows" in out
    one = load(models["ada"]).adapt(full[COLS], domain="west", chunk_size=100_000)
    for a, b in zip(_stats(load(target), "west"), _stats(one, "west"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_cli_bad_partition_is_one_line_or_skipped(models, folder, client, tmp_path) -> None:
    data = _bad_folder(tmp_path, folder[0])
    address = client.scheduler.address
    code, out = run("score", models["nvp"], data, "-o", tmp_path / "s1", "--dask", "--scheduler", address, "-q")
    assert code == 2 and out.startswith("flowad: error: partition ") and "nothing written" in out
    code, out = run("score", models["nvp"], data, "-o", tmp_path / "s2", "--dask", "--scheduler", address, "--on-bad", "skip")
    assert code == 0, out
    assert "2 bad partition(s) skipped" in out and "flowad: warning: skipped partition" in out


def test_cli_default_local_cluster_and_a_single_file(models, folder, tmp_path) -> None:
    code, out = run("score", models["nvp"], folder[0] / "p1.parquet", "-o", tmp_path / "scores", "--dask", "--workers", "1", "-q")
    assert code == 0, out
    back = pd.read_parquet(tmp_path / "scores")
    np.testing.assert_allclose(back["log_density"], load(models["nvp"]).score_samples(folder[1][COLS][700:1400]), rtol=1e-6)
    assert back["id"].tolist() == list(range(700))


# ------------------------------------------------------------------------- a lost worker
def test_a_killed_worker_loses_and_duplicates_no_row(models, client, tmp_path) -> None:
    data = tmp_path / "big"
    data.mkdir()
    frames = [_frame(20_000, 100 + i) for i in range(24)]
    for i, f in enumerate(frames):
        f.to_parquet(data / f"f{i:02d}.parquet", index=False)
    full = pd.concat(frames, ignore_index=True)
    pids = client.run(os.getpid)
    result: dict[str, object] = {}

    def job() -> None:
        try:
            result["report"] = fdask.write_scores(models["nvp"], data, tmp_path / "out", client=client, id_column="rid")
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            result["error"] = err

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 120
    staged: list[Path] = []
    while time.monotonic() < deadline and not staged:
        staged = list((tmp_path / "out").glob("_staging-*/part-*.parquet")) if (tmp_path / "out").exists() else []
        time.sleep(0.01)
    assert staged, "the job wrote no part before the deadline"
    written = len(list((tmp_path / "out").glob("_staging-*/part-*.parquet")))
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # mid-job: most parts are still to come
    thread.join(timeout=300)
    assert written < len(frames)
    assert "error" not in result, result.get("error")
    back = pd.read_parquet(tmp_path / "out")
    assert len(back) == len(full) and back["id"].tolist() == full["rid"].tolist()
    np.testing.assert_allclose(back["log_density"], load(models["nvp"]).score_samples(full[COLS]), rtol=1e-6)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """AdaFlow models whose adaptation differs: the Gaussian in the latent space, the flow alone, and
    the Gaussian of stationary frames (three frames of one feature)."""
    folder = tmp_path_factory.mktemp("variants")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLS)
    out = {}
    kinds = {"latent": {"gaussian_space": "latent"}, "flow": {"adapted_density": "flow"}, "frames": {"stationary_frames": 3}}
    for name, kw in kinds.items():
        AdaFlow(epochs=2, hidden=(8,), random_state=0, **kw).fit(X, domains=["north"] * 100 + ["south"] * 100).save(folder / f"{name}.flowad")
        out[name] = folder / f"{name}.flowad"
    return out


def _uneven(df: pd.DataFrame, sizes: list[int]) -> dd.DataFrame:
    cuts = np.cumsum([0, *sizes])
    return dd.concat([dd.from_pandas(df.iloc[a:b], npartitions=1) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])


@pytest.mark.parametrize("kind", ["ada", "latent", "flow", "frames"])
@pytest.mark.parametrize("sizes", [[7, 0, 13, 101, 3, 29], [4, 0, 4]])
def test_distributed_mixture_equals_one_process_with_uneven_partitions(models, variants, client, kind, sizes) -> None:
    """Folds follow global row positions across partitions whose sizes are not multiples of 5
    (an empty one included); below 10 rows there is no selection pass and w = 0.5."""
    path = {**models, **variants}[kind]
    df = _frame(sum(sizes), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few rows
        one = load(path).adapt(df[COLS], domain="east")
        dist = fdask.adapt(path, _uneven(df, sizes), domain="east", client=client, split_every=2)
    assert dist.mixture_weights_ == one.mixture_weights_
    if kind == "flow":
        assert dist.mixture_weights_["east"] is None
    else:
        a, b = dist._mix[dist.domains_.index("east")], one._mix[one.domains_.index("east")]
        assert a.moments.count == b.moments.count == sum(sizes) and a.selection.count == b.selection.count
        np.testing.assert_allclose(a.moments.comoment, b.moments.comoment, rtol=1e-6, atol=1e-9)
        if kind == "frames":  # the workers' Gaussian uses the frame structure too
            assert a.gaussian.toeplitz_weight == pytest.approx(b.gaussian.toeplitz_weight) and b.gaussian.toeplitz_weight > 0
        # float32 flow densities from differently batched passes: about 1e-7 per row
        np.testing.assert_allclose(a.selection.sums, b.selection.sums, rtol=1e-6, atol=1e-6 * max(1, a.selection.count))
    np.testing.assert_allclose(dist.thresholds_["east"], one.thresholds_["east"], rtol=1e-6)
    np.testing.assert_allclose(dist.score_samples(df[COLS], domain="east"), one.score_samples(df[COLS], domain="east"), rtol=1e-6)


def test_distributed_adaptation_refuses_a_stuck_feature_like_one_process(models, client) -> None:
    df = _frame(300, 8)
    df["b"] = 1.25
    with pytest.raises(InputError, match="never change") as ref:
        load(models["ada"]).adapt(df[COLS], domain="east", chunk_size=100)
    with pytest.raises(InputError, match="never change") as got:
        fdask.adapt(models["ada"], _uneven(df, [100, 200]), domain="east", client=client)
    assert str(got.value) == str(ref.value)
