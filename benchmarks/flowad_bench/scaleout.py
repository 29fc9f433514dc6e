"""Scale-out of scoring: one process vs a local Dask cluster, rows/s and peak memory per worker.

The same work everywhere: read one Parquet partition, score it, write its Parquet part
(:func:`flowad.dask.write_scores`'s task). ``1 process`` runs that task partition after
partition in one fresh process with one torch thread (the stages timed separately: where the
time goes); ``dask N`` runs :func:`flowad.dask.write_scores` on a fresh ``LocalCluster`` of N
single-threaded worker processes started by :func:`flowad.dask.cluster`, as ``flowad score
--dask`` does (cluster start-up timed apart, not in the rows/s). Peak
memory is each process's peak resident set (``ru_maxrss``) over the job, so it shows whether
memory stays flat as rows grow (it should: one partition at a time per worker).

Configurations run round-robin within each size, so a load change on the machine hits all
of them alike. Rows already in the CSV are skipped (resumable).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CONFIGS", "MULTI_MACHINE", "format_scaleout", "make_data", "run_scaleout"]

#: The report's closing section: the same commands on a real multi-machine Dask cluster.
MULTI_MACHINE = """## The same commands on a multi-machine Dask cluster

1. Install the same flowad version with the Dask extra on the client and on every worker machine
   (`pip install 'flowad[dask]'`): workers import flowad to load the model; no other code is shipped.
2. Start a scheduler (`dask scheduler`, port 8786) and workers on every machine, e.g. one
   single-threaded process per core: `dask worker tcp://SCHEDULER:8786 --nworkers auto --nthreads 1`
   (or through dask-jobqueue, dask-kubernetes or a hosted Dask service).
3. Put the data folder and the output folder on storage every worker sees under the same path
   (a shared file system): workers read their partitions and write their Parquet parts themselves;
   the client only reads the Parquet footers (row counts) and moves the finished parts into place.
   The model file stays on the client: its bytes are scattered once to every worker.
4. Run the same commands with `--scheduler`:
   `flowad score model.flowad /shared/data/ -o /shared/scores/ --dask --scheduler tcp://SCHEDULER:8786`
   and `flowad adapt model.flowad /shared/site-7/ --domain site-7 -o adapted.flowad --dask --scheduler tcp://SCHEDULER:8786`
   (the adapted model is written by the client). From Python, `flowad.dask.score(model, ddf)` accepts
   any Dask DataFrame (e.g. `dd.read_parquet("s3://bucket/data/")`) and returns a lazy DataFrame
   to write with `.to_parquet(...)`.
5. Faults: the tasks of a lost worker are rerun on the others (Dask's `allowed-failures`, 3 by
   default); each partition's part is written atomically under a fixed name, so a rerun replaces it
   and no row is lost or duplicated. If every worker holding the scattered model is lost the job
   stops; run it again. Model files are never pickled, but Dask pickles its tasks: run the cluster
   on a trusted network or with TLS (`dask scheduler --tls-...`).
6. Memory trimming: Dask's nannies start workers with `MALLOC_TRIM_THRESHOLD_=65536`, which made
   torch scoring 2.5-3x slower inside a worker here (glibc then maps and unmaps every large
   buffer). `flowad.dask.cluster` leaves it unset on the local clusters it starts; on your own
   workers set `distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null` in their Dask
   configuration (e.g. `~/.config/dask/distributed.yaml`).
"""

#: Configurations timed: 1 process, and local clusters of 1 and 2 worker processes.
CONFIGS = ("1 process", "dask 1 worker", "dask 2 workers")
KEY = ["rows", "config", "repeat"]


def make_data(folder: Path, rows: int, *, rows_per_file: int, n_features: int, seed: int) -> Path:
    """``rows`` Gaussian rows in Parquet files of ``rows_per_file`` rows (one row group each), written once."""
    data = folder / f"rows-{rows}"
    done = data / "_complete"
    if done.exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cols = [f"x{i}" for i in range(n_features)]
    for i, start in enumerate(range(0, rows, rows_per_file)):
        n = min(rows_per_file, rows - start)
        frame = pd.DataFrame(rng.standard_normal((n, n_features)), columns=cols)
        frame.to_parquet(data / f"part-{i:05d}.parquet", index=False, row_group_size=n)
    done.write_text("")
    return data


def fit_model(path: Path, *, n_features: int, seed: int, epochs: int) -> Path:
    """A RobustRealNVP at its default architecture, trained briefly (scoring cost is the architecture's)."""
    from flowad import RobustRealNVP

    if not path.exists():
        rng = np.random.default_rng(seed)
        X = pd.DataFrame(rng.standard_normal((4096, n_features)), columns=[f"x{i}" for i in range(n_features)])
        RobustRealNVP(epochs=epochs, random_state=seed).fit(X).save(path)
    return path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _one_process(model: str, data: str, out: str, queue: Any) -> None:
    """Child process: every partition read, scored and written in turn, one torch thread."""
    import torch

    torch.set_num_threads(1)
    from flowad.dask._data import folder_parts, read_part
    from flowad.dask._model import model_blob
    from flowad.dask._score import ScoreOptions

    det = model_blob(model)[1]
    options = ScoreOptions()
    stages = {"read": 0.0, "score": 0.0, "write": 0.0}
    t0 = time.perf_counter()
    rows = 0
    for part in folder_parts(data):
        t = time.perf_counter()
        frame = read_part(part)
        stages["read"] += time.perf_counter() - t
        t = time.perf_counter()
        scored = options.apply(det, frame)
        stages["score"] += time.perf_counter() - t
        t = time.perf_counter()
        scored.to_parquet(Path(out) / f"part-{part.index:05d}.parquet", index=False)
        stages["write"] += time.perf_counter() - t
        rows += len(scored)
    queue.put({"seconds": time.perf_counter() - t0, "rows_done": rows, "peak_mb": [_peak_mb()],
               **{f"{k}_s": v for k, v in stages.items()}})


def _run_one_process(model: Path, data: Path, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_one_process, args=(str(model), str(data), str(out), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _run_dask(model: Path, data: Path, out: Path, workers: int) -> dict[str, Any]:
    from distributed import get_task_stream

    from flowad.dask import cluster, write_scores

    t = time.perf_counter()
    with cluster(workers=workers) as client:  # the cluster `flowad score --dask` starts
        client.run(lambda: __import__("flowad.dask._score"))  # imports (torch) belong to start-up
        startup = time.perf_counter() - t
        with get_task_stream(client) as stream:
            t0 = time.perf_counter()
            report = write_scores(model, data, out, client=client)
            seconds = time.perf_counter() - t0
        peaks = client.run(_peak_mb)
        busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"] if s["action"] == "compute")
    return {"seconds": seconds, "rows_done": report.rows, "peak_mb": list(peaks.values()), "startup_s": startup,
            "task_compute_s": busy}


def run_scaleout(sizes: list[int], folder: Path, csv: Path, *, rows_per_file: int, n_features: int, repeats: int,
                 seed: int, epochs: int, work: Path) -> pd.DataFrame:
    """Time every configuration on every size (round-robin), appending rows to ``csv``."""
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=[*KEY])
    have = {tuple(r) for r in done[KEY].itertuples(index=False)}
    model = fit_model(work / "model.flowad", n_features=n_features, seed=seed, epochs=epochs)
    for rows in sizes:
        data = make_data(work, rows, rows_per_file=rows_per_file, n_features=n_features, seed=seed)
        for repeat in range(repeats):
            for config in CONFIGS:
                if (rows, config, repeat) in have:
                    continue
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                if config == "1 process":
                    res = _run_one_process(model, data, out)
                else:
                    res = _run_dask(model, data, out, int(config.split()[1]))
                shutil.rmtree(out, ignore_errors=True)
                if res["rows_done"] != rows:
                    raise RuntimeError(f"{config} scored {res['rows_done']} rows, not {rows}.")
                row = {"rows": rows, "config": config, "repeat": repeat, "partitions": -(-rows // rows_per_file),
                       "n_features": n_features, "seconds": res["seconds"], "rows_per_s": rows / res["seconds"],
                       "peak_mb_per_process": max(res["peak_mb"]), "peak_mb_all": ";".join(f"{p:.0f}" for p in res["peak_mb"]),
                       **{k: res.get(k, np.nan) for k in ("startup_s", "task_compute_s", "read_s", "score_s", "write_s")}}
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                done.to_csv(csv, index=False)
    return done


def format_scaleout(table: pd.DataFrame, *, command: str, rows_per_file: int, cores: int) -> str:
    """The markdown report: medians per (rows, config), the ratio to 1 process, and where the time goes."""
    med = table.groupby(["rows", "config"], sort=False).median(numeric_only=True).reset_index()
    lines = [
        "# Scale-out of scoring: 1 process vs a local Dask cluster",
        "",
        f"Command: `{command}`",
        "",
        f"Parquet files of {rows_per_file:,} rows (one row group = one partition), {int(med['n_features'].iloc[0])} float64 features; "
        "RobustRealNVP at its default architecture; each configuration reads, scores and writes every partition "
        f"(one Parquet part each). Machine: {cores} cores, shared with other jobs while this ran. Medians over "
        f"{int(table['repeat'].max()) + 1} round(s); raw rows in `scaleout.csv`.",
        "",
        "| rows | configuration | seconds | rows/s | vs 1 process | peak MB per process (max) | peak MB of each |",
        "|---|---|---|---|---|---|---|",
    ]
    for rows, group in med.groupby("rows", sort=False):
        base = float(group.loc[group["config"] == "1 process", "rows_per_s"].iloc[0])
        for _, r in group.iterrows():
            each = table[(table["rows"] == rows) & (table["config"] == r["config"])]["peak_mb_all"].iloc[0]
            lines.append(f"| {int(rows):,} | {r['config']} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['rows_per_s'] / base:.2f}x | {r['peak_mb_per_process']:.0f} | {each} |")
    lines += [
        "", "## Where the time goes", "",
        "| rows | configuration | read % | score % | write % | cluster start-up s | worker busy % | task seconds / 1-process seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in med.iterrows():
        workers = 1 if r["config"] == "1 process" else int(r["config"].split()[1])
        if r["config"] == "1 process":
            total = r["read_s"] + r["score_s"] + r["write_s"]
            lines.append(f"| {int(r['rows']):,} | {r['config']} | {100 * r['read_s'] / total:.0f} | {100 * r['score_s'] / total:.0f} | {100 * r['write_s'] / total:.0f} | - | - | 1.00 |")
        else:
            one = float(med.loc[(med["rows"] == r["rows"]) & (med["config"] == "1 process"), "seconds"].iloc[0])
            lines.append(f"| {int(r['rows']):,} | {r['config']} | - | - | - | {r['startup_s']:.1f} | {100 * r['task_compute_s'] / (r['seconds'] * workers):.0f} | {r['task_compute_s'] / one:.2f} |")
    lines += [
        "",
        "Worker busy % = time the workers spent in tasks / (job seconds x workers); the rest is scheduling, "
        "the scatter of the model bytes, the Parquet footers read by the client, and idle time at the end "
        "when fewer partitions than workers remain. Task seconds / 1-process seconds = the workers' summed "
        "task time over the one process's time for the same work: 1.00 when a worker runs as fast as the "
        "one process; above 1 the workers got less than a core each (other jobs on the same cores) or "
        "paid per-task costs. Cluster start-up (worker processes importing torch) is not in the rows/s.",
        "",
        MULTI_MACHINE,
    ]
    return "\n".join(lines)
