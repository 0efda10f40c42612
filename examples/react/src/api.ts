// The page's calls to its own backend (Nommie's routes; here the stand-in in
// backend/nommie-stand-in.mjs). `user` rides along as `?user=N` in place of a session cookie.
import type { TokenSource } from "@gamesync/client";

import type { DemoSnapshot, DemoViewer, GameState } from "./demo-game";

export interface AppConfig {
  /** The gateway's multi-game websocket URL. */
  wsUrl: string;
  gameId: number;
}

/** Where the gateway is and which game to show. */
export async function fetchConfig(): Promise<AppConfig> {
  const response = await fetch("/api/config");
  if (!response.ok) throw new Error(await errorText(response));
  return (await response.json()) as AppConfig;
}

/** The client's token provider: asked on connect, before expiry and once after a 4401. */
export function tokenProvider(user: string): TokenSource {
  return async () => {
    const response = await fetch(`/api/ws-token?user=${encodeURIComponent(user)}`, { cache: "no-store" });
    if (!response.ok) throw new Error(await errorText(response));
    return response.text();
  };
}

/** The REST snapshot URL of a game for this user: `snapshotUrl` for refresh() and polling. */
export function stateUrl(user: string): (gameId: number) => string {
  return (gameId) => `/api/games/${gameId}/state?user=${encodeURIComponent(user)}`;
}

/** The REST snapshot, as the server would render it into the first HTML (`initial`). */
export async function fetchInitialState(gameId: number, user: string): Promise<GameState> {
  const response = await fetch(stateUrl(user)(gameId), { cache: "no-store" });
  if (!response.ok) throw new Error(await errorText(response));
  const body = (await response.json()) as { version: number; data: DemoSnapshot; viewer?: DemoViewer };
  return body.viewer === undefined
    ? { version: body.version, snapshot: body.data }
    : { version: body.version, snapshot: body.data, viewer: body.viewer };
}

export type MoveResult = { ok: true } | { ok: false; conflict: true; currentVersion: number };

/** A mutation: a plain REST call. Its commit publishes a new version to every tab. */
export async function sendMove(
  gameId: number,
  user: string,
  move: { card: string; expectedVersion: number },
): Promise<MoveResult> {
  const response = await fetch(`/api/games/${gameId}/moves?user=${encodeURIComponent(user)}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(move),
  });
  if (response.status === 409) {
    const body = (await response.json()) as { currentVersion: number };
    return { ok: false, conflict: true, currentVersion: body.currentVersion };
  }
  if (!response.ok) throw new Error(await errorText(response));
  return { ok: true };
}

async function errorText(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  return `${response.url} answered ${response.status}${text ? `: ${text}` : ""}`;
}
