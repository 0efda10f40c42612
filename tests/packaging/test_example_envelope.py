"""deploy/examples/envelope.json: a valid publish envelope (DESIGN §3) in Nommie's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gamesync.demo import RANKS, SUITS
from gamesync.envelope import parse_envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "envelope.json"


def _example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return document


def test_the_gateway_accepts_it_for_game_42() -> None:
    parsed = parse_envelope(EXAMPLE.read_bytes(), expected_game_id=42)
    assert parsed.version == _example()["version"]


def test_every_seated_user_is_a_member_with_a_private_view_of_their_own_seat() -> None:
    example = _example()
    seating = example["snapshot"]["game"]["seating"]
    users = [seat["user_id"] for seat in seating]
    assert example["members"] == users
    assert set(example["viewers"]) == set(users)
    for seat in seating:
        assert example["viewers"][seat["user_id"]]["seat"] == seat["seat"]


def test_the_hands_are_a_real_deal_of_the_round_s_hand_size() -> None:
    example = _example()
    hand_size = example["snapshot"]["phase"]["data"]["round"]["hand_size"]
    hands = [viewer["hand"] for viewer in example["viewers"].values()]
    cards = [card for hand in hands for card in hand]
    assert all(len(hand) == hand_size for hand in hands)
    assert len(set(cards)) == len(cards)
    assert all(len(c) == 2 and c[0] in RANKS and c[1] in SUITS for c in cards)


def test_no_private_card_is_in_the_shared_snapshot() -> None:
    example = _example()
    shared = json.dumps(example["snapshot"])
    for viewer in example["viewers"].values():
        assert not [card for card in viewer["hand"] if f'"{card}"' in shared]
