import type { GameSyncClient } from "@gamesync/client";
import { GameSyncProvider } from "@gamesync/client/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { fetchConfig, fetchInitialState } from "./api";
import { App } from "./App";
import { createGameSyncClient } from "./gamesync";
import { readPageSettings } from "./settings";
import "./styles.css";

declare global {
  interface Window {
    /** The app's client, for the browser tests to read the state it holds. */
    gamesyncExample?: { client: GameSyncClient };
  }
}

const root = createRoot(document.getElementById("root") as HTMLElement);
const settings = readPageSettings(window.location.search);

try {
  const config = await fetchConfig();
  const client = createGameSyncClient(config, settings);
  window.gamesyncExample = { client };
  // No initial state is fine too (the gateway down at load time): the hook waits for the socket.
  const initial = await fetchInitialState(config.gameId, settings.user).catch(() => undefined);
  root.render(
    <StrictMode>
      <GameSyncProvider client={client}>
        <App gameId={config.gameId} settings={settings} initial={initial} />
      </GameSyncProvider>
    </StrictMode>,
  );
} catch (err) {
  root.render(
    <p id="startup-error" className="notice">
      Could not start: {err instanceof Error ? err.message : String(err)}. Is a dev gateway running
      (scripts/gateway)?
    </p>,
  );
}
