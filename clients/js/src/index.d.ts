// Type declarations for @gamesync/client (protocol version 2, DESIGN.md §2).

export declare const PROTOCOL_VERSION: 2;

export type ConnectionStatus = "connecting" | "connected" | "reconnecting" | "disconnected";

export declare const Status: Readonly<{
  CONNECTING: "connecting";
  CONNECTED: "connected";
  RECONNECTING: "reconnecting";
  DISCONNECTED: "disconnected";
}>;

/** Why the token provider is being asked. */
export type TokenReason = "connect" | "renew" | "unauthorized" | "poll";

/** A fixed token, or a function asked on connect, before expiry and once after a 4401. */
export type TokenSource = string | ((context: { reason: TokenReason }) => string | Promise<string>);

export interface SnapshotBody<S = unknown, V = unknown> {
  version: number;
  data: S;
  viewer?: V;
}

export interface GameState<S = unknown, V = unknown> {
  readonly snapshot: S | undefined;
  /** The private part for this user; undefined when the publisher sent none. */
  readonly viewer: V | undefined;
  /** The game's version (lock_version) of `snapshot`. */
  readonly version: number | undefined;
  /** The last error for this game (e.g. `forbidden`), cleared by the next snapshot. */
  readonly error: GameSyncError | null;
}

/** Test and non-browser hooks; every member defaults to the browser's global. */
export interface GameSyncEnvironment {
  WebSocket?: new (url: string) => WebSocketLike;
  fetch?: (url: string, init?: RequestInit) => Promise<ResponseLike>;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Uniform in [0, 1); drives the full-jitter backoff. */
  random?: () => number;
  window?: EventTargetLike;
  document?: EventTargetLike & { visibilityState?: string };
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface ResponseLike {
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  json(): Promise<unknown>;
  /** A streaming body, for the SSE transport. */
  body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } } | null;
}

export interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

export interface GameSyncOptions {
  /** The gateway's multi-game websocket URL, e.g. `wss://play.example.com/ws`. */
  url?: string;
  token?: TokenSource;
  /** Protocol 2: ask the gateway for `delta` messages (JSON Patches) instead of a full snapshot
   * per version. The state the client holds and reports is the same either way. Default false. */
  delta?: boolean;
  /** Game-affine placement (DESIGN §2): learn the fleet's shard count from `GET /v1/shards`
   * and connect to `/ws/s/{shardOf(id, K)}/games/{id}` for the first game subscribed (an SSE
   * stream of one game likewise). On a wrong-shard close (4421) the count is learnt again and
   * the client reconnects at once, once. Default false (spread: `url` as given). */
  affinity?: boolean;
  /** `websocket` (default: websocket, then SSE, then polling), `sse` (SSE, then polling) or
   * `polling` (only `snapshotUrl`, no push). */
  transport?: "websocket" | "sse" | "polling";
  /** The SSE endpoint (`.../sse`; `?games=` is added), or a function of the game ids giving
   * the whole URL. Default: from `url` (`wss://host/ws` → `https://host/sse`). */
  sseUrl?: string | ((games: number[]) => string);
  /** Failed websocket attempts in a row before the SSE fallback takes over. Default 2. */
  sseAfterAttempts?: number;
  /** While on the SSE fallback, how often a websocket is tried again. Default 300000. */
  websocketRetryMs?: number;
  /** REST snapshot URL for polling and refresh(): a template with `{gameId}` or a function. */
  snapshotUrl?: string | ((gameId: number) => string);
  /** Extra fetch options for polling (credentials, headers). */
  fetchInit?: RequestInit;
  /** Reads a polled body; default: parseSnapshotBody. Return null for "no snapshot". */
  parseSnapshot?: (body: unknown, gameId: number) => SnapshotBody | null;
  /** Polling period (polling transport and websocket fallback). Default 3000. */
  pollIntervalMs?: number;
  /** Failed attempts in a row (websocket or SSE) before polling fills in. Default 3. */
  fallbackAfterAttempts?: number;
  /** Full-jitter backoff: delay = random() * min(max, base * 2^attempt). Defaults 500 / 30000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** How long a connection must hold before the backoff starts again from zero. Default 5000. */
  stableAfterMs?: number;
  /** Attempts before giving up (status `disconnected`, error `gave_up`). Default Infinity. */
  maxAttempts?: number;
  /** Time from socket creation to `welcome`. Default 10000. */
  connectTimeoutMs?: number;
  /** Time to wait for `pong` after an application ping. Default 10000. */
  pongTimeoutMs?: number;
  /** Ping period when the server's welcome does not say. Default 20000. */
  heartbeatMs?: number;
  /** Renew this long before `expiresAt` (half-way for shorter tokens). Default 30000. */
  renewMarginMs?: number;
  renewRetryMs?: number;
  environment?: GameSyncEnvironment;
}

export interface StatusEvent {
  status: ConnectionStatus;
  previous: ConnectionStatus;
  error: GameSyncError | null;
}

export interface SnapshotEvent<S = unknown, V = unknown> {
  gameId: number;
  version: number;
  snapshot: S;
  viewer: V | undefined;
  source: "websocket" | "sse" | "polling" | "initial";
}

export interface GameSyncEvents {
  status: StatusEvent;
  snapshot: SnapshotEvent;
  game: { gameId: number; state: GameState };
  error: GameSyncError;
  frame: { direction: "in" | "out"; frame: Record<string, unknown> };
  open: { url: string };
  close: { code: number; reason: string; wasClean: boolean };
}

export declare class GameSyncError extends Error {
  /** A protocol error code (`unauthorized`, `token_expired`, `forbidden`, ...) or a local one
   * (`connection_lost`, `token_unavailable`, `poll_failed`, `gave_up`, `idle`, ...). */
  readonly code: string;
  readonly gameId?: number;
  readonly closeCode?: number;
  /** HTTP status, for polling errors. */
  readonly status?: number;
  constructor(code: string, message?: string, details?: { gameId?: number; closeCode?: number; status?: number });
}

export declare class GameSyncClient {
  constructor(options: GameSyncOptions);
  readonly status: ConnectionStatus;
  readonly error: GameSyncError | null;
  /** The transport that carries (or will carry) pushed snapshots. */
  readonly transport: "websocket" | "sse" | "polling";
  readonly subscriptions: number[];
  getGame<S = unknown, V = unknown>(gameId: number | string): GameState<S, V>;
  on<K extends keyof GameSyncEvents>(type: K, listener: (event: GameSyncEvents[K]) => void): () => void;
  /** Start (idempotent); after a final failure, starts again. */
  connect(): void;
  /** Stop: close the socket, cancel timers; snapshots stay readable. */
  disconnect(): void;
  /** Reference-counted: each subscribe needs one unsubscribe. */
  subscribe(gameId: number | string): void;
  unsubscribe(gameId: number | string): void;
  /** Seed state rendered elsewhere; goes through the version gate. */
  prime<S = unknown, V = unknown>(gameId: number | string, state: { version: number; snapshot: S; viewer?: V }): void;
  /** Poll once through `snapshotUrl` (one game, or every subscribed game); rejects with
   * `no_snapshot_url` when the client has none, or with the HTTP failure. */
  refresh(gameId?: number | string): Promise<void>;
}

export declare function backoffDelay(
  attempt: number,
  options: { baseMs: number; maxMs: number },
  random?: () => number,
): number;

export declare function parseSnapshotBody(body: unknown): SnapshotBody | null;

/** A JSON Patch operation (RFC 6902) of the kinds the gateway sends. */
export type PatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** `doc` with `patch` applied; `doc` is left unchanged (untouched parts are shared). Throws when
 * the patch does not fit the document. */
export declare function applyPatch<T = unknown>(doc: T, patch: PatchOperation[]): T;

/** The SSE endpoint for a websocket URL: `ws(s)://host/ws` → `http(s)://host/sse`. */
export declare function sseUrlFor(wsUrl: string): string;
/** The shard serving a game's game-affine connections: the game id modulo the shard count. */
export declare function shardOf(gameId: number | string | bigint, shards: number): number;
/** `ws(s)://host/ws` → `http(s)://host/v1/shards` (the fleet's shard count). */
export declare function shardsUrlFor(wsUrl: string): string;
/** A game's game-affine URL on the gateway of `url`: `/ws/s/{shard}/games/{id}` (or `/sse/...`). */
export declare function affineUrlFor(url: string, shard: number, gameId: number | string): string;
