"""DDP training throughput: 1 vs 2 processes on the same data, and the time to the same validation NLL.

Both configurations run :func:`flowad.distributed.fit_distributed` (what ``flowad fit DATA_DIR
--nproc N`` runs) on the same Parquet folder with the same global batch, seed and
hyper-parameters, one torch thread per process; ``1 process`` is a world of one rank (no
communication partner, same code path). Rank 0 logs, every ``log_every`` steps and at every
epoch end, the training seconds (validation excluded), the trimmed validation NLL of a separate
file, and its cumulative seconds per phase of a step (data, forward, global trimmed loss,
backward with the gradient all-reduce, Adam step, checkpoint).

* samples/s = steps x global batch / training seconds;
* time to the target NLL: the target is the worst of the configurations' best validation NLLs
  (a value every configuration reaches), and each configuration's time is the training seconds
  at its first log line at or below it;
* start-up = wall seconds of the call minus the training seconds (ranks starting, the
  standardization sample, the threshold, writing the model file).

The load average of the machine is recorded before and after every run. Configurations run
round-robin within each round; rows already in ``ddp.csv`` are skipped (resumable).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NPROCS", "format_ddp", "make_data", "run_ddp", "time_to_target"]

#: Processes compared.
NPROCS = (1, 2)
PHASES = ("data", "forward", "loss", "backward", "step", "checkpoint")
KEY = ["rows", "epochs", "batch_size", "nproc", "repeat"]

#: The closing section of the report: the same training on several machines with torchrun.
MULTI_NODE = """## The same training on several machines (torchrun)

`flowad fit` joins a process group that `torchrun` describes (its `RANK`, `WORLD_SIZE`,
`MASTER_ADDR`, `MASTER_PORT` and `LOCAL_RANK` variables), so the multi-machine run is the same
command started by torchrun on every machine, without `--nproc`:

```bash
# on each of 2 machines (node-rank 0 and 1), 4 processes each; gloo on CPU, NCCL on GPUs (device 'auto' picks CUDA; one GPU per process)
torchrun --nnodes 2 --node-rank $NODE_RANK --nproc-per-node 4 --master-addr node0.example --master-port 29500 \\
    --no-python flowad fit /shared/data/ -o /shared/model.flowad --epochs 20
```

Every process reads only its own files / row groups (round robin over the sorted names), so the
folder must look the same on every machine (shared storage or identical copies); rank 0 writes
the model file and the checkpoint (`/shared/model.flowad.ckpt`), and `--resume` reads it on rank 0
and sends it to the others, so only rank 0 needs to see it. A resumed run needs the same data,
options and number of processes.
"""


def make_data(folder: Path, rows: int, *, rows_per_file: int, seed: int) -> tuple[Path, Path]:
    """A training folder of ``rows`` rows (Parquet files of ``rows_per_file`` rows) and a validation
    file of 20,000 rows from the same distribution: 10 features, 5 latent Gaussians and 5 non-linear
    functions of them with noise, 5 % of the rows uniform in a box (contamination). Written once."""
    data, val = folder / f"rows-{rows}", folder / f"validation-{rows}.parquet"
    done = data / "_complete"
    if done.exists() and val.exists():
        return data, val
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(5, 5))

    def sample(n: int) -> pd.DataFrame:
        z = rng.standard_normal((n, 5))
        X = np.hstack([z, np.tanh(z @ A) + 0.1 * rng.standard_normal((n, 5))])
        bad = rng.random(n) < 0.05
        X[bad] = rng.uniform(-4, 4, size=(int(bad.sum()), 10))
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(10)])

    for i, start in enumerate(range(0, rows, rows_per_file)):
        sample(min(rows_per_file, rows - start)).to_parquet(data / f"part-{i:05d}.parquet", index=False)
    sample(20_000).to_parquet(val, index=False)
    done.write_text("")
    return data, val


def step_times(batch: int, *, steps: int = 60, seed: int = 0) -> tuple[float, float]:
    """Milliseconds of one training step (forward, backward, Adam) of the benchmark's model in this
    process with one torch thread, on ``batch`` rows and on ``batch // 2`` rows (alternating): the
    speed-up that splitting the batch over 2 processes could give at best, before any communication."""
    import torch

    from flowad import RobustRealNVP

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            flow = RobustRealNVP()._build_flow(10)
            opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
            flow.train()
            xs = {n: torch.randn(n, 10) for n in (batch, batch // 2)}
            spent = dict.fromkeys(xs, 0.0)
            for i in range(2 * steps + 10):
                n = batch if i % 2 else batch // 2
                t = time.perf_counter()
                opt.zero_grad()
                (-flow.log_prob(xs[n])).mean().backward()
                opt.step()
                if i >= 10:  # warm-up excluded
                    spent[n] += time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    return 1000 * spent[batch] / steps, 1000 * spent[batch // 2] / steps


def _noop() -> None:
    """A rank that does nothing: starts the launcher's process server before anything is timed."""


def _run(data: Path, val: Path, work: Path, nproc: int, params: dict[str, Any], log_every: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from flowad.distributed import fit_distributed

    log = work / f"log-{nproc}.jsonl"
    log.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    summary = fit_distributed(data, work / f"model-{nproc}.flowad", params=params, nproc=nproc, threads=1, checkpoint_every=0,
                              validation=val, log=log, log_every=log_every)
    wall = time.perf_counter() - t
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    last = lines[-1]
    row = {
        "nproc": nproc, "rows": summary["rows"], "steps": summary["steps"], "global_batch": summary["global_batch"],
        "train_s": summary["train_s"], "wall_s": wall, "startup_s": wall - summary["train_s"],
        "samples_per_s": summary["steps"] * summary["global_batch"] / summary["train_s"],
        "final_val_nll": last["val_nll"], "best_val_nll": min(r["val_nll"] for r in lines),
        "load1_before": load_before, "load1_after": os.getloadavg()[0],
        **{f"{p}_ms_per_step": 1000 * last.get(f"{p}_s", 0.0) / last["step"] for p in PHASES},
    }
    return row, lines


def run_ddp(folder: Path, *, rows: int, rows_per_file: int, epochs: int, batch_sizes: list[int], repeats: int, seed: int,
            log_every: int, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train with 1 and 2 processes at every global batch size (round-robin), appending to
    ``ddp.csv`` and ``ddp_log.csv`` in ``folder``; returns the rows of these settings."""
    from flowad.distributed._launch import launch

    csv, log_csv = folder / "ddp.csv", folder / "ddp_log.csv"
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=KEY)
    logs = pd.read_csv(log_csv) if log_csv.exists() else pd.DataFrame(columns=KEY)
    have = {tuple(r) for r in done[KEY].itertuples(index=False)}
    data, val = make_data(work, rows, rows_per_file=rows_per_file, seed=seed)
    launch(_noop, (), 1, threads=1)  # the process server imports torch once, outside the timings
    for batch_size in batch_sizes:
        params = {"epochs": epochs, "batch_size": batch_size, "random_state": seed, "contamination": 0.05, "device": "cpu"}
        for repeat in range(repeats):
            ceiling = None
            for nproc in NPROCS:
                key = (rows, epochs, batch_size, nproc, repeat)
                if key in have:
                    continue
                if ceiling is None:
                    ceiling = step_times(batch_size, seed=seed)
                row, lines = _run(data, val, work, nproc, params, log_every)
                row.update(dict(zip(KEY, key, strict=True)), rows_per_file=rows_per_file, cores=os.cpu_count() or 1,
                           step_ms_full_batch=ceiling[0], step_ms_half_batch=ceiling[1], log_every=log_every)
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                logs = pd.concat([logs, pd.DataFrame(lines).assign(**dict(zip(KEY, key, strict=True)))], ignore_index=True)
                done.to_csv(csv, index=False)
                logs.to_csv(log_csv, index=False)

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        keep = (frame["rows"] == rows) & (frame["epochs"] == epochs) & frame["batch_size"].isin(batch_sizes) & (frame["repeat"] < repeats)
        return frame[keep].reset_index(drop=True)

    return mine(done), mine(logs)


def time_to_target(logs: pd.DataFrame) -> tuple[float, dict[int, float]]:
    """The target NLL (the worst of the configurations' best validation NLLs) and each
    configuration's training seconds at its first log line at or below it (one round's logs)."""
    target = max(group["val_nll"].min() for _, group in logs.groupby("nproc"))
    times = {int(n): float(group.loc[group["val_nll"] <= target, "train_s"].min()) for n, group in logs.groupby("nproc")}
    return float(target), times


def format_ddp(table: pd.DataFrame, logs: pd.DataFrame, *, command: str) -> str:
    """The markdown report: throughput, time to the same validation NLL, and where the time goes,
    for every global batch size."""
    table = table.astype({"nproc": int, "repeat": int, "batch_size": int})
    logs = logs.astype({"nproc": int, "repeat": int, "batch_size": int})
    rounds = sorted(table["repeat"].unique())
    first = table.iloc[0]
    lines = [
        "# DDP training: 1 vs 2 processes",
        "",
        f"Command: `{command}`",
        "",
        f"RobustRealNVP at its default architecture (contamination 0.05: 5 % of every global batch trimmed), "
        f"{int(first['rows']):,} training rows in Parquet files of {int(first['rows_per_file']):,} rows, 10 features; "
        f"{int(first['epochs'])} epochs at each global batch size, the same in both configurations, same seed; one torch "
        f"thread per process; validation: 20,000 rows from the same distribution, its trimmed NLL measured every "
        f"{int(first['log_every'])} steps and at each epoch end. The configurations compose their global batches "
        "differently (each rank streams its own files), so their loss curves differ by sampling; that 2 processes "
        "compute what 1 process computes on the same global batches is tested in `tests/distributed`. "
        f"Machine: {int(first['cores'])} cores, shared with other jobs while this ran (load averages below). "
        f"Medians over {len(rounds)} round(s); raw rows in `ddp.csv`, rank 0's log lines in `ddp_log.csv`.",
        "",
        "| global batch | processes | steps | training s | samples/s | vs 1 process | time to target NLL s | speed-up to target | final val NLL | start-up s | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = {}
    for bs, group in table.groupby("batch_size"):
        med = group.groupby("nproc").median(numeric_only=True)
        base = float(med.loc[1, "samples_per_s"])
        for r in rounds:
            targets[(bs, r)] = time_to_target(logs[(logs["batch_size"] == bs) & (logs["repeat"] == r)])
        t_one = np.median([targets[(bs, r)][1][1] for r in rounds])
        for n, row in med.iterrows():
            t_target = np.median([targets[(bs, r)][1][int(n)] for r in rounds])
            loads = "; ".join(f"{a:.2f} / {b:.2f}" for a, b in group.loc[group["nproc"] == n, ["load1_before", "load1_after"]].itertuples(index=False))
            lines.append(f"| {bs} | {int(n)} | {int(row['steps'])} | {row['train_s']:.1f} | {row['samples_per_s']:,.0f} | {row['samples_per_s'] / base:.2f}x | "
                         f"{t_target:.1f} | {t_one / t_target:.2f}x | {row['final_val_nll']:.4f} | {row['startup_s']:.1f} | {loads} |")
    lines += [
        "",
        "Target NLL (the worst of the configurations' best validation NLLs, per batch size and round): "
        + ", ".join(f"batch {bs} round {r}: {t[0]:.4f}" for (bs, r), t in targets.items())
        + ". Training seconds exclude the validation passes; start-up (ranks starting, sampling the "
        "standardization rows, the threshold, the model file) is not in the samples/s.",
        "",
        "## Where the time goes (rank 0, milliseconds per step)",
        "",
        "| global batch | processes | rows per rank per step | data | forward | global trimmed loss | backward + all-reduce | clip + Adam | checkpoint | sum |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes, ceilings = [], []
    for bs, group in table.groupby("batch_size"):
        med = group.groupby("nproc").median(numeric_only=True)
        for n, row in med.iterrows():
            parts = [row[f"{p}_ms_per_step"] for p in PHASES]
            lines.append(f"| {bs} | {int(n)} | {bs // int(n)} | " + " | ".join(f"{v:.2f}" for v in parts) + f" | {sum(parts):.2f} |")
        if 2 in med.index:
            one, two = med.loc[1], med.loc[2]
            full, half = one["step_ms_full_batch"], one["step_ms_half_batch"]
            ceilings.append(f"batch {bs}: {full:.2f} ms per step on {bs} rows, {half:.2f} ms on {bs // 2} (at best {full / half:.2f}x)")
            c1 = sum(one[f"{p}_ms_per_step"] for p in ("forward", "backward", "step"))
            c2 = sum(two[f"{p}_ms_per_step"] for p in ("forward", "backward", "step"))
            comm = two["loss_ms_per_step"] - one["loss_ms_per_step"]
            notes.append(f"at global batch {bs}, forward + backward + Adam took {c2:.2f} ms per step with 2 processes against "
                         f"{c1:.2f} ms with 1 (ratio {c1 / c2:.2f}; 2 if it halved), and the global trimmed loss {comm:.2f} ms more")
    lines += [
        "",
        "On 2 cores the ceiling is 2x, but only if a step on half the batch took half the time. It does not: "
        "timed in one process with one thread (forward, backward, Adam; `step_times`), "
        + "; ".join(ceilings) + ". A default RobustRealNVP (6 couplings of 64 x 64 units, spectral norm) on 10 "
        "features is dominated by per-layer and per-step costs that do not shrink with the batch, so splitting "
        "a batch of this size over 2 processes cannot give much more than that even on idle cores; larger "
        "batches or wider networks would. Measured in the runs: " + "; ".join(notes) + ". "
        "The backward time of 2 processes includes DDP's gradient all-reduce and waiting for the slower rank; the global trimmed "
        "loss is one all-gather of the per-sample losses (carrying rank 0's spectral-norm vectors), where a rank also "
        "waits for the other to finish its forward pass. With other jobs on the same 2 cores (load averages above) "
        "each rank gets less than a core, and every collective waits for the slower rank.",
        "",
        MULTI_NODE,
    ]
    return "\n".join(lines)
