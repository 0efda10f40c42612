// The shape of `gamesync gateway --demo`'s Nomination Whist snapshots (Nommie's GameSnapshot):
// the public part every player sees, and the private `viewer` part of one seat.

export interface Seat {
  seat: number;
  user_id: string;
  display_name: string;
}

export interface RoundPublic {
  hand_size: number;
  trump: string | null;
  bids: (number | null)[];
  tricks_won: number[];
}

export interface DemoSnapshot {
  game: {
    game_no: number;
    round_no: number;
    dealer: number;
    seating: Seat[];
    scores_total: number[];
  };
  phase: {
    phase: "Bidding" | "TrumpSelect" | "Trick" | "Scoring" | "GameOver";
    data?: { round?: RoundPublic; to_act?: number; current_trick?: [number, string][] };
  };
}

export interface DemoViewer {
  seat: number;
  hand: string[];
  playable?: string[];
}

/** The REST body of /api/games/{id}/state, as `initial` and `refresh()` read it. */
export interface GameState {
  version: number;
  snapshot: DemoSnapshot;
  viewer?: DemoViewer;
}
