"""`gamesync bench`: load scenarios that measure GameSync against its baselines.

The entry point is :func:`gamesync.bench.cli.main`; everything else is internal to the
harness (load client, baseline servers, process orchestration, results and plots).
"""

__all__ = ["SCENARIOS"]

SCENARIOS = ("fanout", "latency", "peer", "polling", "idle", "slow")
