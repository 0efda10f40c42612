// The client against a real websocket server (the `ws` package) speaking protocol v1, with
// real timers: the wire format, first-message auth, resubscribe after a drain, and 4401.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import WebSocket, { WebSocketServer } from "ws";

import { GameSyncClient, Status } from "../src/index.js";

const GOOD_TOKEN = "good-token";
let server;
let url;
const latest = new Map(); // gameId -> snapshot frame
const connections = new Set();

function frame(message) {
  return JSON.stringify({ version: 1, ...message });
}

before(async () => {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/ws" });
  server.on("connection", (socket) => {
    let authed = false;
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("message", (raw) => {
      const msg = JSON.parse(String(raw));
      if (!authed) {
        if (msg.type === "auth" && msg.token === GOOD_TOKEN) {
          authed = true;
          socket.send(frame({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt: Math.floor(Date.now() / 1000) + 3600 }));
        } else {
          socket.send(frame({ type: "error", code: "unauthorized", message: "invalid token" }));
          socket.close(4401, "unauthorized");
        }
        return;
      }
      if (msg.type === "subscribe") {
        socket.send(frame({ type: "subscribed", gameId: msg.gameId }));
        const snap = latest.get(msg.gameId);
        if (snap) socket.send(frame(snap));
      }
    });
  });
  await new Promise((resolve) => server.once("listening", resolve));
  url = `ws://127.0.0.1:${server.address().port}/ws`;
});

after(async () => {
  for (const socket of connections) socket.terminate();
  await new Promise((resolve) => server.close(resolve));
});

/** Resolve when `predicate()` holds after some client event; reject at the deadline. */
function until(client, predicate, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const done = (fn, value) => {
      clearTimeout(timer);
      for (const off of offs) off();
      fn(value);
    };
    const check = () => {
      if (predicate()) done(resolve);
    };
    const timer = setTimeout(() => done(reject, new Error(`condition not met in ${timeoutMs} ms (status ${client.status})`)), timeoutMs);
    for (const type of ["status", "snapshot", "close", "frame"]) offs.push(client.on(type, check));
    check();
  });
}

function publish(gameId, gameVersion, data) {
  const snap = { type: "snapshot", gameId, gameVersion, data };
  latest.set(gameId, snap);
  for (const socket of connections) socket.send(frame(snap));
}

test("receives the latest snapshot, resubscribes after a drain and converges", async () => {
  latest.clear();
  publish(1, 1, { round: 1 });
  const client = new GameSyncClient({ url, token: GOOD_TOKEN, environment: { WebSocket } });
  const closes = [];
  client.on("close", (e) => closes.push(e.code));
  client.subscribe(1);
  client.connect();
  try {
    await until(client, () => client.getGame(1).version === 1);
    assert.equal(client.status, Status.CONNECTED);

    for (const socket of connections) {
      socket.send(frame({ type: "reconnect", reason: "draining", retryAfterMs: 20 }));
      socket.close(1012, "draining");
    }
    await until(client, () => closes.includes(1012));
    publish(1, 2, { round: 2 }); // published while the client is away
    await until(client, () => client.status === Status.CONNECTED && client.getGame(1).version === 2);
    assert.deepEqual(client.getGame(1).snapshot, { round: 2 });
    assert.equal(connections.size, 1, "exactly one live socket on the server");
  } finally {
    client.disconnect();
  }
});

test("a bad token ends in disconnected with the server's reason, without a retry loop", async () => {
  let asked = 0;
  const client = new GameSyncClient({
    url,
    token: async () => {
      asked += 1;
      return "bad-token";
    },
    environment: { WebSocket },
  });
  client.connect();
  try {
    await until(client, () => client.status === Status.DISCONNECTED && client.error !== null);
    assert.equal(client.error.code, "unauthorized");
    assert.equal(client.error.message, "invalid token");
    assert.equal(asked, 2, "the provider was asked once more after the first 4401, then no more");
  } finally {
    client.disconnect();
  }
});
