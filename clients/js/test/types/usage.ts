// Compiled (never run) by test/types.test.js: the declarations must accept real usage and
// reject misuse (the @ts-expect-error lines fail the build if they stop being errors).
import { GameSyncClient, GameSyncError, Status, backoffDelay, sseUrlFor, type ConnectionStatus } from "@gamesync/client";
import { GameSyncProvider, useGameSync } from "@gamesync/client/react";

interface Table {
  game: { round_no: number };
}
interface Hand {
  seat: number;
  hand: string[];
}

const client = new GameSyncClient({
  url: "wss://play.example.com/ws",
  token: async ({ reason }) => (reason === "renew" ? "fresh" : "first"),
  snapshotUrl: (id) => `/api/games/${id}/state`,
});
client.subscribe(42);
const off = client.on("snapshot", (event) => {
  const version: number = event.version;
  void version;
});
off();
client.on("status", ({ status, error }) => {
  const s: ConnectionStatus = status;
  const code: string | undefined = error?.code;
  void s;
  void code;
});
const state = client.getGame<Table, Hand>(42);
const round: number | undefined = state.snapshot?.game.round_no;
void round;
void client.refresh(42);
const delay: number = backoffDelay(3, { baseMs: 500, maxMs: 30000 });
void delay;
const streamed = new GameSyncClient({
  url: "wss://play.example.com/ws",
  token: "t",
  transport: "sse",
  sseUrl: (games) => `${sseUrlFor("wss://play.example.com/ws")}?games=${games.join(",")}`,
  sseAfterAttempts: 2,
  websocketRetryMs: 60000,
});
const carrier: "websocket" | "sse" | "polling" = streamed.transport;
void carrier;
const connected: ConnectionStatus = Status.CONNECTED;
void connected;
void new GameSyncError("unauthorized", "bad token", { closeCode: 4401 });

export function Board({ id }: { id: number }) {
  const { snapshot, viewer, version, status, error, refresh } = useGameSync<Table, Hand>(id, {
    initial: { version: 1, snapshot: { game: { round_no: 1 } } },
  });
  const cards: string[] | undefined = viewer?.hand;
  const n: number | undefined = snapshot?.game.round_no;
  void [cards, n, version, status, error];
  void refresh();
  return null;
}

// `initial` straight from props, possibly undefined (tsconfig: exactOptionalPropertyTypes).
export function ServerRendered({ id, initial }: { id: number; initial: { version: number; snapshot: Table } | undefined }) {
  const { snapshot } = useGameSync<Table, Hand>(id, { initial, client: undefined });
  void snapshot;
  return null;
}

export const app = GameSyncProvider({ client, children: null });

// @ts-expect-error: status is a closed set
const wrong: ConnectionStatus = "open";
void wrong;
// @ts-expect-error: unknown event type
client.on("message", () => {});
// @ts-expect-error: transport is websocket, sse or polling
void new GameSyncClient({ url: "ws://x", transport: "eventsource" });
