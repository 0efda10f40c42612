// The app's one GameSyncClient (one socket for every game on the page), created once in a
// client-only module, as clients/js/README.md describes for Nommie's Next.js app.
import { GameSyncClient } from "@gamesync/client";

import { type AppConfig, stateUrl, tokenProvider } from "./api";
import type { PageSettings } from "./settings";

export function createGameSyncClient(config: AppConfig, settings: PageSettings): GameSyncClient {
  return new GameSyncClient({
    url: config.wsUrl,
    token: tokenProvider(settings.user),
    // The REST route stays: refresh() (after a 409, say) and the polling fallback use it.
    snapshotUrl: stateUrl(settings.user),
    // Delta snapshots (protocol 2): the gateway sends JSON Patches where it can; the hook's
    // state is the same either way.
    delta: settings.delta,
  });
}
