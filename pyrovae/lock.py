"""The lock file that keeps two trainings out of one run folder.

``run.lock`` holds the pid, host name and start time of the process that
trains into the folder. It is created with ``O_CREAT | O_EXCL`` and, while
the run lasts, held with an exclusive ``flock``. The kernel drops a ``flock``
when its process dies, however it dies (``kill -9`` included), so a lock file
whose ``flock`` can be taken belongs to a dead process: it is stale, and the
next run takes it over with a warning. Where ``flock`` is not available the
same decision falls back to the pid: a lock from this host whose pid no longer
runs is stale.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .errors import PyroVAEError, PyroVAEWarning

try:
    import fcntl
except ImportError:  # not POSIX: fall back to the pid check
    fcntl = None  # type: ignore[assignment]

#: Attempts to lock a file that keeps vanishing (its holder removes it as it finishes).
_ATTEMPTS = 5


class StaleLockWarning(PyroVAEWarning):
    """A run folder's lock was left by a process that no longer runs, and was taken over."""


def _proc_stat(pid: int) -> Optional[Tuple[str, str]]:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from ``/proc``, or None without it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces; it ends with ')'
    return fields[0], fields[19]


def _pid_alive(info: Dict[str, Any]) -> bool:
    """Whether the lock's process still runs; a lock from another host counts as alive."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    stat = _proc_stat(pid)
    if stat is None:  # no /proc: os.kill found the pid, that is all we know
        return True
    state, start = stat
    recorded = info.get("proc_start")
    # A zombie has exited; another start time means the pid now belongs to another process.
    return state != "Z" and (recorded is None or recorded == start)


def _describe(info: Dict[str, Any]) -> str:
    pid = info.get("pid", "?")
    return f"pid {pid} on {info.get('host', '?')} (started {info.get('started', '?')})"


def in_use_error(path: Path, info: Dict[str, Any]) -> PyroVAEError:
    """The error for a run folder whose lock file ``path`` is held by the process ``info`` describes."""
    return PyroVAEError(f"run folder {path.parent} is in use by {_describe(info)}; "
                        f"wait for it to finish, or delete {path} if that process is gone")


class RunLock:
    """An exclusive lock on a run folder, as the file ``path``.

    Use :meth:`acquire` and :meth:`release` (or ``with RunLock(path):``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: Optional[int] = None

    # -- acquiring -------------------------------------------------------------------------

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`PyroVAEError` naming the process that holds it.

        A stale lock (its process is gone) is taken over with a :class:`StaleLockWarning`.
        """
        for _ in range(_ATTEMPTS):
            fd, fresh = self._open()
            if fd is None:
                continue
            previous = {} if fresh else _read(fd)
            if not self._try_lock(fd, previous):
                os.close(fd)
                raise in_use_error(self.path, previous)
            if self._still_ours(fd):
                break
            os.close(fd)  # the holder removed the file as we locked it: lock the new one
        else:
            raise PyroVAEError(f"could not lock {self.path}: it keeps being replaced")
        if not fresh:
            warnings.warn(f"took over the stale lock of {_describe(previous)} on {self.path.parent}: "
                          "that process is gone", StaleLockWarning, stacklevel=2)
        _write(fd, self._info())
        self._fd = fd
        return self

    def _open(self) -> tuple[Optional[int], bool]:
        """``(fd, created)``; ``fd`` is None when the file vanished between two calls."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            pass
        try:
            return os.open(self.path, os.O_RDWR), False
        except FileNotFoundError:
            return None, False

    @staticmethod
    def _try_lock(fd: int, previous: Dict[str, Any]) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        return not previous or not _pid_alive(previous)

    def _still_ours(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _info() -> Dict[str, Any]:
        pid = os.getpid()
        stat = _proc_stat(pid)
        return {"pid": pid, "host": socket.gethostname(), "proc_start": stat and stat[1],
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    # -- releasing -------------------------------------------------------------------------

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlink first, so no one locks a dying file)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # -- looking ---------------------------------------------------------------------------

    def holder(self) -> Optional[Dict[str, Any]]:
        """What the lock file says about a live holder, or None when it is absent or stale."""
        if self._fd is not None:
            return _read(self._fd)
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            info = _read(fd)
            if not self._try_lock(fd, info):
                return info
            return None
        finally:
            os.close(fd)  # closing drops a probe flock at once


def _read(fd: int) -> Dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}


def _write(fd: int, info: Dict[str, Any]) -> None:
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
