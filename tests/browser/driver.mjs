// A line-oriented browser driver for the pytest browser tests: one JSON command per stdin
// line, one JSON reply per stdout line. Chromium comes from Debian (/usr/bin/chromium) and
// is driven by playwright-core, resolved from clients/js/node_modules.
//
// Commands: {"id", "cmd": "open", "page", "url", "blockWebSockets"?} | {"id", "cmd": "waitFor", "page", "fn", "arg",
// "timeoutMs"} | {"id", "cmd": "eval", "page", "fn", "arg"} | {"id", "cmd": "screenshot", "page",
// "path"} | {"id", "cmd": "offline", "page", "offline": bool} | {"id", "cmd": "close", "page"} |
// {"id", "cmd": "quit"}. `fn` is the source of a
// function of one argument, run in the page.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../clients/js/package.json", import.meta.url)));
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const browser = await chromium.launch({
  executablePath: process.env.GAMESYNC_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
});
const pages = new Map();

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Turn function source from the test into a function playwright can ship to the page. */
function pageFunction(source) {
  // eslint-disable-next-line no-new-func
  return new Function(`return (${source});`)();
}

function page(name) {
  const found = pages.get(name);
  if (!found) throw new Error(`no page named ${name}`);
  return found.page;
}

async function run(command) {
  switch (command.cmd) {
    case "open": {
      // A fresh context per page: its own storage, like a separate browser profile.
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      if (command.blockWebSockets) {
        // A network that breaks websockets (a proxy that refuses the upgrade, say): every
        // websocket the page opens is closed at once, before it ever reaches the server.
        await context.routeWebSocket(/.*/, (ws) => ws.close({ code: 1011, reason: "blocked by the test" }));
      }
      const created = await context.newPage();
      created.on("console", (msg) => process.stderr.write(`[${command.page}] console.${msg.type()}: ${msg.text()}\n`));
      created.on("pageerror", (err) => process.stderr.write(`[${command.page}] pageerror: ${err.message}\n`));
      pages.set(command.page, { context, page: created });
      await created.goto(command.url, { waitUntil: "load" });
      return null;
    }
    case "waitFor": {
      const handle = await page(command.page).waitForFunction(pageFunction(command.fn), command.arg ?? null, {
        timeout: command.timeoutMs ?? 10000,
        polling: 100,
      });
      return handle.jsonValue();
    }
    case "eval":
      return page(command.page).evaluate(pageFunction(command.fn), command.arg ?? null);
    case "screenshot":
      await page(command.page).screenshot({ path: command.path, fullPage: true });
      return command.path;
    case "offline": {
      // Emulated network loss for the page's context; going back online fires `online`.
      await pages.get(command.page).context.setOffline(Boolean(command.offline));
      return null;
    }
    case "close": {
      const entry = pages.get(command.page);
      pages.delete(command.page);
      if (entry) await entry.context.close();
      return null;
    }
    case "quit":
      await browser.close();
      return null;
    default:
      throw new Error(`unknown command ${command.cmd}`);
  }
}

reply({ ready: true, version: browser.version() });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    reply({ id: command.id, ok: true, result: (await run(command)) ?? null });
  } catch (err) {
    reply({ id: command.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
  if (command.cmd === "quit") break;
}
await browser.close().catch(() => {});
process.exit(0);
