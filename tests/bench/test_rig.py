"""The bench rig: its gateways' admission pacing is lifted unless a scenario asks for it; the
busy loop that keeps the servers' CPU awake."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from gamesync.bench.procs import server_cpus
from gamesync.bench.rig import Rig, admission_limits
from gamesync.bench.tokens import make_credentials


async def test_a_bench_gateway_admits_a_crowd_at_once_unless_pacing_is_asked_for(
    tmp_path: Path,
) -> None:
    async with Rig(tmp_path, make_credentials(tmp_path / "keys", 1)) as rig:
        unpaced = await admission_limits(await rig.gateway())
        paced = await admission_limits(await rig.gateway(paced=True))
    assert unpaced["admission_rate"] >= 1e6
    assert unpaced["admission_burst"] >= 1e6
    assert (paced["admission_rate"], paced["admission_burst"]) == (500, 500)


async def test_keep_awake_spins_at_idle_priority_on_the_servers_cpu_and_stops_with_the_rig(
    tmp_path: Path,
) -> None:
    if server_cpus() is None:
        pytest.skip("servers are not pinned on this machine (one CPU or no taskset)")
    async with Rig(tmp_path, None) as rig:
        spinner = await rig.keep_awake()
        assert spinner is not None
        pid = spinner.proc.pid
        deadline = time.monotonic() + 10
        # taskset execs the interpreter, which then lowers its own policy: wait for it
        while os.sched_getscheduler(pid) != os.SCHED_IDLE:
            assert time.monotonic() < deadline, "the busy loop never went to idle priority"
            await asyncio.sleep(0.05)
        assert os.sched_getaffinity(pid) == {int(server_cpus() or "0")}
    assert spinner.proc.returncode is not None  # stopped with the rig
