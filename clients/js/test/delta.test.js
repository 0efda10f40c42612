// Protocol 2's deltas in the client: applied to the snapshot this connection delivered last,
// the game subscribed again when a delta does not fit, and a generated sequence (seeded PRNG)
// with conflation, gaps and reconnects after which the state held is always the full snapshot
// of the version reported.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { GameSyncClient, applyPatch } from "../src/index.js";
import { FAR_FUTURE, fakeStreamFetch, fakeWorld, settle } from "./fakes.js";

function setup(options = {}) {
  const { clock, page, sockets, http, environment } = fakeWorld(fakeStreamFetch());
  const client = new GameSyncClient({
    url: "ws://127.0.0.1:8000/ws",
    token: "tok",
    delta: true,
    sseAfterAttempts: Infinity,
    ...options,
    environment,
  });
  return { client, clock, sockets, streams: http.streams };
}

async function connected(ctx, ...games) {
  for (const id of games) ctx.client.subscribe(id);
  ctx.client.connect();
  await settle();
  const socket = ctx.sockets[ctx.sockets.length - 1];
  socket.accept({ expiresAt: FAR_FUTURE, delta: true });
  return socket;
}

describe("deltas", () => {
  test("the client asks for deltas in its first message and applies them, viewer included", async () => {
    const ctx = setup();
    const socket = await connected(ctx, 1);
    assert.deepEqual(socket.sent[0], { type: "auth", token: "tok", delta: true });
    socket.serverSend({ type: "snapshot", gameId: 1, gameVersion: 4, data: { a: 1, b: { c: [1, 2] } }, viewer: { hand: ["AS", "KD"] } });
    const before = ctx.client.getGame(1);
    socket.serverSend({
      type: "delta",
      version: 2,
      gameId: 1,
      gameVersion: 5,
      baseVersion: 4,
      patch: [{ op: "replace", path: "/a", value: 2 }],
      viewerPatch: [{ op: "remove", path: "/hand/0" }],
    });
    const after = ctx.client.getGame(1);
    assert.deepEqual(after, { snapshot: { a: 2, b: { c: [1, 2] } }, viewer: { hand: ["KD"] }, version: 5, error: null });
    assert.equal(after.snapshot.b, before.snapshot.b, "untouched parts keep their identity");
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 6, baseVersion: 5, patch: [], viewer: { hand: [] } });
    assert.deepEqual(ctx.client.getGame(1).viewer, { hand: [] });
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 6, baseVersion: 5, patch: [{ op: "replace", path: "/a", value: 9 }] });
    assert.equal(ctx.client.getGame(1).snapshot.a, 2, "a duplicate version is dropped");
  });

  test("a delta whose base is not the version held makes the client subscribe again", async () => {
    const ctx = setup();
    const socket = await connected(ctx, 1);
    socket.serverSend({ type: "snapshot", gameId: 1, gameVersion: 4, data: { a: 1 } });
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 7, baseVersion: 6, patch: [] });
    assert.equal(ctx.client.getGame(1).version, 4);
    assert.deepEqual(socket.sent.slice(-2), [
      { type: "unsubscribe", gameId: 1 },
      { type: "subscribe", gameId: 1 },
    ]);
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 8, baseVersion: 7, patch: [] });
    assert.equal(socket.sentOfType("subscribe").length, 2, "once, until the full snapshot comes");
    socket.serverSend({ type: "snapshot", gameId: 1, gameVersion: 8, data: { a: 8 } });
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 9, baseVersion: 8, patch: [{ op: "add", path: "/b", value: 1 }] });
    assert.deepEqual(ctx.client.getGame(1).snapshot, { a: 8, b: 1 });
  });

  test("a patch that does not fit the snapshot held also resubscribes", async () => {
    const ctx = setup();
    const socket = await connected(ctx, 1);
    socket.serverSend({ type: "snapshot", gameId: 1, gameVersion: 4, data: { a: 1 } });
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 5, baseVersion: 4, patch: [{ op: "remove", path: "/zzz" }] });
    assert.equal(ctx.client.getGame(1).version, 4);
    assert.deepEqual(socket.sent.slice(-2).map((m) => m.type), ["unsubscribe", "subscribe"]);
  });

  test("state primed from elsewhere is never a delta's base", async () => {
    const ctx = setup();
    const socket = await connected(ctx, 1);
    ctx.client.prime(1, { version: 4, snapshot: { from: "rest" } });
    socket.serverSend({ type: "delta", gameId: 1, gameVersion: 5, baseVersion: 4, patch: [] });
    assert.deepEqual(ctx.client.getGame(1).snapshot, { from: "rest" });
    assert.deepEqual(socket.sent.slice(-1), [{ type: "subscribe", gameId: 1 }]);
  });

  test("over SSE the stream asks for deltas and a delta that does not fit restarts it", async () => {
    const ctx = setup({ transport: "sse" });
    ctx.client.subscribe(3);
    ctx.client.connect();
    for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setImmediate(resolve));
    await settle();
    const [stream] = ctx.streams;
    assert.equal(stream.params.get("delta"), "1");
    stream.accept();
    stream.event({ type: "snapshot", gameId: 3, gameVersion: 1, data: { n: 1 } });
    stream.push(`data: ${JSON.stringify({ type: "delta", version: 2, gameId: 3, gameVersion: 3, baseVersion: 2, patch: [] })}\n\n`);
    for (let i = 0; i < 5; i += 1) {
      await settle();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await ctx.clock.advance(0);
    assert.equal(ctx.streams.length, 2);
    assert.equal(stream.aborted, true);
  });
});

test("applyPatch follows RFC 6902 for add, remove and replace, and refuses what does not fit", () => {
  const doc = { a: [1, 2, 3], "b/c": { "d~e": 1 } };
  assert.deepEqual(applyPatch(doc, [{ op: "add", path: "/a/-", value: 4 }]).a, [1, 2, 3, 4]);
  assert.deepEqual(applyPatch(doc, [{ op: "add", path: "/a/0", value: 0 }]).a, [0, 1, 2, 3]);
  assert.deepEqual(applyPatch(doc, [{ op: "remove", path: "/a/1" }]).a, [1, 3]);
  assert.deepEqual(applyPatch(doc, [{ op: "replace", path: "/b~1c/d~0e", value: 2 }])["b/c"], { "d~e": 2 });
  assert.deepEqual(applyPatch(doc, [{ op: "replace", path: "", value: 7 }]), 7);
  assert.deepEqual(doc, { a: [1, 2, 3], "b/c": { "d~e": 1 } }, "the document itself is unchanged");
  for (const bad of [
    [{ op: "remove", path: "/a/3" }],
    [{ op: "replace", path: "/x", value: 1 }],
    [{ op: "add", path: "/a/01", value: 1 }],
    [{ op: "move", from: "/a", path: "/b" }],
    [{ op: "add", path: "/a/0/x", value: 1 }],
    [{ op: "remove", path: "" }],
    [{ op: "add", path: "a", value: 1 }],
    "not a patch",
  ]) {
    assert.throws(() => applyPatch(doc, bad), Error, JSON.stringify(bad));
  }
});

// ---- a generated sequence ------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so that a failing sequence can be replayed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random edit of a Nommie-like document: scores change, cards leave a hand, history grows. */
function nextState(state, rnd) {
  const next = structuredClone(state);
  const pick = (n) => Math.floor(rnd() * n);
  for (let edits = 1 + pick(3); edits > 0; edits -= 1) {
    switch (pick(6)) {
      case 0:
        next.game.scores[pick(4)] += 1 + pick(10);
        break;
      case 1:
        if (next.hand.length) next.hand.splice(pick(next.hand.length), 1);
        else next.hand = ["2C", "7D", "QS", "AH", "9H"].slice(0, 1 + pick(5));
        break;
      case 2:
        next.history.push({ trick: next.history.length, winner: pick(4), cards: ["AS", "KS", "QS", "JS"].slice(0, 1 + pick(4)) });
        if (next.history.length > 6) next.history.shift();
        break;
      case 3:
        next.phase = { phase: ["Bidding", "Trick", "Scoring"][pick(3)], to_act: pick(4) };
        break;
      case 4:
        if ("note" in next) delete next.note;
        else next.note = pick(2) ? "ready" : null;
        break;
      default:
        next.game.flags[pick(3)] = [true, false, 0, 1, "x", null][pick(6)];
    }
  }
  return next;
}

/** The test's own differ: a patch by a different route than the gateway's (keys, then arrays
 * element by element with adds and removes at the end). */
function diff(a, b, path = "", ops = []) {
  if (JSON.stringify(a) === JSON.stringify(b)) return ops;
  if (Array.isArray(a) && Array.isArray(b)) {
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i += 1) diff(a[i], b[i], `${path}/${i}`, ops);
    for (let i = a.length - 1; i >= common; i -= 1) ops.push({ op: "remove", path: `${path}/${i}` });
    for (let i = common; i < b.length; i += 1) ops.push({ op: "add", path: `${path}/-`, value: b[i] });
    return ops;
  }
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    for (const key of Object.keys(a)) {
      const where = `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      if (!(key in b)) ops.push({ op: "remove", path: where });
      else diff(a[key], b[key], where, ops);
    }
    for (const key of Object.keys(b)) if (!(key in a)) ops.push({ op: "add", path: `${path}/${key}`, value: b[key] });
    return ops;
  }
  ops.push({ op: "replace", path, value: b });
  return ops;
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`generated sequence ${seed}: the state held is always the full snapshot of its version`, async () => {
    const rnd = prng(seed);
    const ctx = setup({ backoffBaseMs: 1, backoffMaxMs: 1 });
    ctx.client.subscribe(1);
    ctx.client.connect();
    await settle();
    const versions = new Map();
    let state = { game: { scores: [0, 0, 0, 0], flags: [0, false, null] }, hand: ["2C", "3C"], history: [], phase: { phase: "Bidding" } };
    let version = 1;
    versions.set(version, state);
    let socket = ctx.sockets.at(-1);
    socket.accept({ expiresAt: FAR_FUTURE, delta: true });
    // What the "gateway" believes this connection holds (undefined: nothing yet, send in full).
    let delivered;
    const send = (v) => {
      if (delivered !== undefined && rnd() < 0.8) {
        // A delta from what was delivered last; now and then from a stale base (a lost frame).
        const base = rnd() < 0.1 ? Math.max(1, delivered - 1) : delivered;
        socket.serverSend({ type: "delta", gameId: 1, gameVersion: v, baseVersion: base, patch: diff(versions.get(base), versions.get(v)) });
      } else {
        socket.serverSend({ type: "snapshot", gameId: 1, gameVersion: v, data: versions.get(v) });
      }
      delivered = v;
    };
    for (let step = 0; step < 300; step += 1) {
      state = nextState(state, rnd);
      version += 1;
      versions.set(version, state);
      const roll = rnd();
      if (roll < 0.1) {
        // Conflation: this version never reaches the client; the next one must be full.
        delivered = undefined;
        continue;
      }
      if (roll < 0.13) {
        // A reconnect: the new socket's subscription starts with the latest, in full.
        socket.serverClose(1012, "draining");
        await ctx.clock.runNext();
        await settle();
        socket = ctx.sockets.at(-1);
        socket.accept({ expiresAt: FAR_FUTURE, delta: true });
        delivered = undefined;
      }
      const resubscribes = socket.sentOfType("subscribe").length;
      send(version);
      if (socket.sentOfType("subscribe").length > resubscribes) {
        delivered = undefined; // the client resubscribed: the gateway starts it in full
        send(version);
      }
      const held = ctx.client.getGame(1);
      assert.deepEqual(held.snapshot, versions.get(held.version), `seed ${seed}, step ${step}`);
      assert.ok(held.version === version, `seed ${seed}, step ${step}: at version ${held.version}, not ${version}`);
    }
    ctx.client.disconnect();
  });
}
