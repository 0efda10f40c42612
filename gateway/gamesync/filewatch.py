"""Poll a file for changes, including a Kubernetes volume's `..data` symlink swap."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from gamesync.supervisor import ErrorLog

__all__ = ["FileWatcher"]

log = logging.getLogger("gamesync.filewatch")

Signature = tuple[str, int, int, int] | None


def signature(path: Path) -> Signature:
    """What identifies a file's content version: resolved target, inode, mtime, size.

    The kubelet updates a mounted Secret by pointing `..data` at a new directory, so the
    resolved path and inode change even when mtime granularity would hide the edit.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


class FileWatcher:
    """Calls `on_change(bytes)` whenever the file's signature changes (and once at start).

    `run` is the watch loop, for a supervisor to own; `start`/`stop` run it as a plain task.
    """

    def __init__(
        self, path: Path, on_change: Callable[[bytes], None], interval: float = 1.0
    ) -> None:
        self.path = path
        self._on_change = on_change
        self._interval = interval
        self._seen: Signature = None
        self._task: asyncio.Task[None] | None = None
        self._errors = ErrorLog(log)

    def check(self) -> bool:
        """Read and hand over the file if it changed; True if it did."""
        current = signature(self.path)
        if current is None or current == self._seen:
            return False
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return False
        self._seen = current
        self._on_change(content)
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"watch {self.path}")

    async def run(self) -> None:
        """Check the file every `interval` seconds, forever."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.check()
            except Exception as exc:  # a bad callback must not end the watch
                self._errors.error("reload", f"reloading {self.path} failed", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
