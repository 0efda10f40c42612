"""The demo game plays legal Nomination Whist and keeps each seat's hand private.

The checks read only the envelopes `step()` returns (what subscribers would see) and recompute
the rules independently of the module's own helpers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gamesync.demo import ROUND_HAND_SIZES, DemoGame

Envelope = dict[str, Any]

RANKS = "23456789TJQKA"
TRUMP_SUIT = {"CLUBS": "C", "DIAMONDS": "D", "HEARTS": "H", "SPADES": "S", "NO_TRUMPS": None}
FULL_DECK = {r + s for s in "CDHS" for r in RANKS}
SEATS = ["1", "2", "3", "4"]


def fixed_clock() -> float:
    return 1_764_115_200.0


def play_games(seed: int, games: int = 1) -> list[Envelope]:
    """Envelopes from the first step through the GameOver of the `games`-th game."""
    demo = DemoGame(7, seed=seed, clock=fixed_clock)
    envelopes: list[Envelope] = []
    finished = 0
    while finished < games:
        env = demo.step()
        envelopes.append(env)
        if env["snapshot"]["phase"]["phase"] == "GameOver":
            finished += 1
        assert len(envelopes) < 5000 * games, "a game never ended"
    return envelopes


def pairs(envelopes: list[Envelope]) -> Iterator[tuple[Envelope, Envelope]]:
    return itertools.pairwise(envelopes)


def phase(env: Envelope) -> str:
    return str(env["snapshot"]["phase"]["phase"])


def data(env: Envelope) -> dict[str, Any]:
    result: dict[str, Any] = env["snapshot"]["phase"]["data"]
    return result


def hand(env: Envelope, seat: int) -> list[str]:
    cards: list[str] = env["viewers"][SEATS[seat]]["hand"]
    return cards


def cards_in(value: Any) -> set[str]:
    """Every card-shaped string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value} if value in FULL_DECK else set()
    if isinstance(value, dict):
        return set().union(*(cards_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(cards_in(v) for v in value)) if value else set()
    return set()


def expected_winner(plays: list[list[Any]], trump: str | None) -> int:
    led = plays[0][1][1]
    trumps = [p for p in plays if trump is not None and p[1][1] == trump]
    candidates = trumps or [p for p in plays if p[1][1] == led]
    return int(max(candidates, key=lambda p: RANKS.index(p[1][0]))[0])


@pytest.fixture(scope="module")
def envelopes() -> list[Envelope]:
    return play_games(seed=2026, games=2)


def test_envelopes_carry_game_id_members_and_all_four_viewers(envelopes: list[Envelope]) -> None:
    for env in envelopes:
        assert env["gameId"] == 7
        assert env["members"] == SEATS
        assert sorted(env["viewers"]) == SEATS
        json.dumps(env)  # publishable as JSON


def test_versions_increase_by_one_from_the_clock(envelopes: list[Envelope]) -> None:
    assert envelopes[0]["version"] == 1_764_115_200_000 + 1
    for before, after in pairs(envelopes):
        assert after["version"] == before["version"] + 1


def test_a_restarted_demo_never_goes_back_in_version() -> None:
    first = DemoGame(1, seed=1, clock=lambda: 1000.0)
    last = [first.step()["version"] for _ in range(500)][-1]
    restarted = DemoGame(1, seed=1, clock=lambda: 1001.0)
    assert restarted.step()["version"] > last


def test_the_same_seed_plays_the_same_game() -> None:
    assert play_games(seed=5) == play_games(seed=5)
    assert play_games(seed=5) != play_games(seed=6)


def test_each_round_deals_the_right_number_of_distinct_cards(envelopes: list[Envelope]) -> None:
    deals = [
        env
        for env in envelopes
        if phase(env) == "Bidding" and all(b is None for b in data(env)["bids"])
    ]
    assert [data(env)["round"]["hand_size"] for env in deals] == list(ROUND_HAND_SIZES) * 2
    for env in deals:
        size = data(env)["round"]["hand_size"]
        hands = [hand(env, seat) for seat in range(4)]
        assert all(len(h) == size for h in hands)
        dealt = [c for h in hands for c in h]
        assert len(set(dealt)) == 4 * size
        assert set(dealt) <= FULL_DECK


def test_bids_are_in_range_and_the_highest_earliest_bidder_names_trump(
    envelopes: list[Envelope],
) -> None:
    selections = [env for env in envelopes if phase(env) == "TrumpSelect"]
    assert selections
    for env in selections:
        rnd = data(env)["round"]
        bids = rnd["bids"]
        assert all(0 <= b <= rnd["hand_size"] for b in bids)
        dealer = env["snapshot"]["game"]["dealer"]
        order = [(dealer + 1 + i) % 4 for i in range(4)]
        best = max(bids)
        assert rnd["bid_winner"] == next(s for s in order if bids[s] == best)
        assert data(env)["to_act"] == rnd["bid_winner"]
        assert "NO_TRUMPS" in data(env)["allowed_trumps"]


def test_every_card_played_follows_suit_when_it_can(envelopes: list[Envelope]) -> None:
    plays = 0
    for before, after in pairs(envelopes):
        if phase(before) != "Trick":
            continue
        seat = data(before)["to_act"]
        gone = set(hand(before, seat)) - set(hand(after, seat))
        assert len(gone) == 1, "exactly one card leaves the hand of the seat to act"
        (card,) = gone
        for other in range(4):
            if other != seat:
                assert hand(after, other) == hand(before, other)
        current = data(before)["current_trick"]
        if current:
            led = current[0][1][1]
            if any(c[1] == led for c in hand(before, seat)):
                assert card[1] == led, f"seat {seat} held {led} but played {card}"
        shown = data(after).get("current_trick") or []
        last = data(after).get("last_trick")
        assert [seat, card] in shown or (last is not None and [seat, card] in last["cards"])
        plays += 1
    assert plays == 4 * sum(ROUND_HAND_SIZES) * 2


def test_each_trick_goes_to_the_highest_trump_or_highest_card_of_the_led_suit(
    envelopes: list[Envelope],
) -> None:
    tricks = 0
    for before, after in pairs(envelopes):
        if phase(before) != "Trick" or len(data(before)["current_trick"]) != 3:
            continue
        last = data(after)["last_trick"]
        trump = TRUMP_SUIT[data(before)["round"]["trump"]]
        assert last["cards"][:3] == data(before)["current_trick"]
        assert last["winner"] == expected_winner(last["cards"], trump)
        assert data(after)["round"]["tricks_won"][last["winner"]] == (
            data(before)["round"]["tricks_won"][last["winner"]] + 1
        )
        if phase(after) == "Trick":
            assert data(after)["leader"] == last["winner"]
            assert data(after)["to_act"] == last["winner"]
        tricks += 1
    assert tricks == sum(ROUND_HAND_SIZES) * 2


def test_round_scores_are_tricks_plus_ten_for_an_exact_bid_and_totals_add_up(
    envelopes: list[Envelope],
) -> None:
    totals = [0, 0, 0, 0]
    scorings = 0
    for env in envelopes:
        if (
            phase(env) == "Bidding"
            and data(env)["round"]["hand_size"] == 13
            and all(b is None for b in data(env)["bids"])
            and env["snapshot"]["game"]["round_no"] == 1
        ):
            totals = [0, 0, 0, 0]
        if phase(env) != "Scoring":
            continue
        rnd = data(env)["round"]
        assert sum(rnd["tricks_won"]) == rnd["hand_size"]
        expected = [
            won + (10 if won == bid else 0)
            for won, bid in zip(rnd["tricks_won"], rnd["bids"], strict=True)
        ]
        assert data(env)["round_scores"] == expected
        totals = [t + s for t, s in zip(totals, expected, strict=True)]
        assert env["snapshot"]["game"]["scores_total"] == totals
        scorings += 1
    assert scorings == len(ROUND_HAND_SIZES) * 2


def test_each_viewer_holds_only_its_own_seat_and_hand(envelopes: list[Envelope]) -> None:
    for env in envelopes:
        hands = [set(hand(env, seat)) for seat in range(4)]
        for seat, user in enumerate(SEATS):
            viewer = env["viewers"][user]
            assert viewer["seat"] == seat
            others = set().union(*(hands[s] for s in range(4) if s != seat))
            assert not cards_in(viewer) & others, "a viewer shows another seat's card"
        for a in range(4):
            for b in range(a + 1, 4):
                assert not hands[a] & hands[b]
        # The shared snapshot reveals no card still held in any hand.
        assert not cards_in(env["snapshot"]) & set().union(*hands)


def test_only_the_seat_to_act_sees_its_playable_cards(envelopes: list[Envelope]) -> None:
    seen = 0
    for env in envelopes:
        for seat, user in enumerate(SEATS):
            viewer = env["viewers"][user]
            if phase(env) == "Trick" and data(env)["to_act"] == seat:
                playable = viewer["playable"]
                assert playable
                assert set(playable) <= set(viewer["hand"])
                current = data(env)["current_trick"]
                if current and any(c[1] == current[0][1][1] for c in viewer["hand"]):
                    assert all(c[1] == current[0][1][1] for c in playable)
                seen += 1
            else:
                assert "playable" not in viewer
    assert seen > 0


def test_a_finished_game_is_followed_by_a_new_one(envelopes: list[Envelope]) -> None:
    game_over = [i for i, env in enumerate(envelopes) if phase(envelopes[i]) == "GameOver"]
    assert len(game_over) == 2
    nxt = envelopes[game_over[0] + 1]
    assert nxt["snapshot"]["game"]["game_no"] == 2
    assert nxt["snapshot"]["game"]["round_no"] == 1
    assert nxt["snapshot"]["game"]["scores_total"] == [0, 0, 0, 0]
