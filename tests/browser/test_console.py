"""The dev console in a real Chromium against a real `gamesync gateway --demo` process."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from browser_harness import Browser, GatewayProcess

pytestmark = pytest.mark.browser

DEMO_GAME = 1

STATUS = "() => document.getElementById('status').dataset.status"
CONNECTED = "() => document.getElementById('status').dataset.status === 'connected'"
VERSION_ABOVE = """(floor) => {
  const version = Number(document.getElementById('version').textContent);
  return Number.isInteger(version) && version > floor ? version : false;
}"""
SHOWN = """() => ({
  version: Number(document.getElementById('version').textContent),
  snapshot: JSON.parse(document.getElementById('snapshot').textContent),
  viewerText: document.getElementById('viewer').textContent,
  cards: [...document.querySelectorAll('#hand .card')].map((el) => el.dataset.card),
  tableRows: [...document.querySelectorAll('#table tbody tr')].map((tr) => tr.dataset.seat),
  mySeatRow: document.querySelector('#table tr.mine')?.dataset.seat ?? null,
})"""
LOG = """(kind) => [...document.querySelectorAll('#log li')]
  .filter((li) => li.dataset.kind === kind).map((li) => li.textContent)"""
# Records every applied snapshot's private view, keyed by version, from the console's client.
RECORD_VIEWERS = """() => {
  const client = window.gamesyncConsole.client;
  window.__viewers = {};
  const keep = (state, version) => { window.__viewers[version] = state.viewer ?? null; };
  const now = client.getGame(1);
  if (now.version !== undefined) keep(now, now.version);
  client.on('snapshot', (e) => { window.__viewers[e.version] = e.viewer ?? null; });
  return true;
}"""


def wait_connected_with_snapshot(browser: Browser, page: str, timeout: float = 15.0) -> int:
    browser.wait_for(page, CONNECTED, timeout=timeout)
    version: int = browser.wait_for(page, VERSION_ABOVE, 0, timeout=timeout)
    return version


def test_console_connects_and_shows_demo_snapshots_with_rising_versions(
    browser: Browser, gateway: GatewayProcess
) -> None:
    browser.open("live", f"{gateway.public_url}/")
    try:
        first = wait_connected_with_snapshot(browser, "live")
        later: int = browser.wait_for("live", VERSION_ABOVE, first, timeout=10)
        even_later: int = browser.wait_for("live", VERSION_ABOVE, later, timeout=10)
        assert first < later < even_later

        shown: dict[str, Any] = browser.evaluate("live", SHOWN)
        assert shown["version"] >= even_later
        snapshot = shown["snapshot"]
        assert [seat["user_id"] for seat in snapshot["game"]["seating"]] == ["1", "2", "3", "4"]
        assert snapshot["phase"]["phase"] in {"Bidding", "TrumpSelect", "Trick", "Scoring"}
        # The default dev token holds no seat, so it gets no private view.
        assert shown["viewerText"] == "—"
        assert shown["cards"] == []
        assert shown["tableRows"] == ["0", "1", "2", "3"]
        assert shown["mySeatRow"] is None

        frames_out = browser.evaluate("live", LOG, "out")
        assert any('"type":"subscribe"' in line and '"gameId":1' in line for line in frames_out)
        assert any('"type":"auth"' in line for line in frames_out)
        assert not any("eyJ" in line for line in frames_out), "the log must not show the token"
        frames_in = browser.evaluate("live", LOG, "in")
        assert any("welcome" in line for line in frames_in)
        assert any(f"snapshot game {DEMO_GAME} v{later}" in line for line in frames_in)

        stats = gateway.stats()
        assert stats["connections"] == 1
        assert stats["subscriptions"] == 1
        browser.screenshot("live", "console-live-demo")
    finally:
        browser.close_page("live")


def test_each_seat_token_shows_only_its_own_hand(browser: Browser, gateway: GatewayProcess) -> None:
    seats = ["1", "2", "3", "4"]
    try:
        for seat in seats:
            browser.open(f"seat{seat}", f"{gateway.public_url}/?seat={seat}")
        for seat in seats:
            wait_connected_with_snapshot(browser, f"seat{seat}")
            browser.evaluate(f"seat{seat}", RECORD_VIEWERS)

        # Find a version all four pages hold, with cards in hand, and compare the views.
        common = None
        for _ in range(30):
            floor = max(browser.wait_for(f"seat{s}", VERSION_ABOVE, 0) for s in seats)
            held = [
                browser.wait_for(
                    f"seat{s}",
                    "(v) => window.__viewers[v] !== undefined ? window.__viewers : false",
                    floor,
                    timeout=10,
                )
                for s in seats
            ]
            candidates = [
                v
                for v in held[0]
                if all(v in h for h in held) and held[0][v] and held[0][v].get("hand")
            ]
            if candidates:
                common = max(candidates, key=int)
                views = [h[common] for h in held]
                break
            # The round is between deals (no cards): wait for the next published version.
            browser.wait_for("seat1", VERSION_ABOVE, floor, timeout=10)
        assert common is not None, "the four pages never shared a version with cards dealt"

        hands = [set(view["hand"]) for view in views]
        for index, (seat, view) in enumerate(zip(seats, views, strict=True)):
            assert view["seat"] == index, f"seat {seat} was shown seat {view['seat']}"
            for other in range(4):
                if other != index:
                    assert not hands[index] & hands[other], "two seats were shown the same card"
        assert len({len(hand) for hand in hands}) == 1, "every seat holds the same number of cards"

        for seat in seats:
            page = f"seat{seat}"
            shown: dict[str, Any] = browser.evaluate(page, SHOWN)
            latest = browser.evaluate(page, "() => window.gamesyncConsole.client.getGame(1)")
            assert shown["cards"] == latest["viewer"]["hand"], "the page renders its own hand"
            assert shown["mySeatRow"] == str(int(seat) - 1), "the table marks the page's seat"
            browser.screenshot(page, f"console-seat-{seat}")
    finally:
        for seat in seats:
            browser.close_page(f"seat{seat}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["drain", "crash"])
def test_console_reconnects_and_converges_after_a_gateway_restart(
    browser: Browser, gateway: GatewayProcess, stop_signal: signal.Signals
) -> None:
    page = "restart"
    browser.open(page, f"{gateway.public_url}/?seat=2")
    try:
        before = wait_connected_with_snapshot(browser, page)
        gateway.stop(stop_signal)
        browser.wait_for(page, f"() => {STATUS}() === 'reconnecting'", timeout=15)

        gateway.start()
        # The restarted dev gateway has new keys: the console asks it for a fresh token after
        # the first 4401, then converges on the new demo's snapshots.
        browser.wait_for(page, CONNECTED, timeout=40)
        after: int = browser.wait_for(page, VERSION_ABOVE, before, timeout=15)
        newer: int = browser.wait_for(page, VERSION_ABOVE, after, timeout=15)
        assert before < after < newer

        shown: dict[str, Any] = browser.evaluate(page, SHOWN)
        assert shown["viewerText"] != "—"
        assert '"seat": 1' in shown["viewerText"]
        closes = browser.evaluate(page, LOG, "close")
        assert closes, "the log shows the close"
        if stop_signal == signal.SIGTERM:
            frames_in = browser.evaluate(page, LOG, "in")
            assert any('"type":"reconnect"' in line for line in frames_in)
        # Never two live sockets: the new gateway sees exactly this page's one connection.
        gateway.wait_for_stats(lambda s: s["connections"] == 1 and s["subscriptions"] == 1)
        browser.screenshot(page, f"console-after-restart-{stop_signal.name.lower()}")
    finally:
        browser.close_page(page)


def test_a_bad_token_ends_disconnected_with_the_reason(
    browser: Browser, gateway: GatewayProcess
) -> None:
    page = "bad-token"
    browser.open(page, f"{gateway.public_url}/?token=not-a-valid-jwt")
    try:
        # The badge starts out "disconnected" too, so wait for the state with its reason.
        reason: str = browser.wait_for(
            page,
            """() => {
              const status = document.getElementById('status').dataset.status;
              const reason = document.getElementById('status-reason').textContent;
              return status === 'disconnected' && reason ? reason : false;
            }""",
            timeout=15,
        )
        assert "unauthorized" in reason
        assert "4401" in reason
        closes = browser.evaluate(page, LOG, "close")
        # One retry after asking the token provider, then no loop.
        assert len(closes) == 2
        assert all("4401" in line for line in closes)
        assert browser.evaluate(page, "() => document.getElementById('version').textContent") == "—"
        gateway.wait_for_stats(lambda s: s["connections"] == 0)
        browser.screenshot(page, "console-bad-token")
    finally:
        browser.close_page(page)


def test_coming_back_online_checks_the_socket_and_catches_up_without_a_second_socket(
    browser: Browser, gateway: GatewayProcess
) -> None:
    page = "offline"
    browser.open(page, f"{gateway.public_url}/?seat=1")
    try:
        wait_connected_with_snapshot(browser, page)
        browser.call("offline", page=page, offline=True)
        browser.wait_for(page, "() => navigator.onLine === false")
        browser.evaluate(
            page,
            """() => {
              window.__frames = [];
              window.gamesyncConsole.client.on('frame', (e) => {
                window.__frames.push(`${e.direction} ${e.frame.type}`);
              });
            }""",
        )
        at_online = browser.evaluate(page, "() => window.gamesyncConsole.client.getGame(1).version")
        browser.call("offline", page=page, offline=False)
        # `online` makes the client prove the socket with a ping rather than trust it.
        frames = browser.wait_for(
            page,
            "() => window.__frames.includes('in pong') ? window.__frames : false",
            timeout=15,
        )
        assert frames.index("out ping") < frames.index("in pong")
        assert "out auth" not in frames, "the live socket was kept, not replaced"
        browser.wait_for(page, VERSION_ABOVE, at_online, timeout=15)
        assert browser.evaluate(page, STATUS) == "connected"
        gateway.wait_for_stats(lambda s: s["connections"] == 1)
    finally:
        browser.close_page(page)


def test_switching_seats_swaps_the_private_view_on_one_connection(
    browser: Browser, gateway: GatewayProcess
) -> None:
    page = "switch"
    browser.open(page, f"{gateway.public_url}/?seat=1")
    try:
        wait_connected_with_snapshot(browser, page)
        browser.wait_for(
            page, "() => document.getElementById('viewer').textContent.includes('\"seat\": 0')"
        )
        browser.evaluate(
            page,
            """() => {
              const select = document.getElementById('seat');
              select.value = '4';
              select.dispatchEvent(new Event('change'));
            }""",
        )
        browser.wait_for(
            page,
            "() => document.getElementById('viewer').textContent.includes('\"seat\": 3')",
            timeout=15,
        )
        shown: dict[str, Any] = browser.evaluate(page, SHOWN)
        assert shown["mySeatRow"] == "3"
        welcome_users = [
            line
            for line in browser.evaluate(page, LOG, "in")
            if '"type":"welcome"' in line and '"userId":"4"' in line
        ]
        assert welcome_users, "the new socket authenticated as seat 4's user"
        gateway.wait_for_stats(lambda s: s["connections"] == 1)
    finally:
        browser.close_page(page)


def test_one_socket_carries_two_games_and_each_shows_its_own_snapshot(browser: Browser) -> None:
    token = "multi-game-publish-token"
    gateway = GatewayProcess(extra_args=("--demo", "--publish-token", token))
    gateway.start()
    page = "two-games"
    try:
        browser.open(page, f"{gateway.public_url}/?seat=3")
        first = wait_connected_with_snapshot(browser, page)
        gateway.publish(
            {
                "gameId": 2,
                "version": 41,
                "snapshot": {"table": "second"},
                "viewers": {"3": {"note": "only user 3 sees this"}, "4": {"note": "user 4"}},
            },
            token,
        )
        browser.evaluate(
            page,
            """() => {
              document.getElementById('game-id').value = '2';
              document.getElementById('subscribe').click();
            }""",
        )
        shown = browser.wait_for(
            page,
            # Check the version first: before game 2's snapshot the pane holds "—", not JSON.
            f"() => document.getElementById('version').textContent === '41' && ({SHOWN})()",
        )
        assert shown["snapshot"] == {"table": "second"}
        assert '"note": "only user 3 sees this"' in shown["viewerText"]
        assert "user 4" not in shown["viewerText"]
        gateway.wait_for_stats(lambda s: s["connections"] == 1 and s["subscriptions"] == 2)

        # Game 1 keeps flowing on the same socket: switch the view back and see it rise.
        browser.evaluate(
            page, "() => [...document.querySelectorAll('#subscriptions button')][0].click()"
        )
        browser.wait_for(page, VERSION_ABOVE, first, timeout=10)
        frames_out = browser.evaluate(page, LOG, "out")
        assert sum('"type":"auth"' in line for line in frames_out) == 1, "one socket, one auth"
        browser.screenshot(page, "console-two-games")
    finally:
        browser.close_page(page)
        gateway.stop()


def test_the_console_reaches_the_gateway_through_the_host_it_was_loaded_from(
    browser: Browser, gateway: GatewayProcess
) -> None:
    """A configured wsUrl on another host (127.0.0.1 here) gives way to the page's origin.

    That is the case behind a port-forward or under another name for the host.
    """
    page = "other-host"
    browser.open(page, f"http://localhost:{gateway.port}/")
    try:
        wait_connected_with_snapshot(browser, page)
        url = browser.evaluate(page, "() => document.getElementById('ws-url').value")
        assert url == f"ws://localhost:{gateway.port}/ws"
    finally:
        browser.close_page(page)


# Records each applied snapshot's version and the transport that brought it.
RECORD_SOURCES = """() => {
  window.__sources = [];
  window.gamesyncConsole.client.on('snapshot', (e) => window.__sources.push([e.version, e.source]));
  return true;
}"""


def test_with_websockets_blocked_the_console_follows_live_snapshots_over_sse(
    browser: Browser, gateway: GatewayProcess
) -> None:
    """A network that breaks websockets: after two failed attempts the client streams over SSE
    (`GET /sse?games=1`, the token in the Authorization header), live, with private views."""
    browser.open("blocked", f"{gateway.public_url}/?seat=2", block_websockets=True)
    try:
        first = wait_connected_with_snapshot(browser, "blocked", timeout=30)
        assert browser.evaluate("blocked", "() => window.gamesyncConsole.client.transport") == "sse"
        browser.evaluate("blocked", RECORD_SOURCES)
        later: int = browser.wait_for("blocked", VERSION_ABOVE, first, timeout=10)
        even_later: int = browser.wait_for("blocked", VERSION_ABOVE, later, timeout=10)
        assert first < later < even_later
        sources = browser.evaluate("blocked", "() => window.__sources")
        assert sources, "no snapshot applied while recording"
        assert {source for _, source in sources} == {"sse"}
        assert [v for v, _ in sources] == sorted({v for v, _ in sources})

        closes = browser.evaluate("blocked", LOG, "close")
        assert len([c for c in closes if "close 1011" in c]) >= 2, closes  # the failed sockets
        opened = browser.evaluate("blocked", LOG, "status")
        assert any("open http://" in line and "/sse?games=1" in line for line in opened), opened
        assert not any("token=" in line for line in opened), "the token stays out of the URL"
        # Seat 2's token: this user's private view only, as over the websocket.
        shown: dict[str, Any] = browser.evaluate("blocked", SHOWN)
        assert shown["mySeatRow"] == "1"

        stats = gateway.stats()
        assert stats["connections"] == 1
        assert stats["subscriptions"] == 1
        metrics = gateway.metrics_text()
        assert 'gamesync_connections{state="open",transport="sse"} 1.0' in metrics
        assert 'gamesync_connections{state="open",transport="websocket"} 0.0' in metrics
        browser.screenshot("blocked", "console-over-sse")
    finally:
        browser.close_page("blocked")
