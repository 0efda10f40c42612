"""gamesync.connection: the lifecycle state machine and the conflating writer."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamesync.connection import (
    MAX_PENDING_CONTROL,
    Closing,
    Connection,
    ConnectionEnd,
    ConnectionState,
    DeliveryStats,
    IllegalTransition,
)
from gamesync.framing import Framing, text_frame

S = ConnectionState
CLOSE = b"<close frame>"
LEGAL = {
    (S.CONNECTING, S.OPEN),
    (S.CONNECTING, S.DRAINING),
    (S.CONNECTING, S.CLOSING),
    (S.OPEN, S.DRAINING),
    (S.OPEN, S.CLOSING),
    (S.DRAINING, S.CLOSING),
    (S.CLOSING, S.CLOSED),
}


class StandInSocket:
    """A websocket whose writability the test controls; records every frame written."""

    framing = Framing.WEBSOCKET

    def __init__(self) -> None:
        self.last_seen = 0.0
        self.unwritable_since: float | None = None
        self.on_writable: Callable[[], None] | None = None
        self.open = True
        self.frames: list[bytes] = []
        self.closes: list[tuple[int, str, float | None]] = []
        self.pings = 0

    @property
    def is_open(self) -> bool:
        return self.open

    @property
    def can_write(self) -> bool:
        return self.open and self.unwritable_since is None

    def write_frame(self, frame: bytes) -> None:
        assert self.open, "wrote to a closed socket"
        self.frames.append(frame)

    def send_ping(self) -> None:
        self.pings += 1

    def close_now(self, code: int, reason: str = "", *, abort_after: float | None = None) -> bool:
        self.frames.append(CLOSE)
        self.closes.append((code, reason, abort_after))
        self.open = False
        return True

    def block(self) -> None:
        self.unwritable_since = 1.0

    def unblock(self) -> None:
        self.unwritable_since = None
        if self.on_writable is not None:
            self.on_writable()


def connection(*games: int) -> tuple[Connection, StandInSocket]:
    socket = StandInSocket()
    conn = Connection(socket, 0.0, DeliveryStats())

    def flush() -> None:  # what the session's on_writable does
        conn.flush()

    socket.on_writable = flush
    for game_id in games:
        conn.subscriptions[game_id] = -1
    return conn, socket


def snap(game_id: int, version: int) -> bytes:
    return f"snapshot {game_id}:{version}".encode()


def parse(frame: bytes) -> tuple[int, int]:
    game, version = frame.decode().removeprefix("snapshot ").split(":")
    return int(game), int(version)


# lifecycle -------------------------------------------------------------------------------------


def test_a_new_connection_is_connecting() -> None:
    conn, _ = connection()
    assert conn.state is S.CONNECTING
    assert conn.user_id is None
    assert conn.idle_since == 0.0


@pytest.mark.parametrize(("current", "wanted"), sorted(LEGAL, key=str))
def test_legal_transitions_move_the_state(current: S, wanted: S) -> None:
    conn, _ = connection()
    conn.state = current
    conn.transition(wanted)
    assert conn.state is wanted


@pytest.mark.parametrize(
    ("current", "wanted"),
    sorted(set(itertools.product(S, S)) - LEGAL, key=str),
)
def test_illegal_transitions_raise_naming_both_states(current: S, wanted: S) -> None:
    conn, _ = connection()
    conn.state = current
    with pytest.raises(IllegalTransition) as caught:
        conn.transition(wanted)
    allowed = ", ".join(sorted(b.value for a, b in LEGAL if a is current))
    expected = f"from {current.value} only: {allowed}" if allowed else "that state is final"
    assert str(caught.value) == (
        f"connection is {current.value}; cannot become {wanted.value} ({expected})"
    )
    assert (caught.value.current, caught.value.wanted) == (current, wanted)
    assert conn.state is current


def test_the_happy_path_goes_connecting_open_draining_closing_closed() -> None:
    conn, _ = connection()
    for state in (S.OPEN, S.DRAINING, S.CLOSING, S.CLOSED):
        conn.transition(state)
    assert conn.state is S.CLOSED


def test_a_server_close_enters_closing_and_writes_last_words_before_the_close_frame() -> None:
    conn, socket = connection(1)
    conn.transition(S.OPEN)
    socket.block()
    conn.send_message(b"parked ack")
    conn.deliver(1, 3, snap(1, 3))
    assert conn.close(4401, "token expired", last_words=b"error frame", abort_after=1.0)
    assert conn.state is S.CLOSING
    assert conn.is_closing()
    assert conn.closing == Closing(4401, "token expired", by_server=True)
    assert socket.frames == [text_frame(b"parked ack"), text_frame(b"error frame"), CLOSE]
    assert socket.closes == [(4401, "token expired", 1.0)]
    # Only the first close counts: neither a second one nor the peer's answer changes it.
    assert not conn.close(1000, "again")
    conn.closed_by_peer(4401, "")
    assert conn.closing == Closing(4401, "token expired", by_server=True)
    assert socket.closes == [(4401, "token expired", 1.0)]


def test_a_peer_close_enters_closing_without_writing() -> None:
    conn, socket = connection()
    conn.closed_by_peer(1001, "bye")
    assert conn.state is S.CLOSING
    assert conn.closing == Closing(1001, "bye", by_server=False)
    assert socket.frames == []
    assert socket.closes == []


def test_finish_ends_closed_and_reports_the_close() -> None:
    conn, _ = connection(2, 1)
    conn.transition(S.OPEN)
    conn.frames_in = 3
    conn.close(1012, "draining")
    end = conn.finish(now=7.5)
    assert conn.state is S.CLOSED
    assert end == ConnectionEnd(
        user_id=None,
        games=[1, 2],
        duration=7.5,
        closing=Closing(1012, "draining", by_server=True),
        frames_in=3,
        frames_out=0,
    )
    with pytest.raises(IllegalTransition):
        conn.finish(now=8.0)


def test_a_session_ending_with_no_close_seen_counts_as_a_clients_1000() -> None:
    conn, _ = connection()
    conn.transition(S.OPEN)
    end = conn.finish(now=1.0)
    assert end.closing == Closing(1000, "", by_server=False)


# delivery --------------------------------------------------------------------------------------


def test_writable_socket_gets_the_frame_at_once() -> None:
    conn, socket = connection(1)
    assert conn.deliver(1, 5, snap(1, 5)) == 1
    assert socket.frames == [snap(1, 5)]
    assert conn.subscriptions[1] == 5
    assert conn.backlog == 0


def test_stale_duplicate_and_unsubscribed_snapshots_are_dropped() -> None:
    conn, socket = connection(1)
    conn.deliver(1, 5, snap(1, 5))
    assert conn.deliver(1, 5, snap(1, 5)) == 0
    assert conn.deliver(1, 4, snap(1, 4)) == 0
    assert conn.deliver(2, 9, snap(2, 9)) == 0
    assert socket.frames == [snap(1, 5)]


def test_slow_socket_keeps_only_the_newest_frame_per_game() -> None:
    conn, socket = connection(1, 2)
    socket.block()
    for version in range(1, 11):
        assert conn.deliver(1, version, snap(1, version)) == 0
    for version in range(1, 6):
        conn.deliver(2, version, snap(2, version))
    assert conn.backlog == 2
    assert conn.stats.conflated == 9 + 4
    assert socket.frames == []
    socket.unblock()
    assert socket.frames == [snap(1, 10), snap(2, 5)]
    assert conn.stats.deliveries == 2
    assert conn.stats.bytes_out == len(snap(1, 10)) + len(snap(2, 5))
    assert conn.backlog == 0


def test_control_messages_are_flushed_before_snapshots_in_order() -> None:
    conn, socket = connection(1)
    socket.block()
    conn.deliver(1, 1, snap(1, 1))
    assert conn.send_message(b'{"type":"subscribed"}')
    assert conn.send_message(b'{"type":"pong"}')
    conn.deliver(1, 2, snap(1, 2))
    socket.unblock()
    assert socket.frames == [
        text_frame(b'{"type":"subscribed"}'),
        text_frame(b'{"type":"pong"}'),
        snap(1, 2),
    ]


def test_nothing_overtakes_a_backlog_even_once_writable() -> None:
    conn, socket = connection(1)
    socket.block()
    conn.send_message(b"first")
    socket.unwritable_since = None  # writable again, flush not yet run
    conn.deliver(1, 1, snap(1, 1))
    assert conn.send_message(b"second")
    assert socket.frames == []
    conn.flush()
    assert socket.frames == [text_frame(b"first"), text_frame(b"second"), snap(1, 1)]


def test_control_message_on_a_writable_socket_is_written_framed() -> None:
    conn, socket = connection()
    assert conn.send_message(b'{"type":"pong","version":1}')
    assert socket.frames == [text_frame(b'{"type":"pong","version":1}')]
    assert conn.frames_out == 1


def test_backlog_is_bounded_by_games_and_control_limit() -> None:
    conn, socket = connection(*range(3))
    socket.block()
    for version in range(10_000):
        conn.deliver(version % 3, version, snap(version % 3, version))
    assert conn.backlog == 3
    accepted = [conn.send_message(b"ack") for _ in range(MAX_PENDING_CONTROL + 5)]
    assert accepted == [True] * MAX_PENDING_CONTROL + [False] * 5
    assert conn.backlog == 3 + MAX_PENDING_CONTROL


def test_closed_socket_parks_nothing() -> None:
    conn, socket = connection(1)
    socket.open = False
    assert conn.deliver(1, 1, snap(1, 1)) == 0
    assert conn.send_message(b"bye")
    assert conn.backlog == 0
    assert conn.flush() == 0
    assert socket.frames == []


def test_forget_drops_the_game_and_its_parked_frame() -> None:
    conn, socket = connection(1, 2)
    socket.block()
    conn.deliver(1, 1, snap(1, 1))
    conn.deliver(2, 1, snap(2, 1))
    conn.forget(1)
    assert 1 not in conn.subscriptions
    assert conn.deliver(1, 2, snap(1, 2)) == 0
    socket.unblock()
    assert socket.frames == [snap(2, 1)]


def test_flush_on_an_unwritable_socket_writes_nothing() -> None:
    conn, socket = connection(1)
    socket.block()
    conn.deliver(1, 1, snap(1, 1))
    assert conn.flush() == 0
    assert conn.backlog == 1


steps = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(0, 3), st.integers(0, 30)),
        st.tuples(st.just("block"), st.just(0), st.just(0)),
        st.tuples(st.just("unblock"), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_versions_written_per_game_strictly_increase(
    plan: list[tuple[str, int, int]],
) -> None:
    conn, socket = connection(0, 1, 2)  # game 3 is never subscribed
    newest: dict[int, int] = {}
    for action, game_id, version in plan:
        if action == "block":
            socket.block()
        elif action == "unblock":
            socket.unblock()
        else:
            conn.deliver(game_id, version, snap(game_id, version))
            if game_id != 3:
                newest[game_id] = max(newest.get(game_id, -1), version)
        assert conn.backlog <= 3
    socket.unblock()
    written: dict[int, list[int]] = {}
    for frame in socket.frames:
        game_id, version = parse(frame)
        written.setdefault(game_id, []).append(version)
    assert 3 not in written
    for game_id, versions in written.items():
        assert versions == sorted(set(versions))
        assert versions[-1] == newest[game_id]  # converges on the newest offered
    assert set(written) == set(newest)


# deltas (protocol 2) ---------------------------------------------------------------------------


def delta(game_id: int, base: int, version: int) -> bytes:
    return f"delta {game_id}:{base}->{version}".encode()


def offer(conn: Connection, game_id: int, base: int, version: int) -> int:
    """The bytes written at once (0: parked or dropped)."""
    frame = conn.deliver_delta(
        game_id, base, version, delta(game_id, base, version), snap(game_id, version)
    )
    return 0 if frame is None else len(frame)


def test_a_client_holding_the_base_gets_the_delta_and_after_a_gap_the_full_snapshot() -> None:
    conn, socket = connection(1)
    conn.deliver(1, 5, snap(1, 5))
    assert offer(conn, 1, 5, 6) == len(delta(1, 5, 6))
    assert offer(conn, 1, 7, 8) == len(snap(1, 8))  # version 7 never reached this pod
    assert offer(conn, 1, 6, 7) == 0  # older than what it holds: dropped
    assert socket.frames == [snap(1, 5), delta(1, 5, 6), snap(1, 8)]


def test_the_first_version_of_a_subscription_is_never_a_delta() -> None:
    conn, socket = connection(1)
    offer(conn, 1, -1, 3)  # subscribed, nothing sent yet (-1): a base of -1 is no base
    offer(conn, 1, 3, 4)
    assert socket.frames == [snap(1, 3), delta(1, 3, 4)]


def test_a_parked_delta_replaced_by_a_newer_version_becomes_its_full_snapshot() -> None:
    """Conflation: the client never sees the parked delta, so it never holds its version."""
    conn, socket = connection(1, 2)
    conn.deliver(1, 5, snap(1, 5))
    conn.deliver(2, 1, snap(2, 1))
    socket.block()
    offer(conn, 1, 5, 6)  # parked as a delta: the client holds 5
    offer(conn, 2, 1, 2)
    offer(conn, 1, 6, 7)  # replaces it: the client will not hold 6
    assert conn.stats.conflated == 1
    socket.unblock()
    assert socket.frames[2:] == [snap(1, 7), delta(2, 1, 2)]
    offer(conn, 1, 7, 8)
    assert socket.frames[-1] == delta(1, 7, 8)


def test_a_delta_waits_behind_a_control_backlog_and_stays_a_delta() -> None:
    conn, socket = connection(1)
    conn.deliver(1, 5, snap(1, 5))
    socket.block()
    conn.send_message(b'{"type":"pong"}')
    socket.unblock()
    socket.block()
    assert conn.send_message(b'{"type":"pong"}')
    offer(conn, 1, 5, 6)
    socket.unblock()
    assert socket.frames[-2:] == [text_frame(b'{"type":"pong"}'), delta(1, 5, 6)]
