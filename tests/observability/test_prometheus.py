"""The chart's dashboard and alert rules in a real Prometheus, scraping a real gateway process
and the operator's metrics endpoint through a scripted scenario.

Prometheus scrapes as the chart's monitors do: the gateway as job `gamesync-gateway`, the
operator with the job and `honorLabels` of the chart's rendered ServiceMonitor (its series carry
the GameSyncCluster's namespace), both targets labelled `namespace` and `pod`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import websockets
import yaml
from prometheus_client import make_asgi_app
from prometheus_server import Prometheus, eventually, running_prometheus

from gamesync_operator.metrics import OperatorMetrics
from gamesync_testing import PUBLISH_TOKEN, Keys, serve_app

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "gamesync-operator" / "files"
ALERTS = FILES / "alerts.yaml"
NAMESPACE = "games"
POD = "gw-0"
#: What Grafana would put in the dashboard's variables; the window covers the whole scenario.
VARIABLES = {"$__rate_interval": "1m", "$namespace": NAMESPACE, "$pod": POD}


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    public: str
    internal: str


@contextlib.asynccontextmanager
async def gateway_process(keys: Keys) -> AsyncIterator[GatewayProcess]:
    """`gamesync gateway` with real keys and a publish token, on loopback ports."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gamesync",
        "gateway",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--internal-port",
        "0",
        "--keys",
        str(keys.jwks_path),
        "--publish-token",
        PUBLISH_TOKEN,
        "--pod-name",
        POD,
        "--authz",
        "open",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, "the gateway exited before it was ready"
                match = re.match(r"GAMESYNC_READY public=(\S+) internal=(\S+)", line)
                if match:
                    break
        yield GatewayProcess(process, match.group(1), match.group(2))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _target(url: str, job: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "job_name": job,
        "static_configs": [{"targets": [url.removeprefix("http://")], "labels": labels}],
        **extra,
    }


def _operator_scrape(url: str) -> dict[str, Any]:
    """A scrape job for `url` with the job name and honorLabels of the chart's ServiceMonitor."""
    with helm.Chart.load(ROOT / "charts" / "gamesync-operator") as chart:
        manifests = chart.render({"serviceMonitor": {"enabled": True}}, name="gs", namespace="ops")
    [monitor] = [
        doc
        for template, text in manifests.items()
        if template.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "ServiceMonitor"
    ]
    [endpoint] = monitor["spec"]["endpoints"]
    [job] = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    labels = {"namespace": "ops", "pod": "gs-gamesync-operator-0"}
    return _target(url, job, labels, honor_labels=endpoint["honorLabels"])


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target, Grafana's variables filled in."""
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            queries.append((panel["title"], expr))
    return queries


async def _close_with(gateway: GatewayProcess, token: str, code: int | None = None) -> None:
    """Connect with `token`; close with `code` once welcomed, or read until the server closes."""
    url = gateway.public.replace("http://", "ws://") + "/ws"
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(10), websockets.connect(url, additional_headers=headers) as ws:
        if code is None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
        else:
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.close(code, "bye")


async def _publish(gateway: GatewayProcess, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.internal, timeout=5) as client:
        return await client.post(
            "/v1/games/1/snapshots",
            content=body,
            headers={"Authorization": f"Bearer {PUBLISH_TOKEN}"},
        )


async def _scenario(gateway: GatewayProcess, keys: Keys, tmp_path: Path) -> list[Any]:
    """Watchers, refused tokens, client closes, publishes (new, stale, invalid). Returns the
    watchers' sockets, still open."""
    url = gateway.public.replace("http://", "ws://") + "/ws/games/1"
    watchers = []
    for user in ("1", "2", "3"):
        ws = await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {keys.token(user)}"}
        )
        async with asyncio.timeout(10):
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
        watchers.append(ws)
    (tmp_path / "stranger").mkdir()
    stranger = Keys.generate(tmp_path / "stranger", kid="stranger")  # a key the gateway lacks
    await _close_with(gateway, "not-a-token")
    await _close_with(gateway, keys.token("4", ttl=-3600))
    await _close_with(gateway, stranger.token("5"))
    await _close_with(gateway, keys.token("6"), code=4321)
    await _close_with(gateway, keys.token("7"), code=3002)
    await _close_with(gateway, keys.token("8"), code=1000)
    for version in (1, 2):
        doc = {"gameId": 1, "version": version, "snapshot": {"turn": version}}
        assert (await _publish(gateway, json.dumps(doc).encode())).json() == {"published": True}
    stale = {"gameId": 1, "version": 1, "snapshot": {"turn": 1}}
    assert (await _publish(gateway, json.dumps(stale).encode())).json() == {"published": False}
    assert (await _publish(gateway, b"{not json")).status_code == 400
    for ws in watchers:  # both versions reached every watcher
        async with asyncio.timeout(10):
            while json.loads(await ws.recv()).get("gameVersion") != 2:
                pass
    return watchers


def _evaluated_at(rule: dict[str, Any]) -> datetime:
    """A rule's lastEvaluation (RFC 3339 with nanoseconds) as a datetime (microseconds)."""
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", rule["lastEvaluation"]).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp)


async def _wait_for_rules_evaluated(
    prometheus: Prometheus, count: int, *, since: datetime
) -> list[dict[str, Any]]:
    """Every rule, once each has been evaluated after `since` (so on data scraped by then)."""

    async def evaluated() -> list[dict[str, Any]] | None:
        rules = await prometheus.rules()
        done = [r for r in rules if _evaluated_at(r) > since]
        return rules if len(rules) == count and len(done) == count else None

    return await eventually(evaluated, timeout=15, what="every rule evaluated")


async def _wait_for_state(prometheus: Prometheus, alert: str, states: set[str]) -> str:
    async def reached() -> str | None:
        state = await prometheus.alert_state(alert)
        return state if state in states else None

    return await eventually(reached, timeout=30, what=f"{alert} in {states}")


@pytest.mark.timeout(180)
async def test_dashboard_and_rules_work_against_a_real_prometheus_and_gateway(
    prometheus_binary: str, keys: Keys, tmp_path: Path
) -> None:
    operator_metrics = OperatorMetrics()
    operator_metrics.observed(NAMESPACE, "arena", connections=0, desired=1, ready=1)
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(gateway_process(keys))
        operator = contextlib.AsyncExitStack()
        stack.push_async_callback(operator.aclose)
        operator_url = await operator.enter_async_context(
            serve_app(make_asgi_app(registry=operator_metrics.registry))
        )
        scrape = [
            _target(gateway.internal, "gamesync-gateway", {"namespace": NAMESPACE, "pod": POD}),
            _operator_scrape(operator_url),
        ]
        prometheus = await stack.enter_async_context(
            running_prometheus(
                prometheus_binary, tmp_path, scrape_configs=scrape, rule_files=[ALERTS]
            )
        )
        await _check_dashboard_and_rules(prometheus, gateway, keys, tmp_path)
        await _check_silent_cases_fire(prometheus, gateway, operator)


async def _check_dashboard_and_rules(
    prometheus: Prometheus, gateway: GatewayProcess, keys: Keys, tmp_path: Path
) -> None:
    # Day one: before any event, the first failure of each kind already has a 0 to rise from.
    malformed = 'gamesync_auth_failures_total{reason="malformed token"}'

    async def zero_scraped() -> float | None:
        return await prometheus.value(malformed)

    assert await eventually(zero_scraped, timeout=20, what="the gateway scraped") == 0
    # Every transport's gauge is exported from the start, at 0 (not "no data").
    open_now = await prometheus.query('gamesync_connections{state="open"}')
    assert {r["metric"]["transport"]: float(r["value"][1]) for r in open_now} == {
        "websocket": 0.0,
        "sse": 0.0,
    }

    watchers = await _scenario(gateway, keys, tmp_path)

    async def scenario_scraped() -> float | None:
        stale = await prometheus.value('gamesync_http_publishes_total{result="stale"}')
        return stale if stale else None

    await eventually(scenario_scraped, timeout=20, what="the scenario scraped")

    # Every panel's every query parses and returns data.
    empty = [
        (title, expr) for title, expr in _dashboard_queries() if not await prometheus.query(expr)
    ]
    assert empty == []
    assert NAMESPACE in await prometheus.label_values("namespace", "gamesync_ready")

    # ... and the right data: the first failure counted, client codes bucketed, HTTP apart.
    assert (await prometheus.value(f"increase({malformed}[1m])") or 0) > 0
    by_code = {
        r["metric"]["code"]: float(r["value"][1])
        for r in await prometheus.query(
            'sum by (code) (increase(gamesync_closes_total{reason="client"}[1m]))'
        )
    }
    assert by_code["client_4xxx"] > 0
    assert by_code["client_3xxx"] > 0
    assert by_code["1000"] > 0
    assert not {"4321", "3002"} & set(by_code)
    assert await prometheus.value('sum(gamesync_connections{state="open"})') == 3
    assert await prometheus.value('gamesync_http_publishes_total{result="invalid"}') == 1
    assert await prometheus.value("max(gamesync_games)") == 1
    for ws in watchers:
        await ws.close()

    # Every rule loads and evaluates cleanly; nothing fires while everything runs.
    rule_count = len(re.findall(r"^\s+- alert:", ALERTS.read_text(), re.MULTILINE))
    # The operator's target may be scraped after the gateway's: until then its absent rule is
    # rightly pending. Judge the rules on an evaluation that saw both targets.
    await eventually(
        lambda: prometheus.value("gamesync_operator_build_info"),
        timeout=20,
        what="the operator scraped",
    )
    since = datetime.now(UTC)
    rules = await _wait_for_rules_evaluated(prometheus, rule_count, since=since)
    assert {r["name"]: r["health"] for r in rules} == {r["name"]: "ok" for r in rules}
    assert {r["name"]: r["state"] for r in rules if r["state"] != "inactive"} == {}


async def _check_silent_cases_fire(
    prometheus: Prometheus, gateway: GatewayProcess, operator: contextlib.AsyncExitStack
) -> None:
    """The gateway dies, then the operator's endpoint: their series vanish, which the other
    rules cannot see; the absent and target-down rules go pending (`for:` then fires them)."""
    gateway.process.send_signal(signal.SIGKILL)
    await gateway.process.wait()
    for alert in ("GameSyncGatewayTargetDown", "GameSyncGatewaysAbsent"):
        assert await _wait_for_state(prometheus, alert, {"pending", "firing"})
    assert await prometheus.alert_state("GameSyncNoReadyGateways") == "inactive"  # blind to it
    assert await prometheus.alert_state("GameSyncOperatorAbsent") == "inactive"

    await operator.aclose()
    for alert in ("GameSyncOperatorTargetDown", "GameSyncOperatorAbsent"):
        assert await _wait_for_state(prometheus, alert, {"pending", "firing"})
