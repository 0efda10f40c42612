// The dev console serves a copy of the client; it must be the same bytes as the source.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

test("the gateway's static copy of the client is identical to src/index.js (run scripts/sync-client)", async () => {
  const source = await readFile(new URL("../src/index.js", import.meta.url));
  const copy = await readFile(new URL("../../../gateway/gamesync/static/gamesync-client.js", import.meta.url));
  assert.ok(source.equals(copy), "gateway/gamesync/static/gamesync-client.js differs: run scripts/sync-client");
});
