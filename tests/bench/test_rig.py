"""The bench rig's gateways: the crowd scenarios (idle, storm) lift admission pacing."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gamesync.bench.rig import Rig, Server
from gamesync.bench.tokens import make_credentials


async def _limits(server: Server) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.internal_port}") as client:
        text = (await client.get("/metrics", timeout=10)).text
    return {
        s.labels["limit"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "gamesync_limit"
        for s in family.samples
    }


async def test_an_unpaced_gateway_admits_a_crowd_at_once_and_the_default_is_paced(
    tmp_path: Path,
) -> None:
    async with Rig(tmp_path, make_credentials(tmp_path / "keys", 1)) as rig:
        unpaced = await _limits(await rig.gateway(paced=False))
        paced = await _limits(await rig.gateway())
    assert unpaced["admission_rate"] >= 1e6
    assert unpaced["admission_burst"] >= 1e6
    assert (paced["admission_rate"], paced["admission_burst"]) == (500, 500)
