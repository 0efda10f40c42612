import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { GameSyncClient, Status, backoffDelay, parseSnapshotBody } from "../src/index.js";
import { fakeFetch, fakeWorld, randomSequence, settle } from "./fakes.js";

// These tests are about the websocket and polling; the SSE fallback (test/sse.test.js) stays
// out of their way unless a test asks for it.
function setup(options = {}, envOverrides = {}) {
  const { clock, page, sockets, http, environment } = fakeWorld(fakeFetch());
  const client = new GameSyncClient({
    url: "ws://127.0.0.1:8000/ws",
    token: "tok-1",
    sseAfterAttempts: Infinity,
    ...options,
    environment: { ...environment, ...envOverrides },
  });
  const statuses = [];
  client.on("status", (e) => statuses.push(e.status));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  return { client, clock, page, sockets, http, statuses, errors, last: () => sockets[sockets.length - 1] };
}

function liveSockets(sockets) {
  return sockets.filter((s) => s.readyState <= 1 && s.closedWith === null);
}

describe("connection lifecycle", () => {
  test("authenticates with the first message and is connected only after welcome", async () => {
    const { client, sockets, statuses } = setup();
    client.connect();
    await settle();
    assert.equal(sockets.length, 1);
    assert.equal(sockets[0].url, "ws://127.0.0.1:8000/ws");
    assert.equal(client.status, Status.CONNECTING);
    sockets[0].serverOpen();
    assert.deepEqual(sockets[0].sent, [{ type: "auth", token: "tok-1" }]);
    assert.equal(client.status, Status.CONNECTING, "open is not enough: the server has not accepted the token");
    sockets[0].serverSend({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt: 0 });
    assert.equal(client.status, Status.CONNECTED);
    assert.deepEqual(statuses, [Status.CONNECTING, Status.CONNECTED]);
  });

  test("subscribes every game on one socket after welcome, and again after a reconnect", async () => {
    const { client, sockets, clock } = setup();
    client.subscribe(1);
    client.subscribe(2);
    client.connect();
    await settle();
    sockets[0].accept();
    assert.deepEqual(sockets[0].sentOfType("subscribe").map((m) => m.gameId), [1, 2]);
    client.subscribe(3);
    assert.deepEqual(sockets[0].sentOfType("subscribe").map((m) => m.gameId), [1, 2, 3]);
    sockets[0].serverClose(1011, "internal error");
    assert.equal(client.status, Status.RECONNECTING);
    await clock.runNext();
    assert.equal(sockets.length, 2);
    sockets[1].accept();
    assert.deepEqual(sockets[1].sentOfType("subscribe").map((m) => m.gameId), [1, 2, 3]);
  });

  test("subscriptions are reference counted so one watcher leaving does not cut off another", async () => {
    const { client, sockets } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    client.subscribe(5);
    client.subscribe(5);
    assert.equal(sockets[0].sentOfType("subscribe").length, 1);
    client.unsubscribe(5);
    assert.equal(sockets[0].sentOfType("unsubscribe").length, 0);
    client.unsubscribe(5);
    assert.deepEqual(sockets[0].sentOfType("unsubscribe"), [{ type: "unsubscribe", gameId: 5 }]);
    assert.deepEqual(client.subscriptions, []);
  });

  test("disconnect closes the socket, cancels reconnects and ignores the old socket's events", async () => {
    const { client, sockets, clock } = setup();
    client.subscribe(1);
    client.connect();
    await settle();
    sockets[0].accept();
    client.disconnect();
    assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: "client disconnect" });
    assert.equal(client.status, Status.DISCONNECTED);
    sockets[0].serverSend({ type: "snapshot", gameId: 1, gameVersion: 9, data: { late: true } });
    sockets[0].serverClose(1006);
    await clock.advance(120_000);
    assert.equal(sockets.length, 1, "no reconnect after disconnect()");
    assert.equal(client.getGame(1).version, undefined);
    assert.equal(client.status, Status.DISCONNECTED);
  });

  test("without a WebSocket implementation the client stops and says so instead of retrying", async () => {
    const { client, clock } = setup({}, { WebSocket: undefined, fetch: null });
    client.connect();
    await settle();
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "no_websocket");
    assert.deepEqual(clock.pendingDelays(), []);
  });

  test("connect is idempotent and never opens a second socket", async () => {
    const { client, sockets } = setup();
    client.connect();
    client.connect();
    await settle();
    client.connect();
    assert.equal(sockets.length, 1);
  });

  test("gives up after maxAttempts and reports why", async () => {
    const { client, sockets, clock } = setup({ maxAttempts: 2 });
    client.connect();
    await settle();
    sockets[0].serverClose(1006);
    await clock.advance(60_000);
    sockets[1].serverClose(1006);
    await clock.advance(60_000);
    sockets[2].serverClose(1006);
    await clock.advance(60_000);
    assert.equal(sockets.length, 3);
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "gave_up");
  });

  test("a close for idleness without subscriptions parks the client until the next subscribe", async () => {
    const { client, sockets, clock } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverClose(4408, "idle");
    await clock.advance(120_000);
    assert.equal(sockets.length, 1);
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "idle");
    client.subscribe(4);
    await settle();
    assert.equal(sockets.length, 2);
    sockets[1].accept();
    assert.deepEqual(sockets[1].sentOfType("subscribe"), [{ type: "subscribe", gameId: 4 }]);
  });
});

describe("snapshots", () => {
  test("are applied in version order per game, dropping stale and duplicate versions", async () => {
    const { client, sockets } = setup();
    const seen = [];
    client.on("snapshot", (e) => seen.push([e.gameId, e.version]));
    client.subscribe(1);
    client.subscribe(2);
    client.connect();
    await settle();
    const ws = sockets[0];
    ws.accept();
    ws.serverSend({ type: "snapshot", gameId: 1, gameVersion: 5, data: { n: 5 } });
    ws.serverSend({ type: "snapshot", gameId: 1, gameVersion: 4, data: { n: 4 } });
    ws.serverSend({ type: "snapshot", gameId: 1, gameVersion: 5, data: { n: 55 } });
    ws.serverSend({ type: "snapshot", gameId: 2, gameVersion: 1, data: { m: 1 } });
    ws.serverSend({ type: "snapshot", gameId: 1, gameVersion: 7, data: { n: 7 }, viewer: { hand: ["AS"] } });
    assert.deepEqual(seen, [[1, 5], [2, 1], [1, 7]]);
    assert.deepEqual(client.getGame(1), { snapshot: { n: 7 }, viewer: { hand: ["AS"] }, version: 7, error: null });
    assert.deepEqual(client.getGame(2).snapshot, { m: 1 });
    assert.equal(client.getGame(2).viewer, undefined, "no viewer key means no private state");
  });

  test("the version gate holds across reconnects", async () => {
    const { client, sockets, clock } = setup();
    client.subscribe(1);
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "snapshot", gameId: 1, gameVersion: 10, data: {} });
    sockets[0].serverClose(1012);
    await clock.runNext();
    sockets[1].accept();
    sockets[1].serverSend({ type: "snapshot", gameId: 1, gameVersion: 9, data: { stale: true } });
    assert.equal(client.getGame(1).version, 10);
    sockets[1].serverSend({ type: "snapshot", gameId: 1, gameVersion: 11, data: { fresh: true } });
    assert.deepEqual(client.getGame(1).snapshot, { fresh: true });
  });

  test("an error frame for a game is kept on that game and the socket stays open", async () => {
    const { client, sockets, errors } = setup();
    client.subscribe(9);
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "error", code: "forbidden", message: "not a member", gameId: 9 });
    assert.equal(client.getGame(9).error.code, "forbidden");
    assert.equal(errors.at(-1).gameId, 9);
    assert.equal(client.status, Status.CONNECTED);
    assert.equal(sockets[0].closedWith, null);
  });

  test("frames with ids or versions that are not integers are ignored", async () => {
    const { client, sockets } = setup();
    client.subscribe(1);
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "snapshot", gameId: "one", gameVersion: 1, data: {} });
    sockets[0].serverSend({ type: "snapshot", gameId: 1, gameVersion: "2", data: {} });
    sockets[0].serverSend({ type: "error", code: "bad_request", message: "?", gameId: "x" });
    assert.equal(client.getGame(1).version, undefined);
    assert.equal(client.status, Status.CONNECTED);
  });

  test("a frame that is not JSON is reported and ignored", async () => {
    const { client, sockets, errors } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].onmessage({ data: "{nope" });
    assert.equal(errors.at(-1).code, "bad_frame");
    assert.equal(client.status, Status.CONNECTED);
  });
});

describe("reconnect backoff", () => {
  test("full jitter draws uniformly below an exponential, capped ceiling", () => {
    const opts = { baseMs: 500, maxMs: 30_000 };
    assert.equal(backoffDelay(0, opts, () => 0), 0);
    assert.equal(backoffDelay(0, opts, () => 0.999), 499);
    assert.equal(backoffDelay(3, opts, () => 0.5), 2000);
    assert.equal(backoffDelay(10, opts, () => 0.5), 15_000, "capped at maxMs");
    assert.equal(backoffDelay(60, opts, () => 0.999), 29_970);
  });

  test("reconnect delays follow the jittered schedule with the injected random source", async () => {
    const { client, sockets, clock } = setup({ backoffBaseMs: 1000, backoffMaxMs: 8000 }, { random: randomSequence(0.5, 0.25, 0.9, 0.1, 1 - 1e-9) });
    client.connect();
    await settle();
    const delays = [];
    for (let i = 0; i < 5; i += 1) {
      sockets.at(-1).serverClose(1006);
      delays.push(...clock.pendingDelays());
      await clock.advance(10_000);
    }
    // ceilings 1000, 2000, 4000, 8000, 8000 times 0.5, 0.25, 0.9, 0.1, ~1
    assert.deepEqual(delays, [500, 500, 3600, 800, 7999]);
    assert.equal(client.status, Status.RECONNECTING);
  });

  test("options given as undefined keep their defaults instead of breaking the schedule", async () => {
    const { client, sockets, clock } = setup({ backoffBaseMs: undefined, backoffMaxMs: undefined, heartbeatMs: undefined });
    client.connect();
    await settle();
    sockets.at(-1).serverClose(1006);
    // the default base 500 ms times random() 0.5
    assert.deepEqual(clock.pendingDelays(), [250]);
  });

  test("a connection that holds for stableAfterMs resets the backoff", async () => {
    const { client, sockets, clock } = setup({ backoffBaseMs: 1000, stableAfterMs: 5000 }, { random: () => 0.5 });
    client.connect();
    await settle();
    for (let i = 0; i < 3; i += 1) {
      sockets.at(-1).serverClose(1006);
      await clock.runNext();
    }
    sockets.at(-1).accept();
    await clock.advance(5000);
    sockets.at(-1).serverClose(1011);
    assert.deepEqual(clock.pendingDelays(), [500]);
  });

  test("a server that drops every socket right after welcome gets growing delays, not a loop", async () => {
    const { client, sockets, clock } = setup({ backoffBaseMs: 1000, backoffMaxMs: 60_000, stableAfterMs: 5000 }, { random: () => 0.5 });
    client.connect();
    await settle();
    const delays = [];
    for (let i = 0; i < 5; i += 1) {
      sockets.at(-1).accept();
      sockets.at(-1).serverClose(1006);
      delays.push(await clock.runNext());
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000]);
  });

  test("honours the server's retryAfterMs from a reconnect hint", async () => {
    const { client, sockets, clock } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "reconnect", reason: "draining", retryAfterMs: 1800 });
    sockets[0].serverClose(1012, "draining");
    assert.deepEqual(clock.pendingDelays(), [1800]);
    await clock.advance(1799);
    assert.equal(sockets.length, 1);
    await clock.advance(1);
    assert.equal(sockets.length, 2);
  });

  test("a welcome that never comes abandons the socket and retries", async () => {
    const { client, sockets, clock } = setup({ connectTimeoutMs: 5000 });
    client.connect();
    await settle();
    sockets[0].serverOpen();
    await clock.advance(5000);
    assert.equal(sockets[0].closedWith.code, 4000);
    assert.equal(client.status, Status.RECONNECTING);
    await clock.runNext();
    assert.equal(sockets.length, 2);
  });
});

describe("authentication", () => {
  test("4401 asks the token provider for a new token once, then reports without retrying", async () => {
    const reasons = [];
    const { client, sockets, clock } = setup({
      token: async ({ reason }) => {
        reasons.push(reason);
        return `tok-${reasons.length}`;
      },
    });
    client.connect();
    await settle();
    sockets[0].serverOpen();
    assert.deepEqual(sockets[0].sent, [{ type: "auth", token: "tok-1" }]);
    sockets[0].serverSend({ type: "error", code: "unauthorized", message: "bad signature" });
    sockets[0].serverClose(4401, "unauthorized");
    await clock.advance(0);
    assert.equal(sockets.length, 2, "retried at once with a fresh token");
    sockets[1].serverOpen();
    assert.deepEqual(sockets[1].sent, [{ type: "auth", token: "tok-2" }]);
    sockets[1].serverSend({ type: "error", code: "unauthorized", message: "bad signature" });
    sockets[1].serverClose(4401, "unauthorized");
    await clock.advance(600_000);
    assert.equal(sockets.length, 2, "no retry loop on 4401");
    assert.deepEqual(reasons, ["connect", "unauthorized"]);
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "unauthorized");
    assert.equal(client.error.message, "bad signature");
    assert.equal(client.error.closeCode, 4401);
  });

  test("connect() after a final 4401 starts afresh, with one more token retry of its own", async () => {
    const reasons = [];
    const { client, sockets, clock } = setup({
      token: async ({ reason }) => {
        reasons.push(reason);
        return "tok";
      },
    });
    const reject = (socket) => {
      socket.serverOpen();
      socket.serverSend({ type: "error", code: "unauthorized", message: "no" });
      socket.serverClose(4401);
    };
    client.connect();
    await settle();
    reject(sockets[0]);
    await clock.advance(0);
    reject(sockets[1]);
    assert.equal(client.status, Status.DISCONNECTED);
    client.connect();
    await settle();
    reject(sockets[2]);
    await clock.advance(0);
    assert.equal(sockets.length, 4);
    assert.deepEqual(reasons, ["connect", "unauthorized", "connect", "unauthorized"]);
  });

  test("4401 with a fixed token goes straight to disconnected with the server's reason", async () => {
    const { client, sockets, clock } = setup({ token: "expired" });
    client.connect();
    await settle();
    sockets[0].serverOpen();
    sockets[0].serverSend({ type: "error", code: "token_expired", message: "token expired" });
    sockets[0].serverClose(4401);
    await clock.advance(600_000);
    assert.equal(sockets.length, 1);
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "token_expired");
  });

  test("a 4401 is explained only by an auth error frame, not an older unrelated one", async () => {
    const { client, sockets } = setup({ token: "t" });
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "error", code: "bad_request", message: "unknown type" });
    sockets[0].serverClose(4401, "token expired");
    assert.equal(client.error.code, "unauthorized");
    assert.equal(client.error.message, "token expired");
  });

  test("4403 for the implied game is final", async () => {
    const { client, sockets, clock } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "error", code: "forbidden", message: "no", gameId: 3 });
    sockets[0].serverClose(4403);
    await clock.advance(600_000);
    assert.equal(sockets.length, 1);
    assert.equal(client.status, Status.DISCONNECTED);
    assert.equal(client.error.code, "forbidden");
  });

  test("renews the token in-band before expiresAt, on the same socket", async () => {
    const reasons = [];
    const { client, sockets, clock } = setup({
      renewMarginMs: 30_000,
      token: async ({ reason }) => {
        reasons.push(reason);
        return `tok-${reasons.length}`;
      },
    });
    client.connect();
    await settle();
    const expiresAt = Math.floor(clock.now / 1000) + 300;
    sockets[0].accept({ expiresAt, heartbeatMs: 3_600_000 });
    await clock.advance(300_000 - 30_000 - 1);
    assert.equal(sockets[0].sentOfType("auth").length, 1);
    await clock.advance(1);
    assert.deepEqual(sockets[0].sentOfType("auth").map((m) => m.token), ["tok-1", "tok-2"]);
    assert.deepEqual(reasons, ["connect", "renew"]);
    // The server's new welcome schedules the next renewal; nothing reconnects.
    sockets[0].serverSend({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt: expiresAt + 300 });
    assert.equal(sockets.length, 1);
    assert.equal(client.status, Status.CONNECTED);
  });

  test("a token provider failure is reported and retried with backoff", async () => {
    let calls = 0;
    const { client, sockets, clock, errors } = setup({
      token: async () => {
        calls += 1;
        if (calls === 1) throw new Error("503 from /api/ws-token");
        return "tok";
      },
    });
    client.connect();
    await settle();
    assert.equal(sockets.length, 0);
    assert.equal(errors[0].code, "token_unavailable");
    assert.equal(client.status, Status.RECONNECTING);
    await clock.runNext();
    assert.equal(sockets.length, 1);
  });
});

describe("page lifecycle", () => {
  test("while hidden a lost socket shows reconnecting and spends no attempts", async () => {
    const { client, sockets, clock, page } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    page.hide();
    sockets[0].serverClose(1006);
    assert.equal(client.status, Status.RECONNECTING);
    await clock.advance(3_600_000);
    assert.equal(sockets.length, 1, "no background reconnects");
    page.show();
    await settle();
    assert.equal(sockets.length, 2, "resumes at once on visible");
    sockets[1].accept();
    assert.equal(client.status, Status.CONNECTED);
  });

  for (const event of ["pageshow", "online", "resume"]) {
    test(`${event} skips the pending backoff and connects at once`, async () => {
      const { client, sockets, clock, page } = setup({ backoffBaseMs: 30_000, backoffMaxMs: 30_000 });
      client.connect();
      await settle();
      sockets[0].accept();
      sockets[0].serverClose(1006);
      assert.deepEqual(clock.pendingDelays(), [15_000]);
      page.dispatch(event);
      await settle();
      assert.equal(sockets.length, 2);
      assert.deepEqual(clock.pendingDelays().filter((d) => d === 15_000), [], "the backoff timer was cancelled");
    });
  }

  test("resume events never open a second live socket", async () => {
    const { client, sockets, page } = setup();
    client.connect();
    await settle();
    page.dispatch("pageshow");
    page.dispatch("online");
    page.show();
    await settle();
    assert.equal(sockets.length, 1, "still connecting: no second socket");
    sockets[0].accept();
    page.dispatch("pageshow");
    page.show();
    page.dispatch("online");
    await settle();
    assert.equal(sockets.length, 1);
    assert.equal(liveSockets(sockets).length, 1);
  });

  test("a superseded connect attempt does not hide the one in flight from resume events", async () => {
    const pending = [];
    const { client, sockets, page } = setup({
      token: () => new Promise((resolve) => pending.push(resolve)),
    });
    client.connect();
    client.disconnect();
    client.connect(); // StrictMode-style remount while the first token fetch is in flight
    pending[0]("stale");
    await settle();
    page.dispatch("pageshow");
    page.dispatch("online");
    await settle();
    assert.equal(pending.length, 2, "the resume did not start a third attempt beside the live one");
    pending[1]("fresh");
    await settle();
    assert.equal(sockets.length, 1);
    sockets[0].serverOpen();
    assert.deepEqual(sockets[0].sent, [{ type: "auth", token: "fresh" }]);
  });

  test("resume on an open socket checks it with a ping and replaces it if no pong comes", async () => {
    const { client, sockets, clock, page } = setup({ pongTimeoutMs: 4000 });
    client.connect();
    await settle();
    sockets[0].accept();
    page.dispatch("pageshow");
    assert.equal(sockets[0].sentOfType("ping").length, 1);
    await clock.advance(4000);
    assert.equal(sockets[0].closedWith.code, 4000);
    await clock.runNext();
    assert.equal(sockets.length, 2);
    assert.equal(liveSockets(sockets).length, 1);
  });

  test("a client started in a background tab connects when the tab becomes visible", async () => {
    const { client, sockets, page, statuses } = setup();
    page.visibilityState = "hidden";
    client.connect();
    await settle();
    assert.equal(sockets.length, 0);
    assert.equal(client.status, Status.CONNECTING);
    page.show();
    await settle();
    assert.equal(sockets.length, 1);
    sockets[0].accept();
    assert.deepEqual(statuses, [Status.CONNECTING, Status.CONNECTED]);
  });

  test("connect() after disconnect() reports connecting, not reconnecting", async () => {
    const { client, sockets, statuses } = setup();
    client.connect();
    await settle();
    sockets[0].accept();
    client.disconnect();
    client.connect();
    await settle();
    assert.deepEqual(statuses, [Status.CONNECTING, Status.CONNECTED, Status.DISCONNECTED, Status.CONNECTING]);
  });

  test("disconnect removes the page listeners", async () => {
    const { client, page } = setup();
    client.connect();
    assert.equal(page.listenerCount("visibilitychange"), 1);
    client.disconnect();
    assert.equal(page.listenerCount("visibilitychange"), 0);
    assert.equal(page.listenerCount("pageshow"), 0);
    assert.equal(page.listenerCount("online"), 0);
    assert.equal(page.listenerCount("resume"), 0);
  });
});

describe("heartbeat", () => {
  test("sends an application ping every heartbeatMs and reconnects when no pong answers", async () => {
    const { client, sockets, clock } = setup({ pongTimeoutMs: 10_000 });
    client.connect();
    await settle();
    sockets[0].accept({ heartbeatMs: 20_000 });
    await clock.advance(20_000);
    assert.equal(sockets[0].sentOfType("ping").length, 1);
    sockets[0].serverSend({ type: "pong" });
    await clock.advance(20_000);
    assert.equal(sockets[0].sentOfType("ping").length, 2);
    assert.equal(client.status, Status.CONNECTED);
    await clock.advance(10_000);
    assert.equal(sockets[0].closedWith.code, 4000);
    assert.equal(client.status, Status.RECONNECTING);
  });
});

describe("polling", () => {
  test("refresh() fetches through the polling transport with the ETag and the version gate", async () => {
    const { client, sockets, http } = setup({ snapshotUrl: "http://127.0.0.1:3000/api/games/{gameId}/state" });
    client.subscribe(42);
    client.connect();
    await settle();
    sockets[0].accept();
    sockets[0].serverSend({ type: "snapshot", gameId: 42, gameVersion: 17, data: { v: 17 } });

    http.answers.push({ status: 200, body: { version: 16, game: { v: 16 }, viewer: {} }, etag: '"game-42-v16"' });
    await client.refresh(42);
    assert.equal(http.requests[0].url, "http://127.0.0.1:3000/api/games/42/state");
    assert.equal(http.requests[0].init.headers.Authorization, "Bearer tok-1");
    assert.equal(http.requests[0].init.headers["If-None-Match"], undefined);
    assert.equal(client.getGame(42).version, 17, "an older polled version is dropped");

    http.answers.push({ status: 304 });
    await client.refresh(42);
    assert.equal(http.requests[1].init.headers["If-None-Match"], '"game-42-v16"');

    http.answers.push({ status: 200, body: { version: 18, game: { v: 18 }, viewer: { hand: ["2C"] } }, etag: '"game-42-v18"' });
    await client.refresh();
    assert.deepEqual(client.getGame(42), { snapshot: { v: 18 }, viewer: { hand: ["2C"] }, version: 18, error: null });
  });

  test("refresh() without a snapshot URL rejects", async () => {
    const { client } = setup();
    await assert.rejects(client.refresh(1), { code: "no_snapshot_url" });
  });

  test("the polling transport reports connected after a good round and reconnecting after a failed one", async () => {
    const { client, clock, http, sockets } = setup({ transport: "polling", snapshotUrl: (id) => `http://127.0.0.1:3000/g/${id}`, pollIntervalMs: 3000 });
    client.subscribe(1);
    http.answers.push({ status: 200, body: { version: 1, game: {} } });
    client.connect();
    await settle();
    assert.equal(client.status, Status.CONNECTED);
    assert.equal(sockets.length, 0, "no websocket in polling mode");
    http.answers.push(new Error("network down"));
    await clock.advance(3000);
    assert.equal(client.status, Status.RECONNECTING);
    assert.equal(client.error.code, "poll_failed");
    http.answers.push({ status: 200, body: { version: 2, game: { two: true } } });
    await clock.advance(3000);
    assert.equal(client.status, Status.CONNECTED);
    assert.deepEqual(client.getGame(1).snapshot, { two: true });
  });

  test("falls back to polling while the websocket keeps failing, and stops once it connects", async () => {
    const { client, sockets, clock, http } = setup({ snapshotUrl: "http://127.0.0.1:3000/g/{gameId}", fallbackAfterAttempts: 2, pollIntervalMs: 1000, backoffBaseMs: 100_000, backoffMaxMs: 100_000 });
    client.subscribe(1);
    client.connect();
    await settle();
    sockets[0].serverClose(1006);
    await clock.advance(0);
    assert.equal(http.requests.length, 0, "one failure is not enough to poll");
    await clock.advance(50_000);
    sockets[1].serverClose(1006);
    http.answers.push({ status: 200, body: { version: 3, game: { polled: true } } });
    await clock.advance(0);
    assert.equal(http.requests.length, 1);
    assert.equal(client.getGame(1).version, 3);
    http.answers.push({ status: 304 });
    await clock.advance(1000);
    assert.equal(http.requests.length, 2);
    await clock.advance(50_000 - 1000);
    sockets[2].accept();
    const before = http.requests.length;
    await clock.advance(10_000);
    assert.equal(http.requests.length, before, "polling stopped once the socket is back");
  });
});

test("parseSnapshotBody reads frames, envelopes and REST bodies and refuses versionless ones", () => {
  assert.deepEqual(parseSnapshotBody({ gameVersion: 3, data: { a: 1 }, viewer: { b: 2 } }), { version: 3, data: { a: 1 }, viewer: { b: 2 } });
  assert.deepEqual(parseSnapshotBody({ version: 4, snapshot: { a: 1 } }), { version: 4, data: { a: 1 }, viewer: undefined });
  assert.deepEqual(parseSnapshotBody({ version: 5, game: { a: 1 }, viewer: {} }), { version: 5, data: { a: 1 }, viewer: {} });
  assert.equal(parseSnapshotBody({ game: {} }), null);
  assert.equal(parseSnapshotBody("nope"), null);
});
