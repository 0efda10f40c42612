// Game-affine placement against real gateway processes (the repository's `gamesync gateway`,
// started as shard 0 and shard 1 of 2): the path the client computes, the wrong-shard close
// (4421) and its one immediate retry with the shard count learnt again, and the SSE twin.
// Skipped when the gateway is not installed (scripts/bootstrap creates .venv first).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import { GameSyncClient, Status, affineUrlFor, shardOf, shardsUrlFor } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const GATEWAY = process.env.GAMESYNC_BIN || resolve(here, "../../../.venv/bin/gamesync");
const PUBLISH_TOKEN = "affinity-test-publish";
const skip = existsSync(GATEWAY) ? false : `no gateway at ${GATEWAY} (run scripts/bootstrap test)`;
const gateways = [];

/** Start `gamesync gateway --dev` as shard `shard` of `shards`; resolve with its URLs. */
function startGateway(shard, shards) {
  const child = spawn(
    GATEWAY,
    ["gateway", "--dev", "--port", "0", "--internal-port", "0", "--shard", String(shard), "--shards", String(shards),
      "--publish-token", PUBLISH_TOKEN],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  return new Promise((resolvePromise, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${err.slice(-500)}`)), 20000);
    child.stderr.on("data", (chunk) => (err += chunk));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /GAMESYNC_READY public=(\S+) internal=(\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        const gateway = { child, shard, public: match[1], internal: match[2], ws: `${match[1].replace("http", "ws")}/ws` };
        gateways.push(gateway);
        resolvePromise(gateway);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}: ${err.slice(-500)}`));
    });
  });
}

let shard0;
let shard1;

before(async () => {
  if (skip) return;
  [shard0, shard1] = await Promise.all([startGateway(0, 2), startGateway(1, 2)]);
});

after(async () => {
  await Promise.all(
    gateways.map(
      ({ child }) =>
        new Promise((done) => {
          if (child.exitCode !== null) return done();
          child.once("exit", done);
          child.kill("SIGKILL");
        }),
    ),
  );
});

/** A dev gateway signs with keys of its own: each hands out tokens only it accepts. */
async function tokenFor(gateway) {
  return (await (await fetch(`${gateway.public}/console-config.json`)).json()).token;
}

async function publish(gateway, gameId, version) {
  const response = await fetch(`${gateway.internal}/v1/games/${gameId}/snapshots`, {
    method: "POST",
    headers: { Authorization: `Bearer ${PUBLISH_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ gameId, version, snapshot: { v: version } }),
  });
  assert.equal(response.status, 200);
}

/** Resolve with the first event `type` matching `predicate`; reject at the deadline. */
function next(client, type, predicate = () => true, timeoutMs = 8000) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event in time (status ${client.status})`));
    }, timeoutMs);
    const off = client.on(type, (event) => {
      if (!predicate(event)) return;
      clearTimeout(timer);
      off();
      resolvePromise(event);
    });
  });
}

test("the shard function, the announcement URL and the affine paths", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((id) => shardOf(id, 4)), [0, 1, 2, 3, 0, 1]);
  assert.equal(shardOf("9223372036854775807", 4), 3); // 2^63 - 1: exact, on a BigInt
  assert.equal(shardOf(12345, 1), 0);
  assert.throws(() => shardOf(1, 0), RangeError);
  assert.throws(() => shardOf(-1, 2), TypeError);
  assert.equal(shardsUrlFor("wss://play.example/ws?x=1"), "https://play.example/v1/shards");
  assert.equal(affineUrlFor("ws://h:1/ws", 2, 42), "ws://h:1/ws/s/2/games/42");
  assert.equal(affineUrlFor("https://h/sse?games=1", 0, 8), "https://h/sse/s/0/games/8?games=1");
});

test("each shard serves the affine clients of its own games", { skip }, async () => {
  for (const [gateway, gameId] of [[shard0, 4], [shard1, 7]]) {
    await publish(gateway, gameId, 3);
    const client = new GameSyncClient({ url: gateway.ws, token: await tokenFor(gateway), affinity: true, environment: { WebSocket } });
    const opened = next(client, "open");
    const snapshot = next(client, "snapshot");
    client.subscribe(gameId);
    client.connect();
    try {
      assert.equal((await opened).url, `${gateway.ws}/s/${gateway.shard}/games/${gameId}`);
      const event = await snapshot;
      assert.deepEqual([event.gameId, event.version], [gameId, 3]);
      assert.equal(client.status, Status.CONNECTED);
    } finally {
      client.disconnect();
    }
  }
});

test("a wrong-shard close is retried once at once with the count learnt again, then backed off", { skip }, async () => {
  // Pointed at shard 0 for a game of shard 1 (no proxy here to route it): refused twice.
  const closes = [];
  const announcements = [];
  const realFetch = globalThis.fetch;
  const client = new GameSyncClient({
    url: shard0.ws,
    token: await tokenFor(shard0),
    affinity: true,
    backoffBaseMs: 60000,
    environment: {
      WebSocket,
      random: () => 0.99, // the backoff after the second refusal: ~60 s, outlasting the test
      fetch: (url, init) => {
        announcements.push(url);
        return realFetch(url, init);
      },
    },
  });
  client.on("close", (event) => closes.push(event.code));
  const gaveUpForNow = next(client, "status", (e) => e.status === Status.RECONNECTING && closes.length === 2);
  client.subscribe(5);
  client.connect();
  try {
    const event = await gaveUpForNow;
    assert.deepEqual(closes, [4421, 4421]);
    assert.equal(event.error.code, "wrong_shard");
    assert.equal(announcements.length, 2); // learnt again after the refusal
    assert.equal(client.transport, "websocket"); // the retry did not count toward the fallback
    assert.equal(closes.length, 2); // the backoff holds: no third attempt at once
  } finally {
    client.disconnect();
  }
});

test("a stale shard count (the fleet changed it) costs one refusal", { skip }, async () => {
  await publish(shard1, 9, 4);
  const realFetch = globalThis.fetch;
  let asked = 0;
  const client = new GameSyncClient({
    url: shard1.ws,
    token: await tokenFor(shard1),
    affinity: true,
    backoffBaseMs: 60000,
    environment: {
      WebSocket,
      // The first answer is from before the change: 3 shards (game 9 would be on shard 0).
      fetch: (url, init) => (asked++ === 0 ? Promise.resolve(new Response(JSON.stringify({ shards: 3, shard: 0 }))) : realFetch(url, init)),
    },
  });
  const closes = [];
  client.on("close", (event) => closes.push(event.code));
  const snapshot = next(client, "snapshot");
  client.subscribe(9);
  client.connect();
  try {
    const event = await snapshot;
    assert.deepEqual([event.gameId, event.version], [9, 4]);
    assert.deepEqual(closes, [4421]);
  } finally {
    client.disconnect();
  }
});

test("an SSE stream of one game goes to its shard, and 421 means wrong shard", { skip }, async () => {
  await publish(shard1, 11, 2);
  const client = new GameSyncClient({ url: shard1.ws, token: await tokenFor(shard1), affinity: true, transport: "sse" });
  const opened = next(client, "open");
  const snapshot = next(client, "snapshot");
  client.subscribe(11);
  client.connect();
  try {
    assert.equal((await opened).url, `${shard1.public}/sse/s/1/games/11`);
    assert.equal((await snapshot).version, 2);
  } finally {
    client.disconnect();
  }
  const wrong = new GameSyncClient({ url: shard0.ws, token: await tokenFor(shard0), affinity: true, transport: "sse", backoffBaseMs: 60000 });
  const closed = next(wrong, "close");
  wrong.subscribe(11);
  wrong.connect();
  try {
    assert.equal((await closed).code, 4421);
  } finally {
    wrong.disconnect();
  }
});
