"""The bench rig's gateways: the crowd scenarios (idle, storm) lift admission pacing."""

from __future__ import annotations

from pathlib import Path

from gamesync.bench.rig import Rig, admission_limits
from gamesync.bench.tokens import make_credentials


async def test_an_unpaced_gateway_admits_a_crowd_at_once_and_the_default_is_paced(
    tmp_path: Path,
) -> None:
    async with Rig(tmp_path, make_credentials(tmp_path / "keys", 1)) as rig:
        unpaced = await admission_limits(await rig.gateway(paced=False))
        paced = await admission_limits(await rig.gateway())
    assert unpaced["admission_rate"] >= 1e6
    assert unpaced["admission_burst"] >= 1e6
    assert (paced["admission_rate"], paced["admission_burst"]) == (500, 500)
