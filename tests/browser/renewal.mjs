// Runs GameSyncClient in Node (with the `ws` package) against a real gateway whose tokens
// live a few seconds, and prints a JSON summary of what happened for test_token_renewal.py.
// Usage: node renewal.mjs WS_URL GAMESYNC_EXE SIGNER TTL_SECONDS RUN_MS renew|fixed
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { GameSyncClient } from "../../clients/js/src/index.js";

const require = createRequire(fileURLToPath(new URL("../../clients/js/package.json", import.meta.url)));
const WebSocket = require("ws");

const [url, gamesync, signer, ttl, runMs, mode] = process.argv.slice(2);

const reasons = [];
function mint({ reason }) {
  reasons.push(reason);
  return execFileSync(gamesync, ["token", "--signer", signer, "--sub", "7", "--ttl", ttl], { encoding: "utf8" }).trim();
}

const client = new GameSyncClient({
  url,
  token: mode === "renew" ? mint : mint({ reason: "connect" }),
  environment: { WebSocket },
});
const summary = { welcomes: [], closes: [], statuses: [], snapshots: [], reasons };
client.on("frame", ({ direction, frame }) => {
  if (direction === "in" && frame.type === "welcome") summary.welcomes.push(frame.expiresAt);
});
client.on("close", ({ code, reason }) => summary.closes.push({ code, reason }));
client.on("status", ({ status, error }) => summary.statuses.push(error ? `${status}:${error.code}` : status));
client.on("snapshot", ({ version }) => summary.snapshots.push(version));
client.subscribe(5);
client.connect();

// The property under test is "the connection outlives its first token", so this run lasts a
// fixed time past expiry; a fixed token ends early, when the server closes for expiry.
await new Promise((resolve) => {
  const timer = setTimeout(resolve, Number(runMs));
  client.on("status", ({ status }) => {
    if (status === "disconnected") {
      clearTimeout(timer);
      resolve();
    }
  });
});
summary.finalStatus = client.status;
summary.finalError = client.error && { code: client.error.code, closeCode: client.error.closeCode };
const report = JSON.stringify(summary); // before our own disconnect() adds to it
client.disconnect();
process.stdout.write(`${report}\n`);
