import type { ReactNode } from "react";

import type { ConnectionStatus, GameSyncClient, GameSyncError } from "./index.js";

export interface GameSyncProviderProps {
  client: GameSyncClient;
  children?: ReactNode;
}

/** Provides `client` to useGameSync; connects on mount and disconnects on unmount. */
export declare function GameSyncProvider(props: GameSyncProviderProps): ReactNode;

export declare function useGameSyncClient(): GameSyncClient | null;

// Each option may also be given as `undefined` (e.g. `{ initial }` straight from props, under
// `exactOptionalPropertyTypes`): the hook treats it as absent.
export interface UseGameSyncOptions<S = unknown, V = unknown> {
  /** Use this client instead of the provider's. */
  client?: GameSyncClient | undefined;
  /** State rendered by the server (e.g. from the REST endpoint), shown until a newer version. */
  initial?: { version: number; snapshot: S; viewer?: V | undefined } | undefined;
  /** Make sure the client is connected (default true). */
  connect?: boolean | undefined;
}

export interface GameSyncResult<S = unknown, V = unknown> {
  snapshot: S | undefined;
  viewer: V | undefined;
  version: number | undefined;
  status: ConnectionStatus;
  error: GameSyncError | null;
  /** Poll once through the client's `snapshotUrl` (rejects when it has none). */
  refresh: () => Promise<void>;
}

export declare function useGameSync<S = unknown, V = unknown>(
  gameId: number | string | null | undefined,
  options?: UseGameSyncOptions<S, V>,
): GameSyncResult<S, V>;
