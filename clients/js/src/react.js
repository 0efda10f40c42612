"use client";
// React bindings for GameSyncClient: one client (one socket) per app, shared through context;
// each useGameSync call subscribes to one game and re-renders on that game's snapshots.
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useSyncExternalStore,
} from "react";

const GameSyncContext = createContext(null);

const NO_GAME = Object.freeze({ snapshot: undefined, viewer: undefined, version: undefined, error: null });

/** Provides `client` to useGameSync below it; connects on mount, disconnects on unmount. */
export function GameSyncProvider({ client, children }) {
  useEffect(() => {
    client.connect();
    return () => client.disconnect();
  }, [client]);
  return createElement(GameSyncContext.Provider, { value: client }, children);
}

/** The client from the nearest GameSyncProvider (or null). */
export function useGameSyncClient() {
  return useContext(GameSyncContext);
}

/**
 * The live state of one game: {snapshot, viewer, version, status, error, refresh}.
 * `gameId` null or undefined subscribes to nothing. Options: `client` (instead of the
 * provider's), `initial` ({version, snapshot, viewer} rendered by the server; shown until a
 * newer version arrives), `connect` (default true: make sure the client is connected).
 */
export function useGameSync(gameId, options = {}) {
  const fromContext = useContext(GameSyncContext);
  const client = options.client || fromContext;
  if (!client) {
    throw new Error("useGameSync needs a <GameSyncProvider client={...}> above it or options.client");
  }
  const id = gameId === null || gameId === undefined ? null : Number(gameId);
  const { initial } = options;
  const autoConnect = options.connect !== false;

  useEffect(() => {
    if (autoConnect) client.connect(); // idempotent; the provider or the app owns disconnect()
  }, [client, autoConnect]);

  useEffect(() => {
    if (id === null) return undefined;
    if (initial && Number.isInteger(initial.version)) client.prime(id, initial);
    client.subscribe(id); // reference-counted in the client
    return () => client.unsubscribe(id);
    // `initial` only seeds the first subscription; later changes of it must not resubscribe.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, id]);

  const subscribeGame = useCallback(
    (onChange) =>
      client.on("game", (event) => {
        if (event.gameId === id) onChange();
      }),
    [client, id],
  );
  const readGame = () => (id === null ? NO_GAME : client.getGame(id));
  const game = useSyncExternalStore(subscribeGame, readGame, readGame);

  const subscribeStatus = useCallback((onChange) => client.on("status", onChange), [client]);
  const status = useSyncExternalStore(subscribeStatus, () => client.status, () => client.status);
  const clientError = useSyncExternalStore(subscribeStatus, () => client.error, () => client.error);

  const refresh = useCallback(() => (id === null ? Promise.resolve() : client.refresh(id)), [client, id]);

  const shown = game.version === undefined && initial && Number.isInteger(initial.version) ? initial : game;
  return {
    snapshot: shown.snapshot,
    viewer: shown.viewer,
    version: shown.version,
    status,
    error: game.error || clientError,
    refresh,
  };
}
