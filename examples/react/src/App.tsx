import { Fragment } from "react";

import type { GameState } from "./demo-game";
import { GameTable } from "./GameTable";
import { Timeline } from "./Timeline";

const USERS = ["1", "2", "3", "4"];

export function App({ gameId, user, initial }: { gameId: number; user: string; initial: GameState | undefined }) {
  return (
    <>
      <header className="bar top">
        <h1>
          GameSync <span className="muted">React example</span>
        </h1>
        <nav className="muted small">
          signed in as user {user} · open as{" "}
          {USERS.filter((u) => u !== user).map((u, index) => (
            <Fragment key={u}>
              {index > 0 && ", "}
              <a href={`?user=${u}`}>user {u}</a>
            </Fragment>
          ))}
        </nav>
      </header>
      <main className="grid">
        <GameTable gameId={gameId} user={user} initial={initial} />
        <Timeline />
      </main>
    </>
  );
}
