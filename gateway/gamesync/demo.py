"""A simulated four-player Nomination Whist game that produces publish envelopes (dev mode).

Pure: no I/O and no clock reads beyond the injected `clock`; `DemoGame.step()` advances the
game by one visible action (a deal, a bid, the trump choice, one card, the scoring) and returns
the envelope a backend would publish after that commit (DESIGN §3).

Rules, as Nommie plays them: rounds of 13 cards down to 1 and back up to 13; every seat bids
0..hand size starting left of the dealer; the highest bid (earliest on a tie) names trump or
no trumps and leads the first trick; players must follow suit; the highest trump, else the
highest card of the led suit, wins; a round scores one point per trick plus 10 for making the
bid exactly.

The snapshot follows Nommie's shape (`game`: header and phase; `viewer`: seat, hand) with one
deliberate change: the cards the seat to act may play (`playable`) are private and sit in that
seat's viewer, not in the shared snapshot, because they reveal part of a hand.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEMO_SEATS",
    "RANKS",
    "ROUND_HAND_SIZES",
    "SUITS",
    "DemoGame",
    "card_rank",
    "card_suit",
    "legal_cards",
    "trick_winner",
]

RANKS = "23456789TJQKA"
SUITS = "CDHS"
TRUMP_NAMES = {"C": "CLUBS", "D": "DIAMONDS", "H": "HEARTS", "S": "SPADES"}
NO_TRUMPS = "NO_TRUMPS"
ALLOWED_TRUMPS = ["CLUBS", "DIAMONDS", "HEARTS", "SPADES", NO_TRUMPS]
ROUND_HAND_SIZES: tuple[int, ...] = (*range(13, 0, -1), *range(2, 14))
EXACT_BID_BONUS = 10
# User ids of the four seats; the dev gateway mints one token per seat with these subjects.
DEMO_SEATS: tuple[str, ...] = ("1", "2", "3", "4")
_SEAT_NAMES = ("North", "East", "South", "West")

Phase = Literal["Bidding", "TrumpSelect", "Trick", "Scoring", "GameOver"]
Json = dict[str, Any]


def card_rank(card: str) -> int:
    """0 for a two up to 12 for an ace."""
    return RANKS.index(card[0])


def card_suit(card: str) -> str:
    return card[1]


def _sort_key(card: str) -> tuple[int, int]:
    return (SUITS.index(card_suit(card)), card_rank(card))


def legal_cards(hand: list[str], led_suit: str | None) -> list[str]:
    """The cards a player may play: any card when leading or void, else the led suit."""
    if led_suit is None:
        return list(hand)
    following = [c for c in hand if card_suit(c) == led_suit]
    return following or list(hand)


def trick_winner(plays: list[tuple[int, str]], trump: str | None) -> int:
    """The seat whose card wins: the highest trump, else the highest card of the led suit."""
    led = card_suit(plays[0][1])

    def strength(play: tuple[int, str]) -> tuple[int, int]:
        card = play[1]
        if trump is not None and card_suit(card) == trump:
            return (2, card_rank(card))
        if card_suit(card) == led:
            return (1, card_rank(card))
        return (0, 0)

    return max(plays, key=strength)[0]


@dataclass
class _Round:
    number: int  # 1-based
    hand_size: int
    dealer: int
    hands: list[list[str]]
    bids: list[int | None] = field(default_factory=lambda: [None] * 4)
    bid_winner: int | None = None
    trump: str | None = None  # suit letter, or None for no trumps (once chosen)
    trump_chosen: bool = False
    tricks_won: list[int] = field(default_factory=lambda: [0] * 4)
    trick_no: int = 0
    leader: int | None = None
    current_trick: list[tuple[int, str]] = field(default_factory=list)
    last_trick: Json | None = None
    to_act: int = 0

    def public(self) -> Json:
        return {
            "hand_size": self.hand_size,
            "leader": self.leader,
            "bid_winner": self.bid_winner,
            "trump": self.trump_name(),
            "tricks_won": list(self.tricks_won),
            "bids": list(self.bids),
        }

    def trump_name(self) -> str | None:
        if not self.trump_chosen:
            return None
        return NO_TRUMPS if self.trump is None else TRUMP_NAMES[self.trump]

    def scores(self) -> list[int]:
        return [
            won + (EXACT_BID_BONUS if won == bid else 0)
            for won, bid in zip(self.tricks_won, self.bids, strict=True)
        ]


class DemoGame:
    """One endless demo table: games follow each other; each step is one published commit."""

    def __init__(
        self,
        game_id: int,
        seed: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.game_id = game_id
        self._rng = random.Random(seed)
        # The first version is the wall clock in milliseconds, so a demo restarted with its
        # gateway never goes backwards for browsers that still hold a version from before (a
        # real backend keeps its lock_version in the database). Then +1 per commit.
        self._version = int(clock() * 1000)
        self._game_no = 0
        self._phase: Phase = "GameOver"
        self._round: _Round | None = None
        self._scores_total = [0] * 4
        self._previous_round: Json | None = None
        self._round_scores: list[int] | None = None

    @property
    def version(self) -> int:
        """The version of the last envelope returned (before the first step: one less)."""
        return self._version

    def step(self) -> Json:
        """Advance by one action and return the envelope to publish."""
        if self._phase == "GameOver":
            self._new_game()
        elif self._phase == "Bidding":
            self._bid()
        elif self._phase == "TrumpSelect":
            self._choose_trump()
        elif self._phase == "Trick":
            self._play()
        else:  # Scoring
            self._after_scoring()
        self._version += 1
        return self._envelope()

    # ---- game flow --------------------------------------------------------------------

    def _new_game(self) -> None:
        self._game_no += 1
        self._scores_total = [0] * 4
        self._previous_round = None
        self._deal(1, dealer=self._rng.randrange(4))

    def _deal(self, number: int, dealer: int) -> None:
        hand_size = ROUND_HAND_SIZES[number - 1]
        deck = [rank + suit for suit in SUITS for rank in RANKS]
        self._rng.shuffle(deck)
        hands = [sorted(deck[i * hand_size : (i + 1) * hand_size], key=_sort_key) for i in range(4)]
        self._round = _Round(number=number, hand_size=hand_size, dealer=dealer, hands=hands)
        self._round.to_act = (dealer + 1) % 4
        self._round_scores = None
        self._phase = "Bidding"

    def _bid(self) -> None:
        rnd = self._current()
        seat = rnd.to_act
        rnd.bids[seat] = self._choose_bid(rnd.hands[seat], rnd.hand_size)
        if all(b is not None for b in rnd.bids):
            order = [(rnd.dealer + 1 + i) % 4 for i in range(4)]
            # Highest bid wins; on a tie the earliest bidder keeps it.
            rnd.bid_winner = max(order, key=lambda s: (rnd.bids[s], -order.index(s)))
            rnd.to_act = rnd.bid_winner
            self._phase = "TrumpSelect"
        else:
            rnd.to_act = (seat + 1) % 4

    def _choose_trump(self) -> None:
        rnd = self._current()
        hand = rnd.hands[rnd.to_act]
        by_suit = {s: [c for c in hand if card_suit(c) == s] for s in SUITS}
        longest = max(SUITS, key=lambda s: (len(by_suit[s]), sum(map(card_rank, by_suit[s]))))
        balanced = len(hand) >= 4 and len(by_suit[longest]) * 4 <= len(hand) + 1
        rnd.trump = None if balanced else longest
        rnd.trump_chosen = True
        rnd.trick_no = 1
        rnd.leader = rnd.to_act
        self._phase = "Trick"

    def _play(self) -> None:
        rnd = self._current()
        seat = rnd.to_act
        led = card_suit(rnd.current_trick[0][1]) if rnd.current_trick else None
        card = self._choose_card(rnd, legal_cards(rnd.hands[seat], led))
        rnd.hands[seat].remove(card)
        rnd.current_trick.append((seat, card))
        if len(rnd.current_trick) < 4:
            rnd.to_act = (seat + 1) % 4
            return
        winner = trick_winner(rnd.current_trick, rnd.trump)
        rnd.tricks_won[winner] += 1
        rnd.last_trick = {
            "trick_no": rnd.trick_no,
            "leader": rnd.leader,
            "cards": [[s, c] for s, c in rnd.current_trick],
            "winner": winner,
        }
        rnd.current_trick = []
        if any(rnd.hands):
            rnd.trick_no += 1
            rnd.leader = winner
            rnd.to_act = winner
            return
        self._round_scores = rnd.scores()
        self._scores_total = [
            t + s for t, s in zip(self._scores_total, self._round_scores, strict=True)
        ]
        self._previous_round = {
            "round_no": rnd.number,
            "hand_size": rnd.hand_size,
            "tricks_won": list(rnd.tricks_won),
            "bids": list(rnd.bids),
        }
        self._phase = "Scoring"

    def _after_scoring(self) -> None:
        rnd = self._current()
        if rnd.number == len(ROUND_HAND_SIZES):
            self._phase = "GameOver"
            return
        self._deal(rnd.number + 1, dealer=(rnd.dealer + 1) % 4)

    # ---- simulated players ------------------------------------------------------------

    def _choose_bid(self, hand: list[str], hand_size: int) -> int:
        # Count likely winners (aces, kings, guarded queens), with a little noise.
        high = sum(1 for c in hand if card_rank(c) >= RANKS.index("Q"))
        estimate = round(high * 0.8) + self._rng.choice((-1, 0, 0, 1))
        return max(0, min(hand_size, estimate))

    def _choose_card(self, rnd: _Round, legal: list[str]) -> str:
        if not rnd.current_trick:
            return max(legal, key=lambda c: (card_rank(c), self._rng.random()))
        winning = [
            c
            for c in legal
            if trick_winner([*rnd.current_trick, (rnd.to_act, c)], rnd.trump) == rnd.to_act
        ]
        if winning:
            return min(winning, key=lambda c: (card_suit(c) == rnd.trump, card_rank(c)))
        return min(legal, key=lambda c: (card_suit(c) == rnd.trump, card_rank(c)))

    # ---- envelope -------------------------------------------------------------------------

    def _current(self) -> _Round:
        if self._round is None:
            raise RuntimeError("no round in progress")
        return self._round

    def _envelope(self) -> Json:
        return {
            "gameId": self.game_id,
            "version": self._version,
            "snapshot": self._snapshot(),
            "viewers": {user: self._viewer(seat) for seat, user in enumerate(DEMO_SEATS)},
            "members": list(DEMO_SEATS),
        }

    def _snapshot(self) -> Json:
        rnd = self._current()
        header = {
            "game_no": self._game_no,
            "round_no": rnd.number,
            "dealer": rnd.dealer,
            "seating": [
                {
                    "seat": seat,
                    "user_id": user,
                    "display_name": _SEAT_NAMES[seat],
                    "is_ai": True,
                    "is_ready": True,
                }
                for seat, user in enumerate(DEMO_SEATS)
            ],
            "scores_total": list(self._scores_total),
            "host_seat": 0,
        }
        return {"game": header, "phase": self._phase_snapshot(rnd)}

    def _phase_snapshot(self, rnd: _Round) -> Json:
        if self._phase == "GameOver":
            return {"phase": "GameOver"}
        if self._phase == "Scoring":
            return {
                "phase": "Scoring",
                "data": {
                    "round": rnd.public(),
                    "round_scores": list(self._round_scores or []),
                    "last_trick": rnd.last_trick,
                },
            }
        if self._phase == "Bidding":
            return {
                "phase": "Bidding",
                "data": {
                    "round": rnd.public(),
                    "to_act": rnd.to_act,
                    "bids": list(rnd.bids),
                    "min_bid": 0,
                    "max_bid": rnd.hand_size,
                    "last_trick": None,
                    "previous_round": self._previous_round,
                },
            }
        if self._phase == "TrumpSelect":
            return {
                "phase": "TrumpSelect",
                "data": {
                    "round": rnd.public(),
                    "to_act": rnd.to_act,
                    "allowed_trumps": list(ALLOWED_TRUMPS),
                    "last_trick": None,
                },
            }
        return {
            "phase": "Trick",
            "data": {
                "round": rnd.public(),
                "trick_no": rnd.trick_no,
                "leader": rnd.leader,
                "current_trick": [[s, c] for s, c in rnd.current_trick],
                "to_act": rnd.to_act,
                "last_trick": rnd.last_trick,
            },
        }

    def _viewer(self, seat: int) -> Json:
        rnd = self._current()
        viewer: Json = {"seat": seat, "hand": list(rnd.hands[seat])}
        if self._phase == "Trick" and rnd.to_act == seat:
            led = card_suit(rnd.current_trick[0][1]) if rnd.current_trick else None
            viewer["playable"] = legal_cards(rnd.hands[seat], led)
        return viewer
