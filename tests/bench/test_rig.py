"""The bench rig's gateways: admission pacing is lifted unless a scenario asks for it."""

from __future__ import annotations

from pathlib import Path

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
