"""Starting N local ranks (``--nproc N``) and turning a failed rank into one clear error.

Each rank is a fresh process (``spawn``) that sets torchrun's environment variables for itself
(``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
and runs the same code as a rank started by ``torchrun``. The parent watches the processes: the
first rank that dies (a signal, or an exception other than "lost contact with another rank") is
named in the error, the other ranks are stopped at once (nobody waits for a collective timeout),
and the message gives the last checkpoint to resume from.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from flowad import exceptions
from flowad.distributed._train import Job, RankFailedError, checkpoint_stat, resume_hint, run_from_env

__all__ = ["launch", "free_port"]

#: Seconds the other ranks get to stop by themselves once one has failed, before SIGTERM.
GRACE_S = 3.0


def free_port() -> int:
    """A TCP port on localhost that nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(target: Any, args: tuple[Any, ...], rank: int, world: int, port: int, errors: str, threads: int) -> None:
    os.environ.update({
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
    })
    import torch

    torch.set_num_threads(threads)
    try:
        target(*args)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, then the process ends
        record = {
            "type": type(err).__name__,
            "module": type(err).__module__,
            "message": str(err),
            "flowad": isinstance(err, exceptions.FlowadError) and not isinstance(err, RankFailedError),
            "peer_lost": bool(getattr(err, "peer_lost", False)),
            "traceback": traceback.format_exc(),
        }
        Path(errors, f"rank{rank}.json").write_text(json.dumps(record))
        sys.stderr.flush()
        os._exit(1)


def _why(code: int | None, record: dict[str, Any] | None) -> str:
    if record is not None:
        return f"{record['type']}: {record['message'].splitlines()[0] if record['message'] else ''}".rstrip(": ")
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # torch.optim imports torch._dynamo on first use (seconds): import it once, in the server.
        ctx.set_forkserver_preload(["flowad.distributed._launch", "torch._dynamo"])
        return ctx
    return mp.get_context("spawn")


def launch(target: Any, args: tuple[Any, ...], nproc: int, *, checkpoint: str | None = None, resume: str | None = None,
           threads: int | None = None) -> None:
    """Run ``target(*args)`` in ``nproc`` local ranks and wait for all of them.

    Raises the first failing rank's flowad error unchanged (bad data, divergence: the same on
    every rank), or :class:`RankFailedError` naming the rank that died and the checkpoint to
    resume from: ``checkpoint`` if this run wrote it, else ``resume`` (the run's own starting point).

    Ranks are forked from a ``forkserver`` that has imported torch and flowad once (``spawn``
    where there is none), so a rank starts in a fraction of a second. As with any spawning
    launcher, a script that calls this must guard its entry with ``if __name__ == "__main__":``.
    """
    if nproc < 1:
        raise exceptions.InputError(f"--nproc must be >= 1, got {nproc}.")
    threads = threads or max(1, (os.cpu_count() or 1) // nproc)
    ctx = _context()
    before = checkpoint_stat(checkpoint)
    with tempfile.TemporaryDirectory(prefix="flowad-ddp-") as errors:
        port = free_port()
        procs = [ctx.Process(target=_rank_main, args=(target, args, r, nproc, port, errors, threads), name=f"flowad-rank{r}")
                 for r in range(nproc)]
        for p in procs:
            p.start()
        failures: list[tuple[int, int | None, dict[str, Any] | None]] = []
        alive = set(range(nproc))
        deadline = None
        try:
            while alive:
                timeout = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                ready = wait([procs[r].sentinel for r in sorted(alive)], timeout=timeout)
                for r in sorted(alive):
                    if procs[r].sentinel not in ready:
                        continue
                    procs[r].join()
                    alive.discard(r)
                    code = procs[r].exitcode
                    if code != 0:
                        path = Path(errors, f"rank{r}.json")
                        record = json.loads(path.read_text()) if path.is_file() else None
                        failures.append((r, code, record))
                        if deadline is None:
                            deadline = time.monotonic() + GRACE_S
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            for r in sorted(alive):
                procs[r].terminate()
            for r in sorted(alive):
                procs[r].join(5.0)
                if procs[r].is_alive():
                    with contextlib.suppress(OSError):
                        procs[r].kill()
                    procs[r].join()
    if not failures:
        return
    # The culprit: the first rank that failed on its own (not one that only lost its peers).
    primary = [f for f in failures if not (f[2] or {}).get("peer_lost")] or failures
    rank, code, record = primary[0]
    if record is not None and record["flowad"]:
        cls = getattr(exceptions, record["type"], None)
        if isinstance(cls, type) and issubclass(cls, exceptions.FlowadError):
            raise cls(record["message"])
    if record is not None and record["type"] != "RankFailedError" and record.get("traceback"):
        sys.stderr.write(f"[rank {rank}] {record['traceback']}")  # a bug, not a user mistake: show where
    hint = resume_hint(checkpoint, before, resume) if checkpoint else "rerun from the start."
    raise RankFailedError(f"DDP rank {rank} of {nproc} died ({_why(code, record)}); the run stopped; {hint}")


def run_job(job: Job) -> None:
    """A spawned rank's body: train (see :func:`flowad.distributed._train.run_from_env`)."""
    run_from_env(job)
