"""flowad.distributed: DDP training on 2 gloo processes on localhost against one process with the
same global batches; identical ranks; a dying rank; resume; the CLI end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from typer.testing import CliRunner

import flowad
from flowad import RobustRealNVP
from flowad.bijections import Whitening
from flowad.cli import app
from flowad.detectors._base import seeded_torch
from flowad.detectors._domains import clone_flow
from flowad.distributed import RankFailedError, fit_distributed
from flowad.distributed._data import ShardStream, draw_sample, folder_units, shard
from flowad.distributed._launch import launch
from flowad.distributed._loss import SyncedAdaptiveBatchNorm, global_trimmed_loss
from flowad.distributed._train import _LogProb
from flowad.exceptions import InputError
from flowad.flows.adaflow import adabn_layers, build_adaflow, update_statistics
from flowad.flows.realnvp import build_realnvp
from flowad.nn.mlp import refine_spectral_norms
from flowad.training.loop import trimmed_mean

pytest.importorskip("pyarrow")

COLS = ["a", "b", "c"]
# float64 so that the comparison with one process is tight; 0.1 of every batch trimmed.
# Whitening and dequantization off: the one-process reference below replays the loop only (their
# statistics have their own test; dequantization noise is drawn per rank).
PARAMS = {"epochs": 2, "batch_size": 64, "random_state": 3, "contamination": 0.1, "dtype": "float64", "device": "cpu",
          "n_couplings": 2, "hidden": (16,), "whiten": False, "dequantize": False}


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "data"
    folder.mkdir()
    for i in range(3):
        X = rng.normal(size=(160, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -2.0]
        X[:12] = rng.normal(6.0, 0.3, size=(12, 3))  # a cluster of anomalies in every file
        pd.DataFrame(X, columns=COLS).to_parquet(folder / f"part{i}.parquet", row_group_size=80)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def uninterrupted(folder: Path, tmp_path_factory):
    """One 2-process run to the end (checkpoints every 3 steps), with each rank's final state."""
    out = tmp_path_factory.mktemp("full")
    summary = fit_distributed(folder, out / "m.flowad", params=PARAMS, nproc=2, checkpoint_every=3, state_dir=str(out), threads=1)
    return out, summary


# ------------------------------------------------------------------ the loss, on its own
def _loss_rank(out: str, n: int, trim: float) -> None:
    dist.init_process_group("gloo")
    try:
        rank = dist.get_rank()
        X = _global_batch(2 * n)
        with seeded_torch(0, torch.device("cpu")):
            flow = build_realnvp(3, n_couplings=2, hidden=(8,), lipschitz_k=1.0, activation="tanh").double()
        flow.train()
        ddp = DistributedDataParallel(_LogProb(flow))
        loss, value, _ = global_trimmed_loss(-ddp(X[rank * n : (rank + 1) * n]), trim)
        loss.backward()
        del ddp  # before the process group goes: DDP's reducer can hang when freed after it
        torch.save({"value": value, "grads": [p.grad for p in flow.parameters()]}, Path(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _global_batch(n: int) -> torch.Tensor:
    X = torch.from_numpy(np.random.default_rng(5).normal(size=(n, 3)))
    X[:6] += 5.0  # 6 outliers, all in rank 0's half: per-rank trimming would keep 3 of them
    return X



def _assert_every_rank_matches(tmp_path: Path, ref: torch.Tensor, flow: torch.nn.Module) -> None:
    """Each rank's saved loss and gradients equal one process's (``ref`` already back-propagated)."""
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["value"] == pytest.approx(float(ref.detach()), abs=1e-10)
        for g, p in zip(got["grads"], flow.parameters(), strict=True):
            torch.testing.assert_close(g, p.grad, atol=1e-10, rtol=1e-8)

def test_global_trimmed_loss_equals_one_process_on_the_global_batch(tmp_path):
    n, trim = 20, 0.15  # global batch 40: 6 trimmed
    launch(_loss_rank, (str(tmp_path), n, trim), 2, threads=1)
    with seeded_torch(0, torch.device("cpu")):
        flow = build_realnvp(3, n_couplings=2, hidden=(8,), lipschitz_k=1.0, activation="tanh").double()
    flow.train()
    ref = trimmed_mean(-flow.log_prob(_global_batch(2 * n)), trim)
    ref.backward()
    _assert_every_rank_matches(tmp_path, ref, flow)
    # Trimming per rank would give another loss: the global threshold matters here.
    with torch.no_grad():
        per_rank = np.mean([float(trimmed_mean(-flow.log_prob(_global_batch(2 * n)[r * n : (r + 1) * n]), trim)) for r in (0, 1)])
    assert per_rank > float(ref.detach()) + 1.0


def _adabn_rank(out: str) -> None:
    dist.init_process_group("gloo")
    try:
        rank = dist.get_rank()
        X, ctx = _domain_batch()
        with seeded_torch(1, torch.device("cpu")):
            flow = build_adaflow(3, n_domains=3, n_couplings=1, hidden=(8,)).double()
        for layer in adabn_layers(flow.bijection):
            layer.__class__ = SyncedAdaptiveBatchNorm
        flow.train()
        ddp = DistributedDataParallel(_LogProb(flow))
        mine = slice(0, 20) if rank == 0 else slice(20, 40)
        loss, value, _ = global_trimmed_loss(-ddp(X[mine], ctx[mine]), 0.0)
        loss.backward()
        del ddp  # before the process group goes: DDP's reducer can hang when freed after it
        torch.save({"value": value, "grads": [p.grad for p in flow.parameters()]}, Path(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _domain_batch() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(8)
    ctx = np.r_[np.zeros(19), 2, np.ones(18), 2, 0].astype(np.int64)  # domain 2: one row on each rank; domain 0 mostly rank 0's
    X = rng.normal(size=(40, 3)) + ctx[:, None] * [2.0, -1.0, 0.5]
    return torch.from_numpy(X), torch.from_numpy(ctx)


def test_adabn_statistics_of_the_global_batch_give_one_process_gradients(tmp_path):
    launch(_adabn_rank, (str(tmp_path),), 2, threads=1)
    X, ctx = _domain_batch()
    with seeded_torch(1, torch.device("cpu")):
        flow = build_adaflow(3, n_domains=3, n_couplings=1, hidden=(8,)).double()
    flow.train()
    ref = (-flow.log_prob(X, ctx)).mean()
    ref.backward()
    _assert_every_rank_matches(tmp_path, ref, flow)


# -------------------------------------------------------- training against one process
def _reference(folder: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    """One process stepping through the same global batches (rank 0's rows, then rank 1's)."""
    det = RobustRealNVP(**PARAMS)
    units = folder_units(folder)
    shards = [shard(units, r, 2) for r in (0, 1)]
    union = np.concatenate([draw_sample(s, COLS, 50_000, 3, r)[0] for r, s in enumerate(shards)])
    det.n_features_in_, det.device_ = 3, torch.device("cpu")
    det._fit_standardization(union)
    with seeded_torch(3, torch.device("cpu")):
        flow = det._build_flow(3).double()
    params = list(flow.parameters())
    opt = torch.optim.Adam(params, lr=det.lr, weight_decay=det.weight_decay)
    streams = [ShardStream(s, COLS, 32, 3, r).batches() for r, s in enumerate(shards)]
    steps_per_epoch = math.ceil(480 / 64)
    history, total = [], 0.0
    flow.train()
    for step in range(1, 2 * steps_per_epoch + 1):
        Z = det._standardize_training(np.concatenate([next(s)[0] for s in streams]))
        loss = trimmed_mean(-flow.log_prob(Z), 0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, det.grad_clip)
        opt.step()
        total += float(loss.detach())
        if step % steps_per_epoch == 0:
            history.append(total / steps_per_epoch)
            total = 0.0
    refine_spectral_norms(flow)
    return history, flow.state_dict()


def test_two_processes_match_one_process_with_the_same_global_batches(folder, uninterrupted):
    out, summary = uninterrupted
    history, state = _reference(folder)
    assert summary["world_size"] == 2 and summary["global_batch"] == 64 and summary["steps"] == 16
    np.testing.assert_allclose(summary["history"], history, rtol=1e-9)
    got = torch.load(out / "rank0.pt")
    assert set(got) == set(state)
    for key in state:
        torch.testing.assert_close(got[key], state[key], atol=1e-9, rtol=1e-7)


def test_both_ranks_hold_bit_identical_state_and_the_file_is_rank_0s(uninterrupted):
    out, _ = uninterrupted
    r0, r1 = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert any("_u" in k for k in r0)  # spectral-norm vectors are part of the state
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    det = flowad.load(out / "m.flowad")
    for key, value in det.flow_.state_dict().items():
        assert torch.equal(value, r0[key]), key


# ------------------------------------------------------------------- faults and resume
def test_a_dying_rank_names_itself_and_the_checkpoint_and_resume_reaches_the_same_weights(folder, uninterrupted, tmp_path):
    full, _ = uninterrupted
    out = tmp_path / "m.flowad"
    with pytest.raises(RankFailedError) as info:
        fit_distributed(folder, out, params=PARAMS, nproc=2, checkpoint_every=3, fail_at=(1, 5), threads=1)
    message = str(info.value)
    assert "\n" not in message
    assert "DDP rank 1 of 2 died (killed by signal SIGKILL)" in message
    assert f"'{out}.ckpt' (step 3 of 16): rerun with --resume {out}.ckpt" in message
    assert not out.exists()
    summary = fit_distributed(folder, out, params=PARAMS, nproc=2, checkpoint_every=3, resume=f"{out}.ckpt", threads=1)
    assert summary["steps"] == 16
    resumed, uninterrupted_det = flowad.load(out), flowad.load(full / "m.flowad")
    for key, value in uninterrupted_det.flow_.state_dict().items():
        assert torch.equal(resumed.flow_.state_dict()[key], value), key
    assert resumed.history_ == uninterrupted_det.history_
    assert resumed.threshold_ == uninterrupted_det.threshold_


def test_resume_refuses_a_checkpoint_of_another_run(folder, uninterrupted, tmp_path):
    full, _ = uninterrupted
    with pytest.raises(InputError, match="belongs to another run: its params"):
        fit_distributed(folder, tmp_path / "x.flowad", params={**PARAMS, "lr": 0.01}, nproc=2, resume=full / "m.flowad.ckpt", threads=1)


def test_whitening_and_dequantization_statistics_equal_the_one_process_fit(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "counts"
    folder.mkdir()
    frames = []
    for i in range(2):
        frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200) * 3, "n": rng.poisson(2.0, size=200).astype(float)})
        frame.to_parquet(folder / f"p{i}.parquet", row_group_size=100)
        frames.append(frame)
    params = {**PARAMS, "epochs": 1, "whiten": True, "whiten_trim_ratio": 0.25, "dequantize": True}  # the whitening's own trim too
    fit_distributed(folder, tmp_path / "m.flowad", params=params, nproc=2, threads=1)
    got = flowad.load(tmp_path / "m.flowad")
    assert got.trim_scope == "batch"  # DDP trims each global minibatch, and the file says so (the class default is "epoch")
    ref = RobustRealNVP(**params, trim_scope="batch").fit(pd.concat(frames, ignore_index=True))
    assert got.dequantize_widths_[2] > 0 and got.dequantize_widths_[:2].tolist() == [0.0, 0.0]  # the count column only
    np.testing.assert_allclose(got.dequantize_widths_, ref.dequantize_widths_, rtol=1e-12)
    g, r = (next(m for m in det.flow_.modules() if isinstance(m, Whitening)) for det in (got, ref))
    torch.testing.assert_close(g.loc, r.loc, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(g.weight, r.weight, rtol=1e-7, atol=1e-9)
    assert not torch.equal(g.weight, torch.eye(3, dtype=g.weight.dtype))  # whitening was fitted


def test_a_bad_row_group_in_one_ranks_shard_stops_the_run_naming_it(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=COLS)
        if i == 1:
            frame.loc[70, "b"] = np.nan  # row group 1 of p1: unit 3, read by rank 1
        frame.to_parquet(folder / f"p{i}.parquet", row_group_size=50)
    res = CliRunner().invoke(app, ["fit", str(folder), "-o", str(tmp_path / "m.flowad"), "--nproc", "2", "--epochs", "1"])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1].startswith("flowad: error: file ")
    assert "p1.parquet' row group 1 has 1 row(s) with empty, NaN or infinite feature values (first at row 20 of the unit)" in res.output


# ------------------------------------------------------------------ errors without ranks
def test_unsupported_models_and_too_few_units_give_clear_errors(folder, tmp_path):
    with pytest.raises(InputError, match="DDP training supports .* not 'glow'"):
        fit_distributed(folder, tmp_path / "m.flowad", model="glow", nproc=2)
    with pytest.raises(InputError, match="trim_scope='epoch' is not supported by DDP training"):
        fit_distributed(folder, tmp_path / "m.flowad", params={"trim_scope": "epoch"}, nproc=2)
    with pytest.raises(InputError, match="n_couplings=0 leaves the flow nothing to train"):
        fit_distributed(folder, tmp_path / "m.flowad", params={"n_couplings": 0}, nproc=2)
    with pytest.raises(InputError, match="6 file.* for 8 processes"):
        shard(folder_units(folder), 0, 8)
    with pytest.raises(InputError, match="does not exist"):
        fit_distributed(folder, tmp_path / "m.flowad", resume=tmp_path / "missing.ckpt", nproc=2)


def test_shard_streams_are_round_robin_and_resume_at_any_step(folder):
    units = folder_units(folder)
    assert [u.index for u in shard(units, 1, 2)] == [1, 3, 5]
    stream = ShardStream(shard(units, 0, 2), COLS, 50, 7, 0)
    batches = [b for _, (b, _) in zip(range(12), stream.batches(), strict=False)]  # 600 rows: past the 240-row shard twice
    assert all(b.shape == (50, 3) for b in batches)
    assert np.array_equal(np.concatenate(batches[5:]), np.concatenate([b for _, (b, _) in zip(range(7), stream.batches(5), strict=False)]))
    one_pass = np.concatenate(batches)[:240]
    assert np.array_equal(np.sort(one_pass, axis=0), np.sort(np.concatenate([pd.read_parquet(folder / f"part{i}.parquet").to_numpy()[:80] for i in range(3)]), axis=0))


# ------------------------------------------------------------------------------- CLI
def test_cli_fit_with_nproc_writes_a_model_that_score_reads(folder, tmp_path):
    runner = CliRunner()
    model = tmp_path / "m.flowad"
    res = runner.invoke(app, ["fit", str(folder), "-o", str(model), "--nproc", "2", "--epochs", "1",
                              "--set", "batch_size=64", "--set", "n_couplings=2"])
    assert res.exit_code == 0, res.output
    assert "with DDP on 2 process(es): 480 rows x 3 features" in res.output
    res = runner.invoke(app, ["score", str(model), str(folder / "part0.parquet"), "-o", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(tmp_path / "s.csv")
    assert len(scores) == 160 and np.isfinite(scores["anomaly_score"]).all()
    assert scores["anomaly_score"][:12].mean() > scores["anomaly_score"][12:].mean()  # the planted cluster scores high


def test_cli_fit_adaflow_with_domains_on_two_processes(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "sites"
    folder.mkdir()
    frames = []
    for i in range(2):
        site = np.where(rng.random(150) < 0.5, "north", "south")
        X = rng.normal(size=(150, 3)) + (site == "south")[:, None] * [3.0, -2.0, 1.0]
        frame = pd.DataFrame(X, columns=COLS).assign(site=site)
        frame.to_parquet(folder / f"p{i}.parquet", row_group_size=75)
        frames.append(frame)
    model = tmp_path / "ada.flowad"
    res = CliRunner().invoke(app, ["fit", str(folder), "-o", str(model), "--model", "adaflow", "--domain-column", "site",
                                   "--nproc", "2", "--epochs", "2", "--set", "batch_size=64"])
    assert res.exit_code == 0, res.output
    assert "domains ['north', 'south']" in res.output
    det = flowad.load(model)
    assert det.domains_ == ["north", "south"] and list(det.feature_names_in_) == COLS
    data = pd.concat(frames, ignore_index=True)
    # The stored statistics are those of each domain's rows under the trained weights (every row sampled here).
    for k, name in enumerate(det.domains_):
        flow = clone_flow(det.flow_)
        update_statistics(flow.bijection, det._standardize_training(data.loc[data.site == name, COLS].to_numpy()), k)
        for ours, exact in zip(adabn_layers(det.flow_.bijection), adabn_layers(flow.bijection), strict=True):
            torch.testing.assert_close(ours.running_mean[k], exact.running_mean[k], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(ours.running_var[k], exact.running_var[k], rtol=1e-4, atol=1e-5)
    res = CliRunner().invoke(app, ["score", str(model), str(folder / "p0.parquet"), "--domain-column", "site", "-o", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 150
    # Resuming from the final checkpoint (domains part of the run's settings) rebuilds the same model.
    res = CliRunner().invoke(app, ["fit", str(folder), "-o", str(tmp_path / "again.flowad"), "--model", "adaflow", "--domain-column", "site",
                                   "--nproc", "2", "--epochs", "2", "--set", "batch_size=64", "--resume", f"{model}.ckpt", "-q"])
    assert res.exit_code == 0, res.output
    again = flowad.load(tmp_path / "again.flowad")
    for key, value in det.flow_.state_dict().items():
        torch.testing.assert_close(again.flow_.state_dict()[key], value, rtol=0, atol=0)
    assert again.thresholds_ == det.thresholds_


def test_cli_ddp_errors_are_one_line(folder, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["fit", str(folder), "-o", str(tmp_path / "m.flowad"), "--nproc", "2", "--columns", "a,zz"])
    assert res.exit_code == 2
    assert res.output.strip().startswith("flowad: error: Columns ['zz'] are not in the data (--columns)")
    res = runner.invoke(app, ["fit", str(folder), "-o", str(tmp_path / "m.flowad"), "--nproc", "2", "--domain-column", "a"])
    assert res.exit_code == 2 and "--domain-column applies to multi-domain models (--model adaflow)" in res.output
