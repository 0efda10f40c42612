"""The benchmark scenarios, one module each, and the one registry the CLI and the digest read.

Every scenario measures GameSync and its baseline in the same invocation, so the figures that
matter are ratios from one run on one (noisy) machine. Every loop is bounded: connection ramps
and replies have deadlines, publishing windows have a fixed count and length.

Adding a scenario is one module here that defines ``run(ctx) -> Measurement`` and
``SCENARIO = Scenario(name, run, defaults, columns)``, and one entry in :data:`SCENARIOS`;
``gamesync bench NAME`` then runs it and writes its JSON, digest and plot. Shared pieces: the
rig (``gamesync.bench.rig``), the push run of ``latency``/``peer``/``slow`` (:mod:`.push`), the
steps in :mod:`.steps`, and the delivery accounting (``gamesync.bench.accounting``).
"""

from __future__ import annotations

from gamesync.bench.scenarios import (
    affinity,
    bandwidth,
    fanout,
    idle,
    latency,
    peer,
    polling,
    slow,
    storm,
    throughput,
)
from gamesync.bench.scenarios.contract import Context, Measurement, Options, Scenario

__all__ = ["SCENARIOS", "Context", "Measurement", "Options", "Scenario"]

# In the order the CLI lists them.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        fanout.SCENARIO,
        latency.SCENARIO,
        peer.SCENARIO,
        polling.SCENARIO,
        idle.SCENARIO,
        slow.SCENARIO,
        throughput.SCENARIO,
        bandwidth.SCENARIO,
        storm.SCENARIO,
        affinity.SCENARIO,
    )
}
