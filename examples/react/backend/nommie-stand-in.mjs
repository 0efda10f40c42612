// A stand-in for the three routes of Nommie's backend that the page uses, served by Vite's dev
// and preview servers (vite.config.js) next to the app, on the same origin:
//
//   GET  /api/config                  {wsUrl, gameId}: where the gateway is, which game to show
//   GET  /api/ws-token?user=N         the short-lived JWT for the gateway (text/plain)
//   GET  /api/games/{id}/state?user=N {version, data, viewer} with an ETag: the REST snapshot
//                                     that `initial` and `refresh()` read
//   POST /api/games/{id}/moves?user=N always 409 {error, currentVersion}: the demo game plays
//                                     itself, so a move from the page always loses the race
//
// It runs against a dev-mode `gamesync gateway --demo`: tokens are the gateway's dev seat
// tokens from /console-config.json (asked again on every call, so a restarted gateway's new
// keys come through), and the REST snapshot is what a GameSyncClient subscribed with that
// user's token last received. `?user=N` stands for Nommie's session cookie: the stand-in
// trusts it, which is fine for a local demo and nothing else.
import { GameSyncClient } from "@gamesync/client";
import WebSocket from "ws";

const STATE_PATH = /^\/api\/games\/(\d{1,18})\/(state|moves)$/;
const FIRST_SNAPSHOT_TIMEOUT_MS = 5000;

/** Connect-style middleware for the routes above; `log(line)` gets one line per request. */
export function nommieStandIn({ gatewayUrl, log = () => {} }) {
  const gateway = gatewayUrl.replace(/\/+$/, "");
  const mirrors = new Map(); // user -> GameSyncClient holding that user's view of the game

  async function gatewayConfig() {
    const response = await fetch(`${gateway}/console-config.json`, { cache: "no-store" });
    if (!response.ok) throw new Error(`${gateway}/console-config.json answered ${response.status}`);
    return response.json();
  }

  async function tokenFor(user) {
    const { seatTokens } = await gatewayConfig();
    const token = seatTokens && seatTokens[user];
    if (!token) throw new HttpError(404, `no demo seat for user ${JSON.stringify(user)}`);
    return token;
  }

  function mirrorFor(user, gameId, wsUrl) {
    let mirror = mirrors.get(user);
    if (!mirror) {
      mirror = new GameSyncClient({ url: wsUrl, token: () => tokenFor(user), environment: { WebSocket } });
      mirror.subscribe(gameId);
      mirror.connect();
      mirrors.set(user, mirror);
    }
    return mirror;
  }

  /** The user's latest state of the game, waiting (bounded) for the mirror's first snapshot. */
  async function stateFor(user, gameId) {
    const { wsUrl } = await gatewayConfig();
    const mirror = mirrorFor(user, gameId, wsUrl);
    const held = mirror.getGame(gameId);
    if (held.version !== undefined) return held;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new HttpError(503, `no snapshot of game ${gameId} from the gateway yet`));
      }, FIRST_SNAPSHOT_TIMEOUT_MS);
      const off = mirror.on("game", ({ gameId: id, state }) => {
        if (id !== gameId || state.version === undefined) return;
        clearTimeout(timer);
        off();
        resolve(state);
      });
    });
  }

  async function handle(req, res, url) {
    const user = url.searchParams.get("user") || "1";
    if (url.pathname === "/api/config" && req.method === "GET") {
      const { wsUrl, demoGameId } = await gatewayConfig();
      sendJson(res, 200, { wsUrl, gameId: demoGameId ?? 1 });
      return "200";
    }
    if (url.pathname === "/api/ws-token" && req.method === "GET") {
      const token = await tokenFor(user);
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" });
      res.end(token);
      return `user=${user} 200`;
    }
    const match = STATE_PATH.exec(url.pathname);
    if (match && match[2] === "state" && req.method === "GET") {
      const gameId = Number(match[1]);
      const state = await stateFor(user, gameId);
      const etag = `"${gameId}-${state.version}-${user}"`;
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { etag, "cache-control": "no-cache" });
        res.end();
        return `user=${user} 304 v${state.version}`;
      }
      const body = { version: state.version, data: state.snapshot, viewer: state.viewer };
      sendJson(res, 200, body, { etag, "cache-control": "no-cache" });
      return `user=${user} 200 v${state.version}`;
    }
    if (match && match[2] === "moves" && req.method === "POST") {
      const gameId = Number(match[1]);
      const state = await stateFor(user, gameId);
      const body = {
        error: "version_conflict",
        message: "the demo game plays itself: this move lost the race",
        currentVersion: state.version,
      };
      sendJson(res, 409, body);
      return `user=${user} 409 v${state.version}`;
    }
    throw new HttpError(404, "no such route");
  }

  return function middleware(req, res, next) {
    const url = new URL(req.url, "http://stand-in");
    if (!url.pathname.startsWith("/api/")) return next();
    handle(req, res, url).then(
      (outcome) => log(`stand-in: ${req.method} ${url.pathname} ${outcome}`),
      (err) => {
        const status = err instanceof HttpError ? err.status : 502;
        log(`stand-in: ${req.method} ${url.pathname} ${status} ${err.message}`);
        if (!res.headersSent) sendJson(res, status, { error: err.message });
        else res.end();
      },
    );
  };
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}
