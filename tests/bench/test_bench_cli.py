"""`gamesync bench`'s command: what it records around a scenario, in the result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gamesync.bench import cli, procs, results
from gamesync.bench.scenarios import SCENARIOS, Context, Measurement, Scenario


def test_the_load_average_at_start_is_read_before_the_scenario_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readings = iter([[0.5, 0.5, 0.5], [3.0, 3.0, 3.0]])
    monkeypatch.setattr(results, "current_loadavg", lambda: next(readings))
    ran: list[str] = []

    async def busy(ctx: Context) -> Measurement:
        ran.append("scenario")  # the machine's load would climb here
        return Measurement({}, [{"lost": 0}], {}, [])

    fake = Scenario("fanout", busy, {}, ("lost",))
    monkeypatch.setitem(SCENARIOS, "fanout", fake)
    source = tmp_path / "src"
    source.mkdir()
    monkeypatch.setitem(procs.GATEWAY_SOURCE, "path", None)
    args = ["fanout", "--results", str(tmp_path), "--no-plot", "--quiet", "--gateway-src", source]
    code = cli.main([str(a) for a in args])
    assert code == 0
    assert ran == ["scenario"]
    written = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
    assert written["machine"]["loadavg_at_start"] == [0.5, 0.5, 0.5]
    assert written["machine"]["loadavg_at_end"] == [3.0, 3.0, 3.0]
    assert written["machine"]["gateway_source"] == str(source)  # the flag, applied before
