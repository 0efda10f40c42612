import { Fragment } from "react";

import type { GameState } from "./demo-game";
import { GameTable } from "./GameTable";
import { type PageSettings, settingsQuery } from "./settings";
import { Timeline } from "./Timeline";

const USERS = ["1", "2", "3", "4"];

export function App({
  gameId,
  settings,
  initial,
}: {
  gameId: number;
  settings: PageSettings;
  initial: GameState | undefined;
}) {
  const { user, delta } = settings;
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
              <a href={settingsQuery({ ...settings, user: u })}>user {u}</a>
            </Fragment>
          ))}
          {" · "}
          <span id="delta" data-delta={delta ? "on" : "off"}>
            deltas {delta ? "on" : "off"}
          </span>{" "}
          (<a href={settingsQuery({ ...settings, delta: !delta })}>turn {delta ? "off" : "on"}</a>)
        </nav>
      </header>
      <main className="grid">
        <GameTable gameId={gameId} user={user} initial={initial} />
        <Timeline />
      </main>
    </>
  );
}
