"""Atomic file replacement shared by model files and output tables.

:func:`atomic_write` writes into a temporary file created in the target's folder under a unique
name ``.<target name>.<pid>.<random>.flowad-tmp``, fsyncs it, gives it the mode the target
should have (an existing target keeps its mode; a new file gets the umask default, as
``open()`` would, not ``mkstemp``'s 0600) and renames it over the target with
:func:`os.replace`. Concurrent writers to one path therefore never share a temporary file, and
a reader sees the old file or one complete new one, never a mix (the last rename wins).

Any exception removes the temporary file. A process killed outright (``kill -9``, power loss)
cannot clean up; its temporary file is removed by the next write to the same path once it is
recognisably stale: the process named in it is no longer alive (same machine), or it is older
than :data:`STALE_AFTER_S` seconds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["STALE_AFTER_S", "atomic_write", "remove_stale_temporaries", "temporary_name"]

#: A temporary file older than this is removed even if the process named in it still runs
#: (pid reuse, or a writer on another machine of a shared file system).
STALE_AFTER_S = 24 * 3600.0
_SUFFIX = ".flowad-tmp"


def temporary_name(target: Path) -> Path:
    """A fresh, unique temporary path next to ``target`` (see the module docstring)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}{_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill(pid, 0) would terminate the process: rely on age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep it
    return True


def remove_stale_temporaries(target: Path, *, now: float | None = None) -> list[Path]:
    """Remove temporary files of earlier writes to ``target`` whose writer is gone; returns them."""
    prefix = f".{target.name}."
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
            continue
        middle = name[len(prefix) : -len(_SUFFIX)].split(".")
        if len(middle) != 2 or not middle[0].isdigit():
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > STALE_AFTER_S or not _pid_alive(int(middle[0])):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # removed by someone else meanwhile, or not ours to remove
    return removed


def _umask() -> int:
    """The process umask, without changing it (Linux exposes it in /proc; elsewhere set and restore)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(target: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a unique temporary binary file, then rename it over ``target``.

    The target's folder must exist. Stale temporary files of earlier writes to ``target``
    are removed first (see the module docstring).
    """
    target = Path(target)
    remove_stale_temporaries(target)
    tmp = temporary_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _target_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
