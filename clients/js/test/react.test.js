// useGameSync under a real React renderer (react-test-renderer), with the fake socket and clock.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { act, createElement, StrictMode } from "react";
import TestRenderer from "react-test-renderer";

import { GameSyncClient, Status } from "../src/index.js";
import { GameSyncProvider, useGameSync } from "../src/react.js";
import { fakeFetch, fakeWorld, settle } from "./fakes.js";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

// react-test-renderer 19 announces its own deprecation once; the renderer still works.
const consoleError = console.error;
console.error = (...args) => {
  if (String(args[0]).includes("react-test-renderer is deprecated")) return;
  consoleError(...args);
};

let renderer = null;
afterEach(async () => {
  if (renderer) await act(async () => renderer.unmount());
  renderer = null;
});

function setup(options = {}) {
  const { clock, page, sockets, http, environment } = fakeWorld(fakeFetch());
  const client = new GameSyncClient({
    url: "ws://127.0.0.1:8000/ws",
    token: "tok",
    ...options,
    environment,
  });
  return { client, sockets, http, clock };
}

/** Renders components that write each hook result into `seen[name]`. */
function Probe({ name, gameId, options, seen }) {
  seen[name] = useGameSync(gameId, options);
  return null;
}

async function render(element) {
  await act(async () => {
    renderer = TestRenderer.create(element);
  });
  await act(settle);
}

async function server(fn) {
  await act(async () => fn());
}

test("useGameSync subscribes, follows status and snapshots, and unsubscribes on unmount", async () => {
  const { client, sockets } = setup();
  const seen = {};
  await render(createElement(GameSyncProvider, { client }, createElement(Probe, { name: "a", gameId: 42, seen })));
  assert.equal(seen.a.status, Status.CONNECTING);
  assert.equal(seen.a.snapshot, undefined);
  const ws = sockets[0];
  await server(() => ws.accept());
  assert.equal(seen.a.status, Status.CONNECTED);
  assert.deepEqual(ws.sentOfType("subscribe"), [{ type: "subscribe", gameId: 42 }]);

  await server(() => ws.serverSend({ type: "snapshot", gameId: 42, gameVersion: 3, data: { n: 3 }, viewer: { hand: ["AS"] } }));
  assert.deepEqual(seen.a.snapshot, { n: 3 });
  assert.deepEqual(seen.a.viewer, { hand: ["AS"] });
  assert.equal(seen.a.version, 3);
  assert.equal(seen.a.error, null);

  await server(() => ws.serverSend({ type: "snapshot", gameId: 42, gameVersion: 2, data: { n: 2 } }));
  assert.equal(seen.a.version, 3, "stale versions never reach the component");

  await act(async () => renderer.unmount());
  renderer = null;
  assert.deepEqual(ws.closedWith, { code: 1000, reason: "client disconnect" }, "the provider disconnects on unmount");
});

test("two components on one game share one subscription; gameId changes move it", async () => {
  const { client, sockets } = setup();
  client.connect();
  await settle();
  sockets[0].accept();
  const seen = {};
  const tree = (idB) =>
    createElement(
      "div",
      null,
      createElement(Probe, { name: "a", gameId: 1, options: { client }, seen }),
      idB === undefined ? null : createElement(Probe, { name: "b", gameId: idB, options: { client }, seen }),
    );
  await render(tree(1));
  assert.deepEqual(sockets[0].sentOfType("subscribe").map((m) => m.gameId), [1]);
  await act(async () => renderer.update(tree(2)));
  assert.deepEqual(sockets[0].sentOfType("subscribe").map((m) => m.gameId), [1, 2]);
  assert.deepEqual(sockets[0].sentOfType("unsubscribe"), [], "game 1 still has a watcher");
  await act(async () => renderer.update(tree(undefined)));
  assert.deepEqual(sockets[0].sentOfType("unsubscribe").map((m) => m.gameId), [2]);
  await server(() => sockets[0].serverSend({ type: "snapshot", gameId: 1, gameVersion: 1, data: { one: true } }));
  assert.deepEqual(seen.a.snapshot, { one: true });
});

test("a server-rendered initial state shows at once and yields only to a newer version", async () => {
  const { client, sockets } = setup();
  const seen = {};
  const initial = { version: 10, snapshot: { from: "rest" }, viewer: { hand: [] } };
  await render(createElement(Probe, { name: "a", gameId: 7, options: { client, initial }, seen }));
  assert.equal(seen.a.version, 10);
  assert.deepEqual(seen.a.snapshot, { from: "rest" });
  sockets[0].accept();
  await server(() => sockets[0].serverSend({ type: "snapshot", gameId: 7, gameVersion: 10, data: { from: "ws" } }));
  assert.deepEqual(seen.a.snapshot, { from: "rest" }, "an equal version does not replace it");
  await server(() => sockets[0].serverSend({ type: "snapshot", gameId: 7, gameVersion: 11, data: { from: "ws" } }));
  assert.deepEqual(seen.a.snapshot, { from: "ws" });
});

test("refresh() polls the configured snapshot URL and errors surface in `error`", async () => {
  const { client, sockets, http } = setup({ snapshotUrl: "http://127.0.0.1:3000/api/games/{gameId}" });
  const seen = {};
  await render(createElement(Probe, { name: "a", gameId: 5, options: { client }, seen }));
  sockets[0].accept();
  http.answers.push({ status: 200, body: { version: 4, game: { polled: true } }, etag: '"game-5-v4"' });
  await act(async () => seen.a.refresh());
  assert.equal(http.requests[0].url, "http://127.0.0.1:3000/api/games/5");
  assert.deepEqual(seen.a.snapshot, { polled: true });
  await server(() => sockets[0].serverSend({ type: "error", code: "forbidden", message: "not a member", gameId: 5 }));
  assert.equal(seen.a.error.code, "forbidden");
});

test("StrictMode's double mount leaves exactly one live socket and one subscription", async () => {
  const { client, sockets } = setup();
  const seen = {};
  await render(
    createElement(StrictMode, null, createElement(GameSyncProvider, { client }, createElement(Probe, { name: "a", gameId: 9, seen }))),
  );
  const live = sockets.filter((s) => s.closedWith === null);
  assert.equal(live.length, 1);
  await server(() => live[0].accept());
  assert.deepEqual(live[0].sentOfType("subscribe"), [{ type: "subscribe", gameId: 9 }]);
  assert.equal(seen.a.status, Status.CONNECTED);
  assert.deepEqual(client.subscriptions, [9]);
});

test("useGameSync without a provider or client says what is missing", async () => {
  const seen = {};
  const original = console.error;
  console.error = () => {};
  try {
    await assert.rejects(
      async () =>
        act(async () => {
          renderer = TestRenderer.create(createElement(Probe, { name: "a", gameId: 1, seen }));
        }),
      /GameSyncProvider/,
    );
    renderer = null;
  } finally {
    console.error = original;
  }
});
