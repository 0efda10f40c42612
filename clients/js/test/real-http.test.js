// The polling transport and refresh() with Node's real fetch against a real HTTP server that
// answers with ETags and 304s like a REST snapshot endpoint; and the SSE transport reading a
// real chunked event stream.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { GameSyncClient, Status } from "../src/index.js";

let server;
let base;
const requests = [];
const games = new Map([[42, { version: 7, game: { round_no: 3 }, viewer: { seat: 0, hand: ["AS"] } }]]);

before(async () => {
  server = createServer((req, res) => {
    if (req.url.startsWith("/sse")) {
      serveStream(req, res);
      return;
    }
    requests.push({ url: req.url, auth: req.headers.authorization, ifNoneMatch: req.headers["if-none-match"] });
    const match = /^\/api\/games\/(\d+)\/state$/.exec(req.url);
    const body = match && games.get(Number(match[1]));
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const etag = `"game-${match[1]}-v${body.version}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { ETag: etag }).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json", ETag: etag }).end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

const streamRequests = [];

/** A gateway-like stream: events split across writes at awkward places, a heartbeat, a close. */
function serveStream(req, res) {
  streamRequests.push({ url: req.url, auth: req.headers.authorization });
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
  const event = (message) => `data: ${JSON.stringify({ version: 1, ...message })}\n\n`;
  const expiresAt = Math.floor(Date.now() / 1000) + 3600;
  const text =
    event({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt }) +
    event({ type: "subscribed", gameId: 42 }) +
    ":\n\n" +
    event({ type: "snapshot", gameId: 42, gameVersion: 10 + streamRequests.length, data: { n: "ü" } });
  // Byte-wise splits: a line, and a multi-byte character, cut across chunks.
  const bytes = Buffer.from(text);
  const cut = bytes.indexOf(Buffer.from("ü")) + 1;
  res.write(bytes.subarray(0, 7));
  res.write(bytes.subarray(7, cut));
  res.write(bytes.subarray(cut));
  if (streamRequests.length === 1) {
    res.end(`${event({ type: "reconnect", reason: "draining", retryAfterMs: 10 })}data: {"type":"close","version":2,"code":1012,"reason":"draining"}\n\n`);
  }
  req.on("close", () => res.end());
}

test("the SSE transport reads a real chunked event stream, and follows its close code", async () => {
  const client = new GameSyncClient({ url: `${base.replace("http", "ws")}/ws`, token: "jwt-9", transport: "sse" });
  const versions = [];
  client.on("snapshot", (e) => versions.push([e.version, e.snapshot.n, e.source]));
  client.subscribe(42);
  client.connect();
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`versions ${JSON.stringify(versions)}`)), 5000);
      const off = client.on("snapshot", () => {
        if (versions.length === 2) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
    assert.deepEqual(versions, [
      [11, "ü", "sse"],
      [12, "ü", "sse"],
    ]);
    assert.deepEqual(streamRequests, [
      { url: "/sse?games=42", auth: "Bearer jwt-9" },
      { url: "/sse?games=42", auth: "Bearer jwt-9" },
    ]);
    assert.equal(client.status, Status.CONNECTED);
  } finally {
    client.disconnect();
  }
});

test("refresh() sends the bearer token, keeps the ETag and treats 304 as no change", async () => {
  requests.length = 0;
  const client = new GameSyncClient({ url: "ws://127.0.0.1:9/ws", token: "jwt-1", snapshotUrl: `${base}/api/games/{gameId}/state` });
  await client.refresh(42);
  assert.deepEqual(client.getGame(42), { snapshot: { round_no: 3 }, viewer: { seat: 0, hand: ["AS"] }, version: 7, error: null });
  await client.refresh(42);
  assert.deepEqual(requests, [
    { url: "/api/games/42/state", auth: "Bearer jwt-1", ifNoneMatch: undefined },
    { url: "/api/games/42/state", auth: "Bearer jwt-1", ifNoneMatch: '"game-42-v7"' },
  ]);
  await assert.rejects(client.refresh(404), { code: "poll_failed", status: 404 });
});

test("the polling transport converges on a new version without a websocket", async () => {
  const client = new GameSyncClient({ transport: "polling", token: "jwt-1", snapshotUrl: `${base}/api/games/{gameId}/state`, pollIntervalMs: 20 });
  const versions = [];
  client.on("snapshot", (e) => versions.push(e.version));
  client.subscribe(42);
  const reached = (predicate) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not reached; versions ${versions}`)), 5000);
      const check = () => {
        if (predicate()) {
          clearTimeout(timer);
          off1();
          off2();
          resolve();
        }
      };
      const off1 = client.on("snapshot", check);
      const off2 = client.on("status", check);
      check();
    });
  client.connect();
  try {
    await reached(() => client.status === Status.CONNECTED && client.getGame(42).version === 7);
    games.set(42, { version: 8, game: { round_no: 4 }, viewer: { seat: 0, hand: [] } });
    await reached(() => client.getGame(42).version === 8);
    assert.deepEqual(versions, [7, 8]);
  } finally {
    client.disconnect();
  }
});
