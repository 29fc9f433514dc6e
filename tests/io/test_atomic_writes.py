"""Crash hygiene of model files and output tables: unique temporary files, removed on failure and
after a kill -9, file modes kept, concurrent writers to one path."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import flowad
from flowad import RealNVP
from flowad.io import _atomic, model_file
from flowad.io.tables import read_table, write_table

FAST = {"n_couplings": 2, "hidden": (8,), "epochs": 2, "device": "cpu"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(60, 3))


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".flowad-tmp"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------ kill -9
_KILLED_SAVE = """
import os, sys, time
import flowad
from flowad.io import _atomic
det = flowad.load(sys.argv[1])
det.set_params(contamination=0.3)
def stuck(*args):
    print("ready", flush=True)
    time.sleep(120)
_atomic.os.replace = stuck
det.save(sys.argv[1])
"""


def test_kill_9_during_save_keeps_the_old_file_and_the_next_save_removes_the_orphan(X: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    det = RealNVP(**FAST, random_state=0).fit(X)
    det.save(path)
    before = path.read_bytes()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(path)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert path.read_bytes() == before
    orphans = temporaries(tmp_path)
    assert len(orphans) == 1 and orphans[0].startswith(f".m.flowad.{proc.pid}.")
    np.testing.assert_array_equal(flowad.load(path).decision_function(X), det.decision_function(X))
    det.save(path)  # the writer of the orphan is dead: the next save removes it
    assert temporaries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["m.flowad"]


def test_stale_temporaries_are_recognised_by_dead_writer_or_age(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    dead = tmp_path / f".out.csv.{dead_pid()}.0123456789ab.flowad-tmp"
    old_live = tmp_path / f".out.csv.{os.getppid()}.0123456789ab.flowad-tmp"
    fresh_live = tmp_path / f".out.csv.{os.getppid()}.ba9876543210.flowad-tmp"
    own = tmp_path / f".out.csv.{os.getpid()}.aaaaaaaaaaaa.flowad-tmp"  # a concurrent write of this process
    other_target = tmp_path / f".other.csv.{dead_pid()}.0123456789ab.flowad-tmp"
    not_ours = [tmp_path / ".out.csv.notapid.x.flowad-tmp", tmp_path / ".out.csv.tmp.csv", tmp_path / "notes.txt"]
    for p in (dead, old_live, fresh_live, own, other_target, *not_ours):
        p.write_text("partial")
    two_days = time.time() - 2 * 24 * 3600
    os.utime(old_live, (two_days, two_days))
    removed = _atomic.remove_stale_temporaries(target)
    assert sorted(removed) == sorted([dead, old_live])
    assert all(p.exists() for p in (fresh_live, own, other_target, *not_ours))


def test_failed_table_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"a": [1, 2]}), path)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        write_table(pd.DataFrame({"a": [3, 4]}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


# --------------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_saving_over_a_file_keeps_its_mode(mode: int, X: np.ndarray, tmp_path: Path) -> None:
    det = RealNVP(**FAST, random_state=0).fit(X)
    for path, write in ((tmp_path / "m.flowad", det.save), (tmp_path / "t.csv", lambda p: write_table(pd.DataFrame({"a": [1]}), p))):
        write(path)
        os.chmod(path, mode)
        write(path)
        assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_new_files_get_the_umask_default(umask: int, X: np.ndarray, tmp_path: Path) -> None:
    det = RealNVP(**FAST, random_state=0).fit(X)
    old = os.umask(umask)
    try:
        det.save(tmp_path / "m.flowad")
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet" if _has_pyarrow() else tmp_path / "t.csv")
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------- concurrency
def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    a = pd.DataFrame({"id": np.arange(20_000), "score": rng.normal(size=20_000), "writer": "a"})
    b = pd.DataFrame({"id": np.arange(30_000), "score": rng.normal(size=30_000), "writer": "b"})
    return a, b


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_concurrent_table_writers_all_succeed_and_readers_see_whole_tables(suffix: str, tmp_path: Path) -> None:
    if suffix == ".parquet" and not _has_pyarrow():
        pytest.skip("needs pyarrow")
    path = tmp_path / f"out{suffix}"
    frames = _frames()
    write_table(frames[0], path)
    errors: list[BaseException] = []
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def writer(frame: pd.DataFrame) -> None:
        try:
            for _ in range(8):
                write_table(frame, path)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    def reader() -> None:
        try:
            while not done.is_set():
                t = read_table(path)
                seen.append((len(t), "".join(sorted(set(map(str, t["writer"]))))))
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(f,)) for f in frames]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert errors == []
    assert seen and set(seen) <= {(20_000, "a"), (30_000, "b")}
    final = read_table(path)
    assert (len(final), "".join(sorted(set(final["writer"])))) in {(20_000, "a"), (30_000, "b")}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def _write_many(path: str, n: int) -> None:
    frame = pd.DataFrame({"id": np.arange(n), "writer": n})
    for _ in range(15):
        write_table(frame, path)


def test_two_processes_writing_one_table_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    ctx = multiprocessing.get_context("fork")  # no torch work in the children: forking is safe and fast
    procs = [ctx.Process(target=_write_many, args=(str(path), n)) for n in (40_000, 50_000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    final = pd.read_csv(path)
    assert (len(final), set(final["writer"])) in [(40_000, {40_000}), (50_000, {50_000})]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_concurrent_model_saves_to_one_path_give_one_complete_model(X: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "m.flowad"
    dets = [RealNVP(**FAST, random_state=s).fit(X) for s in (0, 1)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def save(det: RealNVP) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                det.save(path)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=save, args=(d,)) for d in dets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    scores = flowad.load(path).decision_function(X)
    assert any(np.array_equal(scores, d.decision_function(X)) for d in dets)
    assert [p.name for p in tmp_path.iterdir()] == ["m.flowad"]


def test_temporary_names_are_unique_and_recognisable(tmp_path: Path) -> None:
    names = {_atomic.temporary_name(tmp_path / "m.flowad").name for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith(f".m.flowad.{os.getpid()}.") and n.endswith(".flowad-tmp") for n in names)


def test_model_file_write_cleans_up_stale_orphans_of_its_target_only(tmp_path: Path) -> None:
    orphan = tmp_path / f".m.flowad.{dead_pid()}.0123456789ab.flowad-tmp"
    orphan.write_bytes(b"x" * 1000)
    keep = tmp_path / f".n.flowad.{dead_pid()}.0123456789ab.flowad-tmp"
    keep.write_bytes(b"x")
    model_file.write_model_file(tmp_path / "m.flowad", {"w": torch.zeros(1)}, {"kind": "x"})
    assert not orphan.exists() and keep.exists()
