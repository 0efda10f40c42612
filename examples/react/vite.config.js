// Vite builds the app; its dev and preview servers also serve the stand-in for Nommie's
// backend routes (backend/nommie-stand-in.mjs) on the same origin as the page.
// GAMESYNC_GATEWAY_URL: the dev gateway's public URL (default: what scripts/gateway starts).
import { defineConfig } from "vite";

import { nommieStandIn } from "./backend/nommie-stand-in.mjs";

const gatewayUrl = process.env.GAMESYNC_GATEWAY_URL || "http://127.0.0.1:8000";

function standInPlugin() {
  const log = (line) => process.stdout.write(`${line}\n`);
  // Installed before Vite's own middlewares (a hook that returned a function would run after).
  const install = (server) => {
    server.middlewares.use(nommieStandIn({ gatewayUrl, log }));
  };
  return { name: "nommie-stand-in", configureServer: install, configurePreviewServer: install };
}

export default defineConfig({
  plugins: [standInPlugin()],
  build: {
    target: "es2022",
    rolldownOptions: {
      onwarn(warning, warn) {
        // @gamesync/client/react starts with "use client" for React Server Components
        // (Next.js); a browser bundle has no use for it, and dropping it is correct.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE" && warning.message.includes('"use client"')) return;
        warn(warning);
      },
    },
  },
});
