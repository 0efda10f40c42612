"""Keeping a load generator's CPU away from what it measures, on a machine of few cores.

An attack generated on the test machine is not free: the hostile clients' own loop takes most
of a core (thousands of connects a second). In production the attackers are elsewhere on the
network; here, on two cores, they competed with the gateway, Redis and the process that
measures the normal clients' latency, and the figure measured the attackers' scheduling as
much as the pod. Like the bench rig (servers on one CPU, load generators on the other), the
scenario gives the attackers (this test process) the last CPU and everything it measures the
others, for the length of the measurement.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

__all__ = ["apart"]


def _threads(pid: int) -> list[int]:
    """Every thread of `pid` (affinity is per thread on Linux)."""
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def _pin(pid: int, cpus: set[int]) -> None:
    for tid in _threads(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def apart(measured: Iterable[int]) -> Iterator[bool]:
    """Run this process on the last CPU it may use and the `measured` processes on the others,
    for the block; True if it could (False, and nothing changed, with fewer than 2 CPUs)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    pids = list(measured)
    saved = {pid: os.sched_getaffinity(pid) for pid in pids}
    mine = os.sched_getaffinity(0)
    try:
        for pid in pids:
            _pin(pid, set(cpus[:-1]))
        _pin(os.getpid(), {cpus[-1]})
        yield True
    finally:
        _pin(os.getpid(), mine)
        for pid, cpus_before in saved.items():
            _pin(pid, cpus_before)
