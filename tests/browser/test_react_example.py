"""examples/react in a real Chromium against a real `gamesync gateway --demo` process.

The app is the production build (scripts/test runs `npm ci` and `npm run build` in
examples/react) under `vite preview`, which also serves the app's stand-in for Nommie's
backend routes. The page uses `@gamesync/client` as the package's README tells Nommie to:
GameSyncProvider, a token function, `initial` state, a status badge, `refresh()` after a 409.
"""

from __future__ import annotations

import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import EXAMPLE, REPO, Browser, ExampleApp, GatewayProcess

pytestmark = pytest.mark.browser

USERS = ["1", "2", "3", "4"]
TSC = EXAMPLE / "node_modules" / "typescript" / "bin" / "tsc"
CLIENT_SOURCE = REPO / "clients" / "js" / "src"
CLIENT_INSTALLED = EXAMPLE / "node_modules" / "@gamesync" / "client" / "src"

STATUS = "() => document.getElementById('status')?.dataset.status ?? null"
CONNECTED = f"() => ({STATUS})() === 'connected'"
VERSION_ABOVE = """(floor) => {
  const version = Number(document.getElementById('version')?.textContent);
  return Number.isInteger(version) && version > floor ? version : false;
}"""
# One read of everything the page shows, so that the fields belong to the same render.
SHOWN = """() => {
  const by = (id) => document.getElementById(id);
  const data = (id) => ({ ...(by(id)?.dataset ?? {}) });
  return {
    status: by('status')?.dataset.status ?? null,
    version: Number(by('version')?.textContent),
    initialVersion: Number(
      document.querySelector('[data-initial-version]')?.dataset.initialVersion),
    firstRender: data('first-render'),
    handSeat: by('hand')?.dataset.seat ?? null,
    cards: [...document.querySelectorAll('#hand .card')].map((el) => el.dataset.card),
    seats: [...document.querySelectorAll('#seats tbody tr')].map((tr) => tr.dataset.seat),
    mySeatRow: document.querySelector('#seats tr.mine')?.dataset.seat ?? null,
    transitions: [...document.querySelectorAll('#transitions li')].map((li) => li.dataset.status),
    conflict: data('conflict'),
    text: document.body.innerText,
  };
}"""


def _changed_files(source: Path, installed: Path) -> list[str]:
    return [
        path.name
        for path in sorted(source.iterdir())
        if not (installed / path.name).is_file()
        or (installed / path.name).read_bytes() != path.read_bytes()
    ]


@pytest.fixture(scope="module")
def example_build() -> Path:
    """The built app; rebuilt here when a source is newer than the build (a second or so)."""
    if not (EXAMPLE / "node_modules" / "vite").is_dir():
        pytest.skip("examples/react has no node_modules (npm ci in examples/react)")
    stale = _changed_files(CLIENT_SOURCE, CLIENT_INSTALLED)
    assert not stale, (
        f"examples/react has an older copy of @gamesync/client ({', '.join(stale)} differ): "
        "run `npm ci` in examples/react"
    )
    built = EXAMPLE / "dist" / "index.html"
    inputs = [
        EXAMPLE / "index.html",
        EXAMPLE / "vite.config.js",
        EXAMPLE / "package-lock.json",
        *(EXAMPLE / "src").rglob("*"),
        *CLIENT_INSTALLED.iterdir(),
    ]
    if not built.exists() or max(p.stat().st_mtime for p in inputs) > built.stat().st_mtime:
        result = subprocess.run(
            ["node", str(EXAMPLE / "node_modules" / "vite" / "bin" / "vite.js"), "build"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return built


@pytest.fixture
def app(example_build: Path, gateway: GatewayProcess) -> Iterator[ExampleApp]:
    served = ExampleApp(gateway.public_url)
    served.start()
    try:
        yield served
    finally:
        served.stop()


def open_as(browser: Browser, app: ExampleApp, user: str, **settings: str) -> str:
    """Open the app as `user`; `settings` are more page URL parameters (src/settings.ts)."""
    name = f"user{user}"
    query = urllib.parse.urlencode({"user": user, **settings})
    browser.open(name, f"{app.url}/?{query}")
    return name


def wait_live(browser: Browser, page: str, timeout: float = 15.0) -> int:
    """Connected, with a version; returns the version shown."""
    browser.wait_for(page, CONNECTED, timeout=timeout)
    version: int = browser.wait_for(page, VERSION_ABOVE, 0, timeout=timeout)
    return version


def test_the_example_typechecks_under_tsc_strict(example_build: Path) -> None:
    """The package's `exports` and .d.ts files as a bundler app resolves them (tsconfig.json:
    strict, moduleResolution bundler, exactOptionalPropertyTypes, no skipLibCheck)."""
    result = subprocess.run(
        ["node", str(TSC), "-p", str(EXAMPLE / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Records every state the page's client applies, keyed by version.
RECORD_STATES = """() => {
  window.__states = {};
  window.gamesyncExample.client.on('snapshot', (e) => {
    window.__states[e.version] = { snapshot: e.snapshot, viewer: e.viewer ?? null };
  });
  return true;
}"""
# The REST snapshot of the page's user (the stand-in's own full-snapshot client), and the
# state the page held at that version, once it has held it.
REST_AND_HELD = """async (user) => {
  const rest = await (await fetch(`/api/games/1/state?user=${user}`, { cache: 'no-store' })).json();
  const held = window.__states[rest.version];
  return held ? { rest: { snapshot: rest.data, viewer: rest.viewer ?? null }, held } : false;
}"""


def assert_holds_the_full_snapshots(browser: Browser, page: str, user: str) -> None:
    """The page's state equals the REST (full) snapshot of the same version, three times over."""
    browser.evaluate(page, RECORD_STATES)
    compared = 0
    for _ in range(30):  # bounded: the demo publishes once a second
        pair = browser.evaluate(page, REST_AND_HELD, user)
        if pair:
            assert pair["held"] == pair["rest"]
            compared += 1
            if compared == 3:
                return
        shown = browser.evaluate(
            page, "() => Number(document.getElementById('version').textContent)"
        )
        browser.wait_for(page, VERSION_ABOVE, shown, timeout=10)
    pytest.fail(f"compared only {compared} versions with the REST snapshot")


def delta_deliveries(gateway: GatewayProcess) -> float:
    """The gateway's `gamesync_delta_deliveries_total`."""
    for line in gateway.metrics_text().splitlines():
        if line.startswith("gamesync_delta_deliveries_total "):
            return float(line.split()[1])
    raise AssertionError("no gamesync_delta_deliveries_total in /metrics")


@pytest.mark.parametrize("delta", ["off", "on"])
def test_the_app_renders_initial_state_then_connects_and_follows_live_snapshots(
    browser: Browser, gateway: GatewayProcess, app: ExampleApp, delta: str
) -> None:
    page = open_as(browser, app, "2", delta=delta)
    try:
        first = wait_live(browser, page)
        later: int = browser.wait_for(page, VERSION_ABOVE, first, timeout=10)
        even_later: int = browser.wait_for(page, VERSION_ABOVE, later, timeout=10)
        assert first < later < even_later

        shown: dict[str, Any] = browser.evaluate(page, SHOWN)
        # The first render showed `initial` (the REST snapshot) before the socket was up.
        assert int(shown["firstRender"]["version"]) == shown["initialVersion"]
        assert shown["firstRender"]["status"] in {"disconnected", "connecting"}
        assert shown["initialVersion"] <= first
        # The hook connects on mount; `connected` only after the gateway's welcome. (The
        # timeline starts at the status it found when it mounted.)
        transitions = [t for t in shown["transitions"] if t != "disconnected"]
        assert transitions[:2] == ["connecting", "connected"], shown["transitions"]
        assert shown["transitions"][-1] == "connected"
        assert shown["status"] == "connected"
        assert shown["seats"] == ["0", "1", "2", "3"]
        assert shown["mySeatRow"] == "1"
        assert shown["handSeat"] == "1"

        # One socket for the page, one for the stand-in's REST mirror of user 2's view.
        gateway.wait_for_stats(lambda s: s["connections"] == 2 and s["subscriptions"] == 2)
        app.wait_for_output(r"stand-in: GET /api/ws-token user=2 200")
        assert browser.evaluate(page, "() => document.getElementById('delta').dataset.delta") == (
            delta
        )
        assert_holds_the_full_snapshots(browser, page, "2")
        # Deltas only for the page that asked (the stand-in's mirror never does).
        assert (delta_deliveries(gateway) > 0) is (delta == "on")
        browser.screenshot(page, f"react-example-live-delta-{delta}")
    finally:
        browser.close_page(page)


@pytest.mark.parametrize("delta", ["off", "on"])
def test_each_user_sees_only_their_own_hand(
    browser: Browser, gateway: GatewayProcess, app: ExampleApp, delta: str
) -> None:
    """With deltas too: each page's state is built from its own patches, viewer included."""
    pages = [open_as(browser, app, user, delta=delta) for user in USERS]
    try:
        for page in pages:
            wait_live(browser, page)
        # Read all four pages until they show the same version with cards dealt (the demo
        # publishes once a second, so most reads agree; a deal in progress has no cards).
        views: list[dict[str, Any]] = []
        for _ in range(40):
            views = [browser.evaluate(page, SHOWN) for page in pages]
            versions = {view["version"] for view in views}
            if len(versions) == 1 and all(view["cards"] for view in views):
                break
            browser.wait_for(pages[0], VERSION_ABOVE, min(versions), timeout=10)
        else:
            pytest.fail(f"the four pages never showed one version with cards: {views}")

        hands = [set(view["cards"]) for view in views]
        for index, (user, view) in enumerate(zip(USERS, views, strict=True)):
            assert view["handSeat"] == str(index), f"user {user} was shown seat {view['handSeat']}"
            assert view["mySeatRow"] == str(index)
            for other in range(4):
                if other != index:
                    assert not hands[index] & hands[other], f"user {user} shares cards"
        assert len({len(hand) for hand in hands}) == 1, "every seat holds as many cards"
        for page, user in zip(pages, USERS, strict=True):
            browser.screenshot(page, f"react-example-user-{user}-delta-{delta}")
        assert (delta_deliveries(gateway) > 0) is (delta == "on")
        # Four pages, four sockets (plus the stand-in's four mirrors): never a second one.
        gateway.wait_for_stats(lambda s: s["connections"] == 8)
    finally:
        for page in pages:
            browser.close_page(page)


@pytest.mark.parametrize("delta", ["off", "on"])
def test_a_409_makes_the_app_refresh_through_the_rest_route(
    browser: Browser, gateway: GatewayProcess, app: ExampleApp, delta: str
) -> None:
    """With deltas too: the state `refresh()` primes from REST is never taken for a delta's
    base, so what the page holds afterwards is still each version's full snapshot."""
    page = open_as(browser, app, "3", delta=delta)
    try:
        wait_live(browser, page)
        browser.wait_for(page, "() => document.querySelectorAll('#hand .card').length > 0")
        mark = app.output_mark
        browser.evaluate(page, "() => document.querySelector('#hand .card').click()")
        step = browser.wait_for(
            page,
            "() => { const s = document.getElementById('conflict')?.dataset.step;"
            " return s === 'refreshed' || s === 'failed' ? s : false; }",
        )
        shown: dict[str, Any] = browser.evaluate(page, SHOWN)
        assert step == "refreshed", shown["text"]
        conflict_version = int(shown["conflict"]["currentVersion"])
        assert shown["version"] >= conflict_version
        app.wait_for_output(r"stand-in: POST /api/games/1/moves user=3 409 v\d+", start=mark)
        refreshed = app.wait_for_output(
            r"stand-in: GET /api/games/1/state user=3 (200|304) v\d+", start=mark
        )
        # The version the REST route answered went through the client's version gate.
        assert int(refreshed.rsplit("v", 1)[1]) <= browser.evaluate(
            page, "() => Number(document.getElementById('version').textContent)"
        )
        assert_holds_the_full_snapshots(browser, page, "3")
        assert (delta_deliveries(gateway) > 0) is (delta == "on")
        browser.screenshot(page, f"react-example-after-409-delta-{delta}")
    finally:
        browser.close_page(page)


@pytest.mark.parametrize("delta", ["off", "on"])
def test_the_app_survives_a_gateway_restart_on_the_same_port(
    browser: Browser, gateway: GatewayProcess, app: ExampleApp, delta: str
) -> None:
    """With deltas too: the new gateway starts the page with a full snapshot, then deltas."""
    page = open_as(browser, app, "4", delta=delta)
    try:
        before = wait_live(browser, page)
        gateway.stop(signal.SIGTERM)
        browser.wait_for(page, f"() => ({STATUS})() === 'reconnecting'", timeout=15)

        gateway.start()
        # The restarted dev gateway signs with new keys. The token function is asked on every
        # connect, so the page presents the new gateway's token from /api/ws-token (while the
        # gateway is down the stand-in cannot get one: `token_unavailable`, and backoff).
        browser.wait_for(page, CONNECTED, timeout=40)
        after: int = browser.wait_for(page, VERSION_ABOVE, before, timeout=15)
        newer: int = browser.wait_for(page, VERSION_ABOVE, after, timeout=15)
        assert before < after < newer

        shown: dict[str, Any] = browser.evaluate(page, SHOWN)
        transitions = shown["transitions"]
        first_connected = transitions.index("connected")
        assert "reconnecting" in transitions[first_connected:]
        assert "disconnected" not in transitions[first_connected:], transitions
        assert transitions[-1] == "connected"
        assert shown["handSeat"] == "3"
        # The page holds exactly one socket again (the other is the stand-in's mirror).
        gateway.wait_for_stats(lambda s: s["connections"] == 2 and s["subscriptions"] == 2)
        # The restarted gateway's own counter: deltas after the reconnect, only when asked.
        assert_holds_the_full_snapshots(browser, page, "4")
        assert (delta_deliveries(gateway) > 0) is (delta == "on")
        browser.screenshot(page, f"react-example-after-restart-delta-{delta}")
    finally:
        browser.close_page(page)
