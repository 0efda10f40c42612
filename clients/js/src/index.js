// GameSync browser client: one socket for many games, snapshots in version order, reconnects
// with full-jitter backoff, and websocket → SSE → polling fallbacks. Dependency-free ES module;
// protocol: DESIGN.md §2 (version 2: version 1 plus deltas and the SSE transport).
// The gateway's build (setup.py) copies this file byte-for-byte into the package as
// gamesync/static/gamesync-client.js for the dev console; this is the only source.

export const PROTOCOL_VERSION = 2;

/** Connection states, in the order a healthy client goes through them. */
export const Status = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  DISCONNECTED: "disconnected",
});

/** Close codes the client treats as final: retrying with the same inputs cannot help. */
const FINAL_CLOSE_CODES = new Set([4400, 4403]);
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_IDLE = 4408;
/** A game-affine path for another shard: learn the shard count again, reconnect once at once. */
const CLOSE_WRONG_SHARD = 4421;
/** Local codes used when the client itself gives up on a socket (4000-4099: application use). */
const CLOSE_CLIENT_TIMEOUT = 4000;

const DEFAULTS = Object.freeze({
  transport: "websocket",
  delta: false,
  affinity: false,
  pollIntervalMs: 3000,
  sseAfterAttempts: 2,
  websocketRetryMs: 300000,
  fallbackAfterAttempts: 3,
  backoffBaseMs: 500,
  backoffMaxMs: 30000,
  maxAttempts: Infinity,
  connectTimeoutMs: 10000,
  pongTimeoutMs: 10000,
  heartbeatMs: 20000,
  renewMarginMs: 30000,
  renewRetryMs: 5000,
  stableAfterMs: 5000,
});

/** An error the client reports: a server `error` frame, a close, or a local failure. */
export class GameSyncError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "GameSyncError";
    this.code = code;
    if (details.gameId !== undefined) this.gameId = details.gameId;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
    if (details.status !== undefined) this.status = details.status;
  }
}

/**
 * Full-jitter backoff (AWS Architecture Blog, "Exponential Backoff and Jitter"): a uniform
 * draw in [0, min(max, base * 2^attempt)], so a fleet of clients that lost the same pod
 * spreads its reconnects instead of arriving in waves.
 */
export function backoffDelay(attempt, { baseMs, maxMs }, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/**
 * Default reading of a polled snapshot body. Accepts the gateway's snapshot frame
 * (`gameVersion`, `data`, `viewer`), a publish envelope (`version`, `snapshot`, `viewers` is
 * ignored) or a REST body shaped `{version, game, viewer}` like Nommie's.
 */
export function parseSnapshotBody(body) {
  if (body === null || typeof body !== "object") return null;
  const version = body.gameVersion ?? body.version;
  const data = body.data ?? body.snapshot ?? body.game;
  if (!Number.isInteger(version) || data === undefined) return null;
  return { version, data, viewer: body.viewer };
}

/** Thrown by applyPatch for a patch that does not fit the document. */
class PatchError extends Error {}

/**
 * Apply a JSON Patch (RFC 6902: add, remove, replace; the operations the gateway sends) to
 * `doc` without changing it: only the objects and arrays on each operation's path are copied,
 * so the parts the patch does not touch keep their identity (React re-renders what changed).
 * Throws when the patch does not fit the document.
 */
export function applyPatch(doc, patch) {
  if (!Array.isArray(patch)) throw new PatchError("a patch is a list of operations");
  let result = doc;
  for (const op of patch) {
    if (op === null || typeof op !== "object" || typeof op.path !== "string") throw new PatchError("an operation is an object with a path");
    if (op.op !== "add" && op.op !== "remove" && op.op !== "replace") throw new PatchError(`unsupported operation ${op.op}`);
    if (op.op !== "remove" && !("value" in op)) throw new PatchError(`${op.op} needs a value`);
    result = patchAt(result, op.op, pointerTokens(op.path), 0, op.value);
  }
  return result;
}

function pointerTokens(path) {
  if (path === "") return [];
  if (path[0] !== "/") throw new PatchError(`a path starts with "/": ${path.slice(0, 40)}`);
  return path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function patchAt(node, kind, tokens, i, value) {
  if (i === tokens.length) {
    if (kind === "remove") throw new PatchError("cannot remove the whole document");
    return value;
  }
  const token = tokens[i];
  const last = i === tokens.length - 1;
  if (Array.isArray(node)) {
    const end = kind === "add" && last;
    let index;
    if (token === "-" && end) index = node.length;
    else if (/^(0|[1-9][0-9]*)$/.test(token)) index = Number(token);
    else throw new PatchError(`not an array index: ${token}`);
    if (index > node.length || (index === node.length && !end)) throw new PatchError(`array index ${index} out of range`);
    const copy = node.slice();
    if (!last) copy[index] = patchAt(node[index], kind, tokens, i + 1, value);
    else if (kind === "add") copy.splice(index, 0, value);
    else if (kind === "replace") copy[index] = value;
    else copy.splice(index, 1);
    return copy;
  }
  if (node !== null && typeof node === "object") {
    const has = Object.prototype.hasOwnProperty.call(node, token);
    if (!has && (!last || kind !== "add")) throw new PatchError(`no member ${token}`);
    const copy = { ...node };
    if (!last) copy[token] = patchAt(node[token], kind, tokens, i + 1, value);
    else if (kind === "remove") delete copy[token];
    else copy[token] = value;
    return copy;
  }
  throw new PatchError(`cannot reach into ${node === null ? "null" : typeof node} at ${token}`);
}

/**
 * The gateway shard that serves a game's game-affine connections (DESIGN §2 "Game-affine
 * placement"): the game id modulo the shard count, exactly (on a BigInt for ids beyond 2^53,
 * which a string carries whole).
 */
export function shardOf(gameId, shards) {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shard count must be a positive integer, got ${shards}`);
  if (typeof gameId === "number" && Number.isSafeInteger(gameId) && gameId >= 0) return gameId % shards;
  if ((typeof gameId === "string" && /^\d+$/.test(gameId)) || (typeof gameId === "bigint" && gameId >= 0n)) {
    return Number(BigInt(gameId) % BigInt(shards));
  }
  throw new TypeError(`GameSyncClient: game id must be a non-negative integer, got ${String(gameId)}`);
}

/** The public shard announcement for a websocket URL: ws(s)://host/ws → http(s)://host/v1/shards. */
export function shardsUrlFor(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
  url.pathname = "/v1/shards";
  url.search = "";
  url.hash = "";
  return url.toString();
}

/** A game's game-affine path on the gateway of `url`: /ws/s/{shard}/games/{id} (or /sse/...). */
export function affineUrlFor(url, shard, gameId) {
  const affine = new URL(url);
  const kind = /^\/sse(\/|$)/.test(affine.pathname) ? "sse" : "ws";
  affine.pathname = `/${kind}/s/${shard}/games/${gameId}`;
  return affine.toString();
}

/** The SSE endpoint for a websocket URL: ws(s)://host/ws → http(s)://host/sse. */
export function sseUrlFor(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
  url.pathname = url.pathname.replace(/\/ws(\/games\/\d+)?\/?$/, "/sse");
  url.search = "";
  url.hash = "";
  return url.toString();
}

function browserEnvironment() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    fetch: typeof g.fetch === "function" ? g.fetch.bind(g) : undefined,
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
    window: typeof g.addEventListener === "function" ? g : undefined,
    document: g.document,
  };
}

/**
 * The websocket transport: one socket speaking protocol v1. It authenticates with the first
 * message (which keeps the token out of URLs, and so out of proxy access logs) and parses
 * frames. Once closed, by either side, it never calls back again, so a superseded socket
 * cannot touch the client's state.
 */
class SocketTransport {
  #socket;
  #handlers;
  #done = false;

  /** Throws what the WebSocket constructor throws (e.g. a malformed URL). */
  constructor(WebSocketImpl, url, token, handlers, authFields = {}) {
    this.#handlers = handlers;
    const socket = new WebSocketImpl(url);
    this.#socket = socket;
    socket.onopen = () => {
      if (this.#done) return;
      this.#handlers.open();
      this.send({ type: "auth", token, ...authFields });
    };
    socket.onmessage = (event) => {
      if (this.#done) return;
      let frame;
      try {
        frame = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
      } catch {
        this.#handlers.badFrame();
        return;
      }
      if (frame !== null && typeof frame === "object") this.#handlers.frame(frame);
      else this.#handlers.badFrame();
    };
    socket.onclose = (event) => {
      if (this.#done) return;
      this.#done = true;
      this.#handlers.close(event.code, event.reason || "", Boolean(event.wasClean));
    };
    socket.onerror = () => {
      // Always followed by a close event, which carries the code.
    };
  }

  get isOpen() {
    return !this.#done && this.#socket.readyState === 1;
  }

  /** Route this socket's events elsewhere (a probe socket promoted to the client's socket). */
  rewire(handlers) {
    this.#handlers = handlers;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.#socket.send(JSON.stringify(message));
    this.#handlers.sent(message);
    return true;
  }

  /** Close without waiting for the peer, and detach: no handler runs after this. */
  close(code, reason) {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#socket.close(code, reason);
    } catch {
      // Already closing or closed.
    }
  }
}

/**
 * The SSE transport (DESIGN §2): one `fetch()` of `GET /sse?games=...` read as an event
 * stream. The token goes in the `Authorization` header, never in the URL (URLs end up in proxy
 * logs). It cannot send anything, so a change of games or token means a new stream. The
 * stream's last event is `close` with a websocket close code, so the client reacts to its end
 * as to a websocket's. Once closed, by either side, it never calls back again.
 */
class SseTransport {
  #handlers;
  #controller;
  #done = false;
  #opened = false;
  #closeCode = null;
  #closeReason = "";
  #data = [];

  constructor(fetchImpl, url, token, handlers) {
    this.#handlers = handlers;
    this.#controller = typeof AbortController === "function" ? new AbortController() : null;
    this.#run(fetchImpl, url, token);
  }

  get isOpen() {
    return !this.#done && this.#opened;
  }

  send() {
    return false;
  }

  close() {
    if (this.#done) return;
    this.#done = true;
    if (this.#controller) this.#controller.abort();
  }

  async #run(fetchImpl, url, token) {
    let response;
    try {
      response = await fetchImpl(url, {
        method: "GET",
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
        cache: "no-store",
        signal: this.#controller ? this.#controller.signal : undefined,
      });
    } catch (err) {
      this.#finish(1006, errorMessage(err), false);
      return;
    }
    if (this.#done) {
      cancelBody(response);
      return;
    }
    if (response.status !== 200 || !response.body || typeof response.body.getReader !== "function") {
      cancelBody(response);
      // A request the gateway cannot serve as asked (400, 405, 505) will not work next time
      // either; anything else (403 from a proxy, 503 while draining) is worth a retry.
      // 421: a game-affine stream for another shard, as a websocket's close 4421 says.
      const code = [400, 405, 505].includes(response.status) ? 4400 : response.status === 421 ? CLOSE_WRONG_SHARD : 1006;
      this.#finish(code, `event stream refused: HTTP ${response.status}`, false);
      return;
    }
    this.#opened = true;
    this.#handlers.open();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (this.#done) {
          reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.charCodeAt(end - 1) === 13 ? buffer.slice(0, end - 1) : buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          this.#line(line);
          if (this.#done) return;
        }
      }
    } catch (err) {
      this.#finish(1006, errorMessage(err), false);
      return;
    }
    if (this.#closeCode !== null) this.#finish(this.#closeCode, this.#closeReason, true);
    else this.#finish(1006, "the event stream ended", false);
  }

  /** One line of the stream (WHATWG HTML §9.2.6): data, a comment, or the event's end. */
  #line(line) {
    if (line === "") {
      if (this.#data.length === 0) return;
      const text = this.#data.join("\n");
      this.#data = [];
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        this.#handlers.badFrame();
        return;
      }
      if (frame === null || typeof frame !== "object") {
        this.#handlers.badFrame();
        return;
      }
      if (frame.type === "close") {
        this.#closeCode = Number.isInteger(frame.code) ? frame.code : 1006;
        this.#closeReason = typeof frame.reason === "string" ? frame.reason : "";
      }
      this.#handlers.frame(frame);
    } else if (line.startsWith(":")) {
      this.#handlers.alive(); // a heartbeat comment
    } else if (line.startsWith("data:")) {
      this.#data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
    }
    // Other fields (event, id, retry) are not used by the gateway.
  }

  #finish(code, reason, wasClean) {
    if (this.#done) return;
    this.#done = true;
    this.#handlers.close(code, reason, wasClean);
  }
}

function cancelBody(response) {
  if (response && response.body && typeof response.body.cancel === "function") response.body.cancel().catch(() => {});
}

/**
 * The HTTP transport: GETs one game's snapshot from a REST URL with a conditional request.
 * The ETag is HTTP-only and never derived from a websocket version (Nommie 1327ef4).
 */
class PollingTransport {
  #etags = new Map();
  #snapshotUrl;
  #fetchInit;
  #parse;
  #fetch;

  constructor({ snapshotUrl, fetchInit, parseSnapshot, fetch }) {
    this.#snapshotUrl = snapshotUrl;
    this.#fetchInit = fetchInit || {};
    this.#parse = parseSnapshot || parseSnapshotBody;
    this.#fetch = fetch;
  }

  urlFor(gameId) {
    const template = this.#snapshotUrl;
    return typeof template === "function" ? template(gameId) : String(template).replace("{gameId}", encodeURIComponent(String(gameId)));
  }

  /** The game's snapshot as {version, data, viewer}, or null when unchanged (304). */
  async fetchSnapshot(gameId, token) {
    if (!this.#fetch) throw new GameSyncError("no_fetch", "no fetch() available for polling");
    const url = this.urlFor(gameId);
    const headers = { Accept: "application/json", ...this.#fetchInit.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    const etag = this.#etags.get(gameId);
    if (etag) headers["If-None-Match"] = etag;
    let response;
    try {
      response = await this.#fetch(url, { ...this.#fetchInit, method: "GET", headers });
    } catch (err) {
      throw new GameSyncError("poll_failed", errorMessage(err), { gameId });
    }
    if (response.status === 304) return null;
    if (!response.ok) {
      const code = response.status === 401 ? "unauthorized" : response.status === 403 ? "forbidden" : "poll_failed";
      throw new GameSyncError(code, `GET ${url} answered ${response.status}`, { gameId, status: response.status });
    }
    const parsed = this.#parse(await response.json(), gameId);
    if (!parsed) throw new GameSyncError("bad_snapshot", `GET ${url} returned no snapshot with a version`, { gameId });
    const newEtag = response.headers && typeof response.headers.get === "function" ? response.headers.get("ETag") : null;
    if (newEtag) this.#etags.set(gameId, newEtag);
    return parsed;
  }
}

const EMPTY_GAME = Object.freeze({
  snapshot: undefined,
  viewer: undefined,
  version: undefined,
  error: null,
});

/**
 * Realtime game snapshots over one websocket (or HTTP polling), as a small event emitter.
 *
 * Events (`on(type, fn)` returns a function that removes the listener):
 * - `status`   {status, previous, error}     every state change
 * - `snapshot` {gameId, version, snapshot, viewer, source}   a newer snapshot was applied
 * - `game`     {gameId, state}               the per-game state changed (snapshot or error)
 * - `error`    GameSyncError                 server error frames and local failures
 * - `frame`    {direction: "in"|"out", frame}  every protocol message (for consoles and logs)
 * - `open` {url} / `close` {code, reason, wasClean}   socket lifecycle
 */
export class GameSyncClient {
  #opts;
  #env;
  #listeners = new Map();
  #status = Status.DISCONNECTED;
  #error = null;
  #wanted = false;
  #parked = false;
  #everConnected = false;
  #socket = null;
  #generation = 0;
  #connectInFlight = false;
  #attempt = 0;
  #retryAfterMs = null;
  #authRetried = false;
  /** The fleet's shard count as last learnt (`affinity`); null: ask before connecting. */
  #shards = null;
  #reshardRetried = false;
  #tokenReason = "connect";
  #token = null;
  #lastServerError = null;
  #timers = {
    reconnect: null,
    welcome: null,
    stable: null,
    heartbeat: null,
    pong: null,
    renew: null,
    poll: null,
    restart: null,
    wsRetry: null,
    probe: null,
  };
  #subscriptions = new Map();
  #games = new Map();
  #poller = null;
  #lifecycleInstalled = false;
  #onResume;
  #polling = false;
  /** The push transport in use or next: "websocket" or "sse" (the fallback). */
  #mode = "websocket";
  /** A websocket tried while the SSE fallback serves, promoted once it is welcomed. */
  #probe = null;
  /** A planned new stream (other games, a renewed token): the status stays as it is. */
  #restarting = false;
  #nextToken = null;
  /** How long an SSE stream may stay silent (no event, no heartbeat comment). */
  #streamQuietMs = 0;
  /** Per game, the last version this connection pushed (what the next delta's base must be). */
  #pushed = new Map();
  /** Games subscribed again for a full snapshot because a delta did not fit. */
  #resyncing = new Set();

  /**
   * @param {object} options  see index.d.ts (GameSyncOptions)
   */
  constructor(options = {}) {
    // An option given as `undefined` (a config field left unset) keeps its default.
    options = definedOnly(options);
    const env = { ...browserEnvironment(), ...definedOnly(options.environment || {}) };
    if (!options.url && options.transport !== "polling" && !(options.transport === "sse" && options.sseUrl)) {
      throw new TypeError("GameSyncClient: `url` (the gateway's ws:// or wss:// /ws URL) is required");
    }
    if (options.transport === "polling" && !options.snapshotUrl) {
      throw new TypeError("GameSyncClient: the polling transport needs `snapshotUrl`");
    }
    this.#opts = { ...DEFAULTS, ...options };
    this.#env = env;
    this.#mode = this.#opts.transport === "sse" ? "sse" : "websocket";
    if (options.snapshotUrl) {
      this.#poller = new PollingTransport({
        snapshotUrl: options.snapshotUrl,
        fetchInit: options.fetchInit,
        parseSnapshot: options.parseSnapshot,
        fetch: env.fetch,
      });
    }
    this.#onResume = () => this.#resume();
  }

  // ---- public surface -------------------------------------------------------------------

  /** The current connection state (see Status). */
  get status() {
    return this.#status;
  }

  /** Why the client is reconnecting or disconnected, or null. */
  get error() {
    return this.#error;
  }

  /** The transport that carries (or will carry) pushed snapshots: websocket, sse or polling. */
  get transport() {
    return this.#opts.transport === "polling" ? "polling" : this.#mode;
  }

  /** Game ids the client is subscribed to. */
  get subscriptions() {
    return [...this.#subscriptions.keys()];
  }

  /** The latest applied state of one game: {snapshot, viewer, version, error}. */
  getGame(gameId) {
    return this.#games.get(normaliseGameId(gameId)) || EMPTY_GAME;
  }

  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Start (idempotent). Resolves at once; watch `status` for progress. */
  connect() {
    if (this.#wanted && !this.#parked) return;
    this.#wanted = true;
    this.#parked = false;
    // Each start gets its own "ask the token provider once more after a 4401" (and 4421).
    this.#authRetried = false;
    this.#reshardRetried = false;
    this.#tokenReason = "connect";
    this.#everConnected = false;
    this.#installLifecycle();
    if (this.#opts.transport === "polling") {
      this.#setStatus(Status.CONNECTING, null);
      this.#startPolling();
      return;
    }
    this.#open();
  }

  /** Stop for good: close the socket, cancel every timer, keep the last snapshots. */
  disconnect() {
    this.#wanted = false;
    this.#parked = false;
    this.#removeLifecycle();
    this.#clearAllTimers();
    this.#polling = false;
    this.#dropSocket(1000, "client disconnect");
    this.#dropProbe();
    this.#restarting = false;
    this.#mode = this.#opts.transport === "sse" ? "sse" : "websocket";
    this.#attempt = 0;
    this.#setStatus(Status.DISCONNECTED, null);
  }

  /**
   * Start receiving a game. Reference-counted: each subscribe needs one unsubscribe, so two
   * components watching the same game do not cancel each other.
   */
  subscribe(gameId) {
    const id = normaliseGameId(gameId);
    const count = this.#subscriptions.get(id) || 0;
    this.#subscriptions.set(id, count + 1);
    if (count > 0) return;
    if (this.#parked) {
      this.connect();
      return;
    }
    if (this.#socket instanceof SseTransport) {
      this.#streamGamesChanged();
      return;
    }
    if (this.#status === Status.CONNECTED) {
      if (this.#opts.transport === "polling") this.#pollGame(id).catch(() => {});
      else this.#send({ type: "subscribe", gameId: id });
    }
  }

  unsubscribe(gameId) {
    const id = normaliseGameId(gameId);
    const count = this.#subscriptions.get(id) || 0;
    if (count === 0) return;
    if (count > 1) {
      this.#subscriptions.set(id, count - 1);
      return;
    }
    this.#subscriptions.delete(id);
    if (this.#socket instanceof SseTransport) this.#streamGamesChanged();
    else if (this.#isSocketConnected()) this.#send({ type: "unsubscribe", gameId: id });
  }

  /**
   * Seed a game with state the page already has (e.g. rendered on the server from the REST
   * endpoint). It goes through the version gate, so it never replaces anything newer.
   */
  prime(gameId, { version, snapshot, viewer }) {
    this.#applySnapshot(normaliseGameId(gameId), version, snapshot, { viewer }, "initial");
  }

  /**
   * Fetch the game(s) once through the polling transport (If-None-Match with the last ETag);
   * the result goes through the same version gate as pushed snapshots.
   */
  async refresh(gameId) {
    if (!this.#poller) {
      throw new GameSyncError("no_snapshot_url", "refresh() needs the `snapshotUrl` option");
    }
    const ids = gameId === undefined ? this.subscriptions : [normaliseGameId(gameId)];
    await Promise.all(ids.map((id) => this.#pollGame(id)));
  }

  // ---- events ---------------------------------------------------------------------------

  #emit(type, payload) {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (err) {
        // A broken listener must not break the connection state machine.
        if (typeof console !== "undefined") console.error("GameSyncClient listener failed", err);
      }
    }
  }

  #setStatus(status, error) {
    const previous = this.#status;
    const errorChanged = error !== this.#error;
    this.#error = error;
    if (previous === status && !errorChanged) return;
    this.#status = status;
    this.#emit("status", { status, previous, error });
  }

  #reportError(error) {
    this.#emit("error", error);
  }

  // ---- page lifecycle: resume at once, never burn attempts while hidden -------------------

  #isHidden() {
    const doc = this.#env.document;
    return Boolean(doc && doc.visibilityState === "hidden");
  }

  #installLifecycle() {
    if (this.#lifecycleInstalled) return;
    const { window: win, document: doc } = this.#env;
    if (doc && typeof doc.addEventListener === "function") {
      doc.addEventListener("visibilitychange", this.#onResume);
      doc.addEventListener("resume", this.#onResume); // Page Lifecycle: unfrozen
    }
    if (win) {
      win.addEventListener("pageshow", this.#onResume);
      win.addEventListener("online", this.#onResume);
    }
    this.#lifecycleInstalled = true;
  }

  #removeLifecycle() {
    if (!this.#lifecycleInstalled) return;
    const { window: win, document: doc } = this.#env;
    if (doc && typeof doc.removeEventListener === "function") {
      doc.removeEventListener("visibilitychange", this.#onResume);
      doc.removeEventListener("resume", this.#onResume);
    }
    if (win) {
      win.removeEventListener("pageshow", this.#onResume);
      win.removeEventListener("online", this.#onResume);
    }
    this.#lifecycleInstalled = false;
  }

  #resume() {
    if (!this.#wanted || this.#parked || this.#isHidden()) return;
    if (this.#opts.transport === "polling") {
      this.#clearTimer("poll");
      this.#pollRound();
      return;
    }
    if (this.#socket && this.#socket.isOpen) {
      // A socket that looks open after a background period may be dead (mobile browsers
      // kill them silently); an application ping proves it within pongTimeoutMs.
      if (this.#status === Status.CONNECTED) this.#sendPing();
      return;
    }
    if (this.#socket || this.#connectInFlight) return;
    this.#clearTimer("reconnect");
    this.#attempt = 0;
    this.#retryAfterMs = null;
    this.#open();
  }

  // ---- websocket: connect, handshake, frames, close (I/O in SocketTransport) ------------

  #isSocketConnected() {
    return this.#socket !== null && this.#socket.isOpen && this.#status === Status.CONNECTED;
  }

  async #open() {
    if (!this.#wanted || this.#socket || this.#connectInFlight) return;
    if (this.#isHidden()) {
      // Opening from a background tab waits for the page to become visible.
      this.#restarting = false;
      this.#setStatus(this.#everConnected ? Status.RECONNECTING : Status.CONNECTING, this.#error);
      return;
    }
    const generation = ++this.#generation;
    this.#connectInFlight = true;
    if (!this.#restarting) {
      this.#setStatus(this.#everConnected || this.#attempt > 0 ? Status.RECONNECTING : Status.CONNECTING, this.#error);
    }
    let token = this.#nextToken;
    this.#nextToken = null;
    try {
      if (token === null) token = await this.#getToken(this.#tokenReason);
      if (this.#opts.affinity && this.#subscriptions.size > 0) await this.#learnShards();
    } catch (err) {
      // A superseded attempt must not touch the flag: a newer one may be in flight.
      if (generation !== this.#generation) return;
      this.#connectInFlight = false;
      this.#restarting = false;
      const error = err instanceof GameSyncError ? err : new GameSyncError("token_unavailable", errorMessage(err));
      this.#reportError(error);
      this.#scheduleReconnect(error);
      return;
    }
    if (generation !== this.#generation || !this.#wanted) return;
    this.#connectInFlight = false;
    this.#token = token;
    this.#tokenReason = "connect";
    this.#lastServerError = null;

    if (this.#mode === "websocket" && typeof this.#env.WebSocket !== "function" && this.#canStream()) {
      this.#mode = "sse"; // no WebSocket here at all: the event stream is the push transport
    }
    if (this.#mode === "sse") {
      this.#openStream(token);
      return;
    }
    if (typeof this.#env.WebSocket !== "function") {
      this.#stop(new GameSyncError("no_websocket", "no WebSocket in this environment: pass environment.WebSocket or use transport \"polling\""));
      return;
    }
    const url = this.#affineUrl(this.#opts.url) || this.#opts.url;
    try {
      this.#socket = new SocketTransport(this.#env.WebSocket, url, token, this.#socketHandlers(url), this.#authFields());
    } catch (err) {
      const error = new GameSyncError("connect_failed", errorMessage(err));
      this.#reportError(error);
      this.#scheduleReconnect(error);
      return;
    }
    this.#armTimer("welcome", this.#opts.connectTimeoutMs, () =>
      this.#abandonSocket(CLOSE_CLIENT_TIMEOUT, "no welcome from the server in time"),
    );
  }

  /**
   * The fleet's shard count from `GET /v1/shards`, kept until a wrong-shard refusal; null when
   * the gateway does not say (an older one, a proxy that does not route it): then the client
   * connects spread, as without `affinity`. Never throws.
   */
  async #learnShards() {
    if (this.#shards !== null) return this.#shards;
    if (typeof this.#env.fetch !== "function" || !this.#opts.url) return null;
    try {
      const response = await this.#env.fetch(shardsUrlFor(this.#opts.url), { method: "GET", cache: "no-store" });
      if (!response.ok) return null;
      const body = await response.json();
      if (body && Number.isInteger(body.shards) && body.shards >= 1) this.#shards = body.shards;
    } catch {
      return null;
    }
    return this.#shards;
  }

  /** The game-affine URL for the first game watched, or null (no affinity, no game, K unknown). */
  #affineUrl(base) {
    if (!this.#opts.affinity || this.#shards === null || this.#subscriptions.size === 0) return null;
    const gameId = this.#subscriptions.keys().next().value;
    return affineUrlFor(base, shardOf(gameId, this.#shards), gameId);
  }

  /** What the first `auth` message asks for besides the token (protocol 2's deltas). */
  #authFields() {
    return this.#opts.delta ? { delta: true } : {};
  }

  #socketHandlers(url) {
    return {
      open: () => this.#emit("open", { url }),
      sent: (message) => this.#emit("frame", { direction: "out", frame: redactToken(message) }),
      frame: (frame) => this.#onFrame(frame),
      alive: () => this.#alive(),
      badFrame: () => this.#reportError(new GameSyncError("bad_frame", "the server sent a frame that is not JSON")),
      close: (code, reason, wasClean) => this.#onClose(code, reason, wasClean),
    };
  }

  // ---- SSE: the fallback push transport (I/O in SseTransport) ----------------------------

  #canStream() {
    return typeof this.#env.fetch === "function" && typeof TextDecoder === "function";
  }

  #streamUrl(games) {
    const base = this.#opts.sseUrl;
    if (typeof base === "function") return base(games);
    const sse = base || sseUrlFor(this.#opts.url);
    if (games.length === 1 && this.#affineUrl(sse)) {
      // One game: its game-affine stream (several games name themselves in a spread one).
      const url = new URL(this.#affineUrl(sse));
      if (this.#opts.delta) url.searchParams.set("delta", "1");
      return url.toString();
    }
    const url = new URL(sse);
    url.searchParams.set("games", games.join(","));
    if (this.#opts.delta) url.searchParams.set("delta", "1");
    return url.toString();
  }

  #openStream(token) {
    const games = this.subscriptions;
    if (games.length === 0) {
      // A stream names its games: with none there is nothing to open until a subscribe().
      this.#restarting = false;
      this.#parked = true;
      this.#attempt = 0;
      this.#setStatus(Status.DISCONNECTED, new GameSyncError("idle", "no game to stream"));
      return;
    }
    if (!this.#canStream()) {
      this.#stop(new GameSyncError("no_fetch", "no fetch() with streaming bodies in this environment for the SSE transport"));
      return;
    }
    const url = this.#streamUrl(games);
    this.#socket = new SseTransport(this.#env.fetch, url, token, this.#socketHandlers(url));
    this.#armTimer("welcome", this.#opts.connectTimeoutMs, () =>
      this.#abandonSocket(CLOSE_CLIENT_TIMEOUT, "no welcome from the server in time"),
    );
  }

  /** The games changed while a stream serves: one new stream for all changes of this turn. */
  #streamGamesChanged() {
    this.#armTimer("restart", 0, () => this.#restartStream(null));
  }

  /** Replace the stream (other games, or a renewed `token`) without a status change. */
  #restartStream(token) {
    if (!(this.#socket instanceof SseTransport) || !this.#wanted) return;
    this.#dropSocket(1000, "restart");
    this.#nextToken = token ?? this.#token;
    this.#restarting = this.#status === Status.CONNECTED;
    this.#open();
  }

  /** Any frame or heartbeat: the connection lives. A stream is watched for silence instead. */
  #alive() {
    if (this.#socket instanceof SseTransport && this.#streamQuietMs > 0) {
      this.#armTimer("pong", this.#streamQuietMs, () => this.#abandonSocket(CLOSE_CLIENT_TIMEOUT, "the event stream went silent"));
    } else {
      this.#clearTimer("pong");
    }
  }

  /** While the SSE fallback serves, try a websocket now and then; promote it once welcomed. */
  async #probeWebSocket() {
    if (!this.#wanted || this.#mode !== "sse" || this.#probe || this.#opts.transport !== "websocket") return;
    const retry = () => this.#armTimer("wsRetry", this.#opts.websocketRetryMs, () => this.#probeWebSocket());
    if (!(this.#socket instanceof SseTransport) || this.#status !== Status.CONNECTED || typeof this.#env.WebSocket !== "function") {
      retry();
      return;
    }
    let token;
    try {
      token = await this.#getToken("connect");
    } catch {
      retry();
      return;
    }
    if (!this.#wanted || this.#mode !== "sse" || this.#probe) return;
    let probe = null;
    const failed = () => {
      if (this.#probe !== probe) return;
      this.#dropProbe();
      retry();
    };
    try {
      probe = new SocketTransport(
        this.#env.WebSocket,
        this.#affineUrl(this.#opts.url) || this.#opts.url,
        token,
        {
          open: () => {},
          sent: () => {},
          alive: () => {},
          badFrame: () => {},
          frame: (frame) => {
            if (this.#probe === probe && frame.type === "welcome") this.#promote(probe, token, frame);
          },
          close: failed,
        },
        this.#authFields(),
      );
    } catch {
      retry();
      return;
    }
    this.#probe = probe;
    this.#armTimer("probe", this.#opts.connectTimeoutMs, failed);
  }

  #dropProbe() {
    const probe = this.#probe;
    this.#probe = null;
    this.#clearTimer("probe");
    if (probe) probe.close(1000, "probe over");
  }

  /** The probe websocket was welcomed: it replaces the stream, and takes every game over. */
  #promote(probe, token, welcome) {
    this.#probe = null;
    this.#clearTimer("probe");
    const stream = this.#socket;
    this.#socket = null;
    this.#generation += 1; // a renewal in flight for the stream is void
    this.#clearSocketTimers();
    this.#clearTimer("restart");
    if (stream) stream.close();
    this.#mode = "websocket";
    this.#token = token;
    this.#pushed.clear(); // a new connection: its subscriptions start from full snapshots
    this.#resyncing.clear();
    this.#socket = probe;
    probe.rewire(this.#socketHandlers(this.#opts.url));
    this.#emit("open", { url: this.#opts.url });
    this.#onFrame(welcome);
    // The gateway answers each subscribe with its latest snapshot; the version gate drops
    // whatever the stream had delivered already.
    for (const id of this.#subscriptions.keys()) this.#send({ type: "subscribe", gameId: id });
  }

  #send(message) {
    return this.#socket !== null && this.#socket.send(message);
  }

  #onFrame(frame) {
    this.#emit("frame", { direction: "in", frame });
    // Any frame is a sign of life.
    this.#alive();
    switch (frame.type) {
      case "welcome":
        this.#onWelcome(frame);
        break;
      case "snapshot":
        if (Number.isInteger(frame.gameId)) {
          this.#resyncing.delete(frame.gameId);
          this.#pushed.set(frame.gameId, frame.gameVersion);
        }
        this.#applySnapshot(frame.gameId, frame.gameVersion, frame.data, frame, this.#mode);
        break;
      case "delta":
        this.#applyDelta(frame);
        break;
      case "error":
        this.#onServerError(frame);
        break;
      case "reconnect":
        if (Number.isFinite(frame.retryAfterMs) && frame.retryAfterMs >= 0) {
          this.#retryAfterMs = frame.retryAfterMs;
        }
        break;
      default:
        // subscribed / unsubscribed / pong and later additions need no action.
        break;
    }
  }

  #onWelcome(frame) {
    this.#clearTimer("welcome");
    const first = this.#status !== Status.CONNECTED;
    // The backoff resets only once the connection has held for a while: a server that
    // accepts and then drops every socket must not get a tight reconnect loop.
    if (first && this.#attempt > 0) {
      this.#armTimer("stable", this.#opts.stableAfterMs, () => {
        this.#attempt = 0;
        this.#reshardRetried = false;
      });
    }
    this.#authRetried = false;
    this.#retryAfterMs = null;
    this.#everConnected = true;
    this.#restarting = false;
    this.#stopFallbackPolling();
    this.#scheduleRenewal(frame.expiresAt);
    const heartbeatMs = Number.isFinite(frame.heartbeatMs) && frame.heartbeatMs > 0 ? frame.heartbeatMs : this.#opts.heartbeatMs;
    const streaming = this.#socket instanceof SseTransport;
    if (streaming) {
      // The client cannot ping a stream; the server writes a comment every heartbeatMs.
      this.#clearTimer("heartbeat");
      this.#streamQuietMs = heartbeatMs + this.#opts.pongTimeoutMs;
      this.#alive();
    } else {
      this.#streamQuietMs = 0;
      this.#armHeartbeat(heartbeatMs);
    }
    if (first) {
      this.#setStatus(Status.CONNECTED, null);
      // The server sends the latest snapshot after each subscribe, so resubscribing is all the
      // recovery a reconnect needs (a stream subscribes with its URL).
      if (!streaming) for (const id of this.#subscriptions.keys()) this.#send({ type: "subscribe", gameId: id });
    }
  }

  #onServerError(frame) {
    const error = new GameSyncError(frame.code || "error", frame.message || frame.code, { gameId: frame.gameId });
    this.#lastServerError = error;
    if (Number.isInteger(frame.gameId)) {
      this.#setGame(frame.gameId, { ...this.getGame(frame.gameId), error });
    }
    this.#reportError(error);
  }

  #onClose(code, reason, wasClean) {
    this.#socket = null;
    this.#restarting = false;
    this.#pushed.clear();
    this.#resyncing.clear();
    this.#clearSocketTimers();
    this.#emit("close", { code, reason, wasClean });
    if (!this.#wanted) return;
    const lastError = this.#lastServerError;
    this.#lastServerError = null;
    // The error frame that explains this close, if the last one does (not an older, unrelated one).
    const explains = { [CLOSE_UNAUTHORIZED]: ["unauthorized", "token_expired"], 4403: ["forbidden"] }[code] || [];
    const serverError = lastError && explains.includes(lastError.code) ? lastError : null;

    if (code === CLOSE_UNAUTHORIZED) {
      const error = new GameSyncError(serverError ? serverError.code : "unauthorized", serverError ? serverError.message : reason || "unauthorized", { closeCode: code });
      // A token provider may have a fresher token: ask it once, then report.
      if (typeof this.#opts.token === "function" && !this.#authRetried) {
        this.#authRetried = true;
        this.#tokenReason = "unauthorized";
        this.#retryAfterMs = 0;
        this.#scheduleReconnect(error);
        return;
      }
      this.#stop(error);
      return;
    }
    if (FINAL_CLOSE_CODES.has(code)) {
      this.#stop(new GameSyncError(serverError ? serverError.code : "closed", serverError ? serverError.message : reason || `closed with ${code}`, { closeCode: code }));
      return;
    }
    if (code === CLOSE_WRONG_SHARD) {
      // The fleet changed its shard count: learn it again, and reconnect at once, once. That
      // retry is not a failed attempt (it must not count toward the SSE fallback); a second
      // refusal backs off like any reconnect.
      this.#shards = null;
      const error = new GameSyncError("wrong_shard", reason || "wrong shard", { closeCode: code });
      if (!this.#reshardRetried) {
        this.#reshardRetried = true;
        this.#setStatus(Status.RECONNECTING, error);
        this.#armTimer("reconnect", 0, () => this.#open());
        return;
      }
      this.#scheduleReconnect(error);
      return;
    }
    if (code === CLOSE_IDLE && this.#subscriptions.size === 0) {
      // Closed for having no subscriptions: reconnecting would only idle again. The next
      // subscribe() reconnects.
      this.#parked = true;
      this.#attempt = 0;
      this.#setStatus(Status.DISCONNECTED, new GameSyncError("idle", reason || "closed while idle", { closeCode: code }));
      return;
    }
    this.#scheduleReconnect(new GameSyncError("connection_lost", reason || "connection closed", { closeCode: code }));
  }

  /** Give up on the current socket without waiting for the close handshake of a dead peer. */
  #abandonSocket(code, reason) {
    if (!this.#socket) return;
    this.#dropSocket(code, reason);
    this.#onClose(code, reason, false);
  }

  #dropSocket(code, reason) {
    const socket = this.#socket;
    this.#socket = null;
    this.#pushed.clear();
    this.#resyncing.clear();
    this.#generation += 1; // a token fetch or renewal in flight for the old socket is void
    this.#connectInFlight = false;
    this.#clearSocketTimers();
    if (socket) socket.close(code, reason);
  }

  #stop(error) {
    this.#clearTimer("reconnect");
    this.#stopFallbackPolling();
    this.#attempt = 0;
    this.#parked = true;
    this.#reportError(error);
    this.#setStatus(Status.DISCONNECTED, error);
  }

  #scheduleReconnect(error) {
    if (!this.#wanted) return;
    if (this.#isHidden()) {
      // Mobile browsers kill background sockets; showing `reconnecting` (not `connected`)
      // makes the resume pass through `connected` again. No attempt is spent while hidden.
      this.#setStatus(Status.RECONNECTING, error);
      return;
    }
    this.#attempt += 1;
    if (this.#attempt > this.#opts.maxAttempts) {
      this.#stop(new GameSyncError("gave_up", `failed to reconnect after ${this.#opts.maxAttempts} attempts`));
      return;
    }
    if (
      this.#mode === "websocket" &&
      this.#opts.transport === "websocket" &&
      this.#attempt >= this.#opts.sseAfterAttempts &&
      this.#canStream()
    ) {
      // Websockets keep failing (a proxy that breaks them, say): the event stream takes over,
      // and a websocket is tried again now and then.
      this.#mode = "sse";
      this.#armTimer("wsRetry", this.#opts.websocketRetryMs, () => this.#probeWebSocket());
    }
    let delay;
    if (this.#retryAfterMs !== null) {
      delay = this.#retryAfterMs; // the server already jittered it
      this.#retryAfterMs = null;
    } else {
      delay = backoffDelay(this.#attempt - 1, { baseMs: this.#opts.backoffBaseMs, maxMs: this.#opts.backoffMaxMs }, this.#env.random);
    }
    this.#setStatus(Status.RECONNECTING, error);
    this.#armTimer("reconnect", delay, () => this.#open());
    if (this.#attempt >= this.#opts.fallbackAfterAttempts && this.#poller) this.#startFallbackPolling();
  }

  // ---- token lifecycle ------------------------------------------------------------------

  async #getToken(reason) {
    const source = this.#opts.token;
    if (typeof source === "function") {
      const token = await source({ reason });
      if (typeof token !== "string" || token === "") {
        throw new GameSyncError("token_unavailable", "the token provider returned no token");
      }
      return token;
    }
    if (typeof source === "string" && source !== "") return source;
    throw new GameSyncError("token_unavailable", "no token configured");
  }

  #scheduleRenewal(expiresAt) {
    this.#clearTimer("renew");
    if (typeof this.#opts.token !== "function" || !Number.isFinite(expiresAt)) return;
    const remaining = expiresAt * 1000 - this.#env.now();
    // Renew renewMarginMs before expiry, or half-way for tokens shorter than twice the margin.
    const delay = Math.max(0, remaining - Math.min(this.#opts.renewMarginMs, remaining / 2));
    this.#armTimer("renew", delay, () => this.#renew(expiresAt));
  }

  async #renew(expiresAt) {
    const generation = this.#generation;
    let token;
    try {
      token = await this.#getToken("renew");
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#reportError(err instanceof GameSyncError ? err : new GameSyncError("token_unavailable", errorMessage(err)));
      const remaining = expiresAt * 1000 - this.#env.now();
      if (remaining > 0) this.#armTimer("renew", Math.min(this.#opts.renewRetryMs, remaining / 2), () => this.#renew(expiresAt));
      return;
    }
    if (generation !== this.#generation) return;
    this.#token = token;
    if (this.#socket instanceof SseTransport) {
      this.#restartStream(token); // a stream cannot be told: a new one carries the new token
      return;
    }
    this.#send({ type: "auth", token }); // the server answers with a new welcome
  }

  // ---- heartbeat ------------------------------------------------------------------------

  #armHeartbeat(intervalMs) {
    this.#armTimer("heartbeat", intervalMs, () => {
      this.#sendPing();
      this.#armHeartbeat(intervalMs);
    });
  }

  #sendPing() {
    if (!this.#send({ type: "ping" })) return;
    if (this.#timers.pong === null) {
      this.#armTimer("pong", this.#opts.pongTimeoutMs, () => this.#abandonSocket(CLOSE_CLIENT_TIMEOUT, "no pong from the server in time"));
    }
  }

  // ---- polling (forced transport, websocket fallback, refresh) ---------------------------

  #startPolling() {
    this.#polling = true;
    this.#pollRound();
  }

  #startFallbackPolling() {
    if (this.#polling) return;
    this.#polling = true;
    this.#armTimer("poll", 0, () => this.#pollRound());
  }

  #stopFallbackPolling() {
    if (this.#opts.transport === "polling") return;
    this.#polling = false;
    this.#clearTimer("poll");
  }

  async #pollRound() {
    if (!this.#polling || !this.#wanted) return;
    const forced = this.#opts.transport === "polling";
    let failure = null;
    await Promise.all(
      this.subscriptions.map((id) =>
        this.#pollGame(id).catch((err) => {
          failure = err;
        }),
      ),
    );
    if (!this.#polling || !this.#wanted) return;
    let delay = this.#opts.pollIntervalMs;
    if (forced) {
      if (failure) {
        this.#attempt += 1;
        delay = Math.max(delay, backoffDelay(this.#attempt - 1, { baseMs: this.#opts.backoffBaseMs, maxMs: this.#opts.backoffMaxMs }, this.#env.random));
        this.#setStatus(Status.RECONNECTING, failure);
      } else {
        this.#attempt = 0;
        this.#everConnected = true;
        this.#setStatus(Status.CONNECTED, null);
      }
    }
    if (this.#isHidden()) {
      // Hidden pages wait for the resume event instead of polling in the background.
      if (forced) this.#setStatus(Status.RECONNECTING, this.#error);
      return;
    }
    this.#armTimer("poll", delay, () => this.#pollRound());
  }

  async #pollGame(id) {
    if (!this.#poller) throw new GameSyncError("no_snapshot_url", "polling needs the `snapshotUrl` option");
    let token = this.#token;
    if (!token && this.#opts.token) {
      token = await this.#getToken("poll");
      this.#token = token;
    }
    const parsed = await this.#poller.fetchSnapshot(id, token);
    if (parsed) this.#applySnapshot(id, parsed.version, parsed.data, parsed, "polling");
  }


  // ---- per-game state -------------------------------------------------------------------

  #applySnapshot(gameId, version, data, carrier, source) {
    // Frames that do not carry integer ids and versions cannot be ordered: ignore them.
    if (!Number.isInteger(gameId) || !Number.isInteger(version)) return;
    const id = gameId;
    const current = this.#games.get(id);
    // Monotonic gate across transports and reconnects: equal or older versions are dropped.
    if (current && current.version !== undefined && version <= current.version) return;
    const viewer = Object.prototype.hasOwnProperty.call(carrier, "viewer") ? carrier.viewer : undefined;
    this.#setGame(id, { snapshot: data, viewer, version, error: null });
    this.#emit("snapshot", { gameId: id, version, snapshot: data, viewer, source });
  }

  /** A delta applies to the snapshot this connection delivered last, or the game resyncs. */
  #applyDelta(frame) {
    const { gameId: id, gameVersion: version, baseVersion: base } = frame;
    if (!Number.isInteger(id) || !Number.isInteger(version) || !Number.isInteger(base)) return;
    if (!this.#subscriptions.has(id) || this.#resyncing.has(id)) return;
    const current = this.#games.get(id);
    if (current && current.version !== undefined && version <= current.version) return;
    let snapshot;
    let viewer;
    try {
      if (!current || current.version !== base || this.#pushed.get(id) !== base) {
        throw new PatchError(`holding version ${current ? current.version : "none"}, not the delta's base ${base}`);
      }
      snapshot = applyPatch(current.snapshot, frame.patch);
      if ("viewer" in frame) viewer = frame.viewer;
      else if ("viewerPatch" in frame) viewer = applyPatch(current.viewer, frame.viewerPatch);
      else viewer = current.viewer;
    } catch {
      this.#resync(id);
      return;
    }
    this.#pushed.set(id, version);
    this.#setGame(id, { snapshot, viewer, version, error: null });
    this.#emit("snapshot", { gameId: id, version, snapshot, viewer, source: this.#mode });
  }

  /** Subscribe to the game again: a new subscription starts with the full snapshot. */
  #resync(id) {
    this.#resyncing.add(id);
    if (this.#socket instanceof SseTransport) {
      this.#streamGamesChanged();
    } else if (this.#isSocketConnected()) {
      this.#send({ type: "unsubscribe", gameId: id });
      this.#send({ type: "subscribe", gameId: id });
    }
  }

  #setGame(id, state) {
    const frozen = Object.freeze(state);
    this.#games.set(id, frozen);
    this.#emit("game", { gameId: id, state: frozen });
  }

  // ---- timers ---------------------------------------------------------------------------

  #armTimer(name, delay, fn) {
    this.#clearTimer(name);
    this.#timers[name] = this.#env.setTimeout(() => {
      this.#timers[name] = null;
      fn();
    }, delay);
  }

  #clearTimer(name) {
    if (this.#timers[name] !== null) {
      this.#env.clearTimeout(this.#timers[name]);
      this.#timers[name] = null;
    }
  }

  #clearSocketTimers() {
    for (const name of ["welcome", "stable", "heartbeat", "pong", "renew", "restart"]) this.#clearTimer(name);
  }

  #clearAllTimers() {
    for (const name of Object.keys(this.#timers)) this.#clearTimer(name);
  }
}

function definedOnly(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}

function normaliseGameId(gameId) {
  if (typeof gameId === "number" && Number.isInteger(gameId)) return gameId;
  if (typeof gameId === "string" && /^\d+$/.test(gameId)) return Number(gameId);
  throw new TypeError(`GameSyncClient: game id must be an integer, got ${JSON.stringify(gameId)}`);
}

function redactToken(message) {
  return message.type === "auth" ? { ...message, token: "…" } : message;
}

function errorMessage(err) {
  return err && err.message ? err.message : String(err);
}
