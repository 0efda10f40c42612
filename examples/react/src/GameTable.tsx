import { useGameSync } from "@gamesync/client/react";
import { useState } from "react";

import { sendMove } from "./api";
import type { DemoSnapshot, DemoViewer, GameState } from "./demo-game";
import { StatusBadge } from "./StatusBadge";

const SUITS: Record<string, string> = { S: "♠", H: "♥", D: "♦", C: "♣" };

type Conflict =
  | { step: "refreshing"; currentVersion: number }
  | { step: "refreshed"; currentVersion: number }
  | { step: "failed"; currentVersion: number; message: string };

interface Props {
  gameId: number;
  user: string;
  /** The REST snapshot fetched before the first render (a server component's job in Next.js). */
  initial: GameState | undefined;
}

/** One game, live: the hook gives the newest state for this user; `initial` fills the gap. */
export function GameTable({ gameId, user, initial }: Props) {
  const { snapshot, viewer, version, status, error, refresh } = useGameSync<DemoSnapshot, DemoViewer>(gameId, {
    initial,
  });
  // What the very first render showed: `initial`, before the socket said anything.
  const [firstRender] = useState(() => ({ version, status }));
  const [conflict, setConflict] = useState<Conflict | null>(null);

  async function play(card: string) {
    if (version === undefined) return;
    const result = await sendMove(gameId, user, { card, expectedVersion: version });
    if (result.ok) return;
    // 409: someone else's commit won. The push will bring it anyway; refresh() fetches it now
    // through the REST route, with the ETag it last saw, and the client's version gate.
    setConflict({ step: "refreshing", currentVersion: result.currentVersion });
    try {
      await refresh();
      setConflict({ step: "refreshed", currentVersion: result.currentVersion });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      setConflict({ step: "failed", currentVersion: result.currentVersion, message });
    }
  }

  const game = snapshot?.game;
  const round = snapshot?.phase.data?.round;
  const trick = snapshot?.phase.data?.current_trick ?? [];
  return (
    <section className="panel" aria-labelledby="game-title" data-initial-version={initial?.version}>
      <header className="bar">
        <h2 id="game-title">
          Game {gameId} <span className="muted">· version </span>
          <span id="version">{version ?? "—"}</span>
        </h2>
        <StatusBadge status={status} error={error} />
      </header>

      <p id="first-render" className="muted small" data-version={firstRender.version} data-status={firstRender.status}>
        First render: {firstRender.version === undefined ? "no state yet" : `version ${firstRender.version} from the REST snapshot`}{" "}
        while {firstRender.status}.
      </p>

      <p id="phase">
        {snapshot ? `${snapshot.phase.phase} · round ${game?.round_no ?? "—"}` : "waiting for the first snapshot"}
        {round?.trump ? ` · trumps: ${round.trump}` : ""}
      </p>

      <table id="seats" className="table">
        <thead>
          <tr>
            <th>Seat</th>
            <th>Player</th>
            <th>Bid</th>
            <th>Tricks</th>
            <th>Score</th>
            <th>On the table</th>
          </tr>
        </thead>
        <tbody>
          {game?.seating.map((seat) => (
            <tr key={seat.seat} data-seat={seat.seat} className={viewer?.seat === seat.seat ? "mine" : undefined}>
              <td>{seat.seat}</td>
              <td>
                {seat.display_name} <span className="muted">(user {seat.user_id})</span>
              </td>
              <td>{round?.bids[seat.seat] ?? "—"}</td>
              <td>{round?.tricks_won[seat.seat] ?? "—"}</td>
              <td>{game.scores_total[seat.seat] ?? 0}</td>
              <td>{showCard(trick.find(([s]) => s === seat.seat)?.[1])}</td>
            </tr>
          ))}
        </tbody>
      </table>

      <h3>
        Your hand <span className="muted">(user {user}; private: only this user's token receives it)</span>
      </h3>
      <div id="hand" className="hand" data-seat={viewer?.seat}>
        {viewer?.hand.length ? (
          viewer.hand.map((card) => (
            <button
              key={card}
              type="button"
              className={/[HD]$/.test(card) ? "card red" : "card"}
              data-card={card}
              onClick={() => void play(card)}
            >
              {showCard(card)}
            </button>
          ))
        ) : (
          <span className="muted">no cards</span>
        )}
      </div>
      <p className="muted small">Click a card to send a move. The demo plays itself, so every move gets a 409.</p>

      {conflict && (
        <p id="conflict" className="notice" data-step={conflict.step} data-current-version={conflict.currentVersion}>
          409 at version {conflict.currentVersion}:{" "}
          {conflict.step === "refreshing" && "refresh() in flight…"}
          {conflict.step === "refreshed" && `refresh() done, showing version ${version ?? "—"}.`}
          {conflict.step === "failed" && `refresh() failed: ${conflict.message}`}
        </p>
      )}
    </section>
  );
}

function showCard(card: string | undefined): string {
  return card ? `${card.slice(0, -1)}${SUITS[card.slice(-1)] ?? card.slice(-1)}` : "";
}
