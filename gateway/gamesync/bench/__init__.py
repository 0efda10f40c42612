"""`gamesync bench`: load scenarios that measure GameSync against its baselines.

The entry point is :func:`gamesync.bench.cli.main`; the scenarios and their registry are in
:mod:`gamesync.bench.scenarios`; everything else is internal to the harness (load client,
baseline servers, process orchestration, results and plots). Importing this package imports
nothing: :mod:`gamesync.bench.wire` (standard library only) is also used by the tests.
"""

__all__: list[str] = []
