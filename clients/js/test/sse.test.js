// The SSE transport and the websocket → SSE → polling order, with fake timers, a scripted
// WebSocket and event streams the test writes (fakes.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { GameSyncClient, Status, sseUrlFor } from "../src/index.js";
import { FAR_FUTURE, fakeStreamFetch, fakeWorld, settle } from "./fakes.js";

/** Let stream reads (several promise turns each) and their handlers run. */
async function flush() {
  for (let i = 0; i < 5; i += 1) {
    await settle();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function setup(options = {}) {
  const { clock, page, sockets, http, environment } = fakeWorld(fakeStreamFetch());
  const tokens = [];
  const client = new GameSyncClient({
    url: "ws://127.0.0.1:8000/ws",
    token: async ({ reason }) => {
      tokens.push(reason);
      return `tok-${tokens.length}`;
    },
    ...options,
    environment,
  });
  const statuses = [];
  client.on("status", (e) => statuses.push(e.status));
  const snapshots = [];
  client.on("snapshot", (e) => snapshots.push(e));
  return { client, clock, sockets, streams: http.streams, http, statuses, snapshots, tokens };
}

/** Let `ms` pass on a live stream, with the gateway's heartbeat comment every 10 s. */
async function passWithHeartbeats(clock, stream, ms) {
  for (let passed = 0; passed < ms; passed += 10000) {
    await clock.advance(Math.min(10000, ms - passed));
    stream.comment();
    await flush();
  }
}

/** Fail `count` websocket attempts (closed before any welcome), running the backoff timers. */
async function failWebsockets(ctx, count) {
  for (let i = 0; i < count; i += 1) {
    await flush();
    ctx.sockets[ctx.sockets.length - 1].serverClose(1006);
    await ctx.clock.runNext();
  }
  await flush();
}

describe("SSE transport", () => {
  test("the stream URL comes from the websocket URL", () => {
    assert.equal(sseUrlFor("wss://play.example.com/ws"), "https://play.example.com/sse");
    assert.equal(sseUrlFor("ws://127.0.0.1:8000/ws?x=1"), "http://127.0.0.1:8000/sse");
    assert.equal(sseUrlFor("ws://h/prefix/ws/games/4"), "http://h/prefix/sse");
  });

  test("after repeated websocket failures the client streams over SSE, token in the header", async () => {
    const ctx = setup();
    const { client, streams, statuses, snapshots } = ctx;
    client.subscribe(1);
    client.subscribe(2);
    client.connect();
    await failWebsockets(ctx, 2);
    assert.equal(ctx.sockets.length, 2);
    assert.equal(streams.length, 1);
    assert.equal(client.transport, "sse");
    const [stream] = streams;
    assert.equal(stream.url, "http://127.0.0.1:8000/sse?games=1%2C2");
    assert.equal(stream.init.headers.Authorization, "Bearer tok-3");
    assert.ok(!stream.url.includes("tok-"), "never a token in the URL");
    stream.accept({ heartbeatMs: 1000 });
    stream.event({ type: "snapshot", gameId: 1, gameVersion: 4, data: { v: 4 }, viewer: { hand: ["AS"] } });
    await flush();
    assert.equal(client.status, Status.CONNECTED);
    assert.deepEqual(statuses.slice(-1), [Status.CONNECTED]);
    assert.deepEqual(client.getGame(1), { snapshot: { v: 4 }, viewer: { hand: ["AS"] }, version: 4, error: null });
    assert.equal(snapshots[0].source, "sse");
    stream.event({ type: "snapshot", gameId: 1, gameVersion: 3, data: { v: 3 } });
    stream.push('data: {"type":"snapshot","version":1,"gameId":1,\ndata: "gameVersion":5,"data":{"v":5}}\n\n');
    await flush();
    assert.equal(client.getGame(1).version, 5, "older versions dropped; several data lines make one event");
  });

  test("heartbeat comments keep a stream; silence abandons it for a new one", async () => {
    const ctx = setup({ transport: "sse", pongTimeoutMs: 500 });
    const { client, clock, streams } = ctx;
    client.subscribe(7);
    client.connect();
    await flush();
    streams[0].accept({ heartbeatMs: 1000 });
    await flush();
    for (let i = 0; i < 3; i += 1) {
      await clock.advance(1000);
      streams[0].comment();
      await flush();
    }
    assert.equal(streams.length, 1);
    assert.equal(client.status, Status.CONNECTED);
    await clock.advance(1600);
    assert.equal(streams[0].aborted, true);
    assert.equal(client.status, Status.RECONNECTING);
    await clock.runNext();
    await flush();
    assert.equal(streams.length, 2);
  });

  test("a change of games replaces the stream once, and the status stays connected", async () => {
    const ctx = setup({ transport: "sse" });
    const { client, clock, streams, statuses } = ctx;
    client.subscribe(1);
    client.connect();
    await flush();
    streams[0].accept();
    await flush();
    const before = statuses.length;
    client.subscribe(2);
    client.subscribe(3);
    client.unsubscribe(1);
    await clock.advance(0);
    await flush();
    assert.equal(streams.length, 2);
    assert.equal(streams[0].aborted, true);
    assert.deepEqual(streams[1].games(), [2, 3]);
    streams[1].accept();
    await flush();
    assert.equal(client.status, Status.CONNECTED);
    assert.equal(statuses.length, before, "no reconnecting/connected flicker for a planned restart");
    client.unsubscribe(2);
    client.unsubscribe(3);
    await clock.advance(0);
    await flush();
    assert.equal(streams[1].aborted, true);
    assert.equal(client.status, Status.DISCONNECTED, "nothing to stream");
    client.subscribe(9);
    await flush();
    assert.deepEqual(streams[2].games(), [9]);
  });

  test("the stream's close event is a close code: 4401 renews the token, 1012 waits the hint", async () => {
    const ctx = setup({ transport: "sse" });
    const { client, clock, streams, tokens } = ctx;
    client.subscribe(1);
    client.connect();
    await flush();
    streams[0].accept();
    streams[0].event({ type: "error", code: "token_expired", message: "token expired" });
    streams[0].close(4401, "token expired");
    await flush();
    assert.equal(client.status, Status.RECONNECTING);
    await clock.runNext();
    await flush();
    assert.deepEqual(tokens, ["connect", "unauthorized"]);
    assert.equal(streams[1].init.headers.Authorization, "Bearer tok-2");
    streams[1].accept();
    streams[1].event({ type: "reconnect", reason: "draining", retryAfterMs: 1234 });
    streams[1].close(1012, "draining");
    await flush();
    assert.deepEqual(clock.pendingDelays(), [1234]);
    streams[0].event({ type: "snapshot", gameId: 1, gameVersion: 99, data: {} });
    await flush();
    assert.equal(client.getGame(1).version, undefined, "a superseded stream is silent");
  });

  test("a renewal before expiry starts a stream with the new token, without a status change", async () => {
    const ctx = setup({ transport: "sse", renewMarginMs: 1000 });
    const { client, clock, streams, statuses, tokens } = ctx;
    client.subscribe(1);
    client.connect();
    await flush();
    streams[0].accept({ expiresAt: (clock.now + 5000) / 1000 });
    await flush();
    const before = statuses.length;
    await clock.advance(4000);
    await flush();
    assert.deepEqual(tokens, ["connect", "renew"]);
    assert.equal(streams[0].aborted, true);
    assert.equal(streams[1].init.headers.Authorization, "Bearer tok-2");
    streams[1].accept();
    await flush();
    assert.equal(statuses.length, before);
  });

  test("the websocket is tried again later and takes over from the stream once welcomed", async () => {
    const ctx = setup({ websocketRetryMs: 60000 });
    const { client, clock, sockets, streams } = ctx;
    client.subscribe(1);
    client.connect();
    await failWebsockets(ctx, 2);
    streams[0].accept();
    streams[0].event({ type: "snapshot", gameId: 1, gameVersion: 4, data: { v: 4 } });
    await flush();
    assert.equal(client.transport, "sse");
    // A probe that fails leaves the stream alone and is tried again later.
    await passWithHeartbeats(clock, streams[0], 60000);
    assert.equal(sockets.length, 3);
    sockets[2].serverClose(1006);
    await flush();
    assert.equal(streams[0].aborted, false);
    assert.equal(client.status, Status.CONNECTED);
    await passWithHeartbeats(clock, streams[0], 60000);
    assert.equal(sockets.length, 4);
    sockets[3].accept({ expiresAt: FAR_FUTURE });
    await flush();
    assert.equal(client.transport, "websocket");
    assert.equal(streams[0].aborted, true);
    assert.deepEqual(sockets[3].sentOfType("subscribe").map((m) => m.gameId), [1]);
    sockets[3].serverSend({ type: "snapshot", gameId: 1, gameVersion: 5, data: { v: 5 } });
    assert.equal(client.getGame(1).version, 5);
    assert.equal(client.status, Status.CONNECTED);
  });

  test("the order is websocket, then SSE, then polling", async () => {
    const ctx = setup({ snapshotUrl: "http://127.0.0.1:8000/api/games/{gameId}/state" });
    const { client, clock, streams, http } = ctx;
    http.answers.push({ status: 200, body: { version: 2, data: { v: 2 } } });
    client.subscribe(1);
    client.connect();
    await failWebsockets(ctx, 2);
    assert.equal(streams.length, 1);
    assert.equal(http.requests.length, 0, "no polling while the stream is being tried");
    streams[0].end(); // the stream fails too (1006)
    await flush();
    await clock.runNext();
    await flush();
    assert.equal(http.requests.length, 1);
    assert.equal(client.getGame(1).version, 2);
  });

  test("a refused stream (HTTP 400) is final; a 503 is retried", async () => {
    const ctx = setup({ transport: "sse", sseUrl: "http://127.0.0.1:8000/sse" });
    const { client, clock, http } = ctx;
    const plain = (status) => ({ status, ok: false, headers: { get: () => null }, body: null });
    const original = http.fetch;
    let next = plain(503);
    const fetch = async (url, init) => (next ? [next, (next = null)][0] : original(url, init));
    const again = new GameSyncClient({
      url: "ws://127.0.0.1:8000/ws",
      token: "t",
      transport: "sse",
      environment: { fetch, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: () => clock.now, random: () => 0.5 },
    });
    again.subscribe(1);
    again.connect();
    await flush();
    assert.equal(again.status, Status.RECONNECTING);
    next = plain(400);
    await clock.runNext();
    await flush();
    assert.equal(again.status, Status.DISCONNECTED);
    assert.equal(again.error.closeCode, 4400);
    again.disconnect();
    client.disconnect();
  });
});
