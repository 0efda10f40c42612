// The dev-mode console: a thin page over GameSyncClient that shows connection state, the
// latest snapshot of one game, this token's private view and every frame in and out.
// URL parameters: ?seat=N (use seat N's dev token), ?token=JWT, ?game=ID, ?autoconnect=0.
import { GameSyncClient, Status } from "./gamesync-client.js";

const LOG_LIMIT = 300;
const SUITS = { S: "♠", H: "♥", D: "♦", C: "♣" };
const CUSTOM = "custom";
const DEV = "dev";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);

let config = { wsUrl: "", token: "", seatTokens: {}, demoGameId: null };
let client = null;
let clientOffs = [];
const games = new Set(); // the games the console wants, kept across reconnect/Connect clicks
let shownGame = null;

// ---- config ---------------------------------------------------------------------------

async function fetchConfig() {
  try {
    const response = await fetch("/console-config.json", { cache: "no-store" });
    if (!response.ok) return null; // not in dev mode: leave the fields for the user
    const body = await response.json();
    return {
      wsUrl: typeof body.wsUrl === "string" ? body.wsUrl : "",
      token: typeof body.token === "string" ? body.token : "",
      seatTokens: body.seatTokens && typeof body.seatTokens === "object" ? body.seatTokens : {},
      demoGameId: Number.isInteger(body.demoGameId) ? body.demoGameId : null,
    };
  } catch {
    return null;
  }
}

function defaultWsUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws`;
}

/**
 * The gateway serves this page from its public port, so the page's own origin always reaches
 * /ws. A configured URL on another host (a bind address such as 0.0.0.0, or a pod name seen
 * through a port-forward) would not, so it only wins when it names the page's host.
 */
function chooseWsUrl(configured) {
  if (!configured) return defaultWsUrl();
  try {
    if (new URL(configured).host === window.location.host) return configured;
  } catch {
    // not a URL: fall through
  }
  log("status", `using ${defaultWsUrl()} (this page's origin) instead of ${configured}`);
  return defaultWsUrl();
}

function fillSeatPicker() {
  const select = $("seat");
  const seats = Object.keys(config.seatTokens).sort((a, b) => Number(a) - Number(b));
  select.replaceChildren();
  const add = (value, label) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    select.append(option);
  };
  if (config.token) add(DEV, "dev user (no seat)");
  for (const seat of seats) add(seat, `player: user ${seat}`);
  add(CUSTOM, "custom token");
  $("seat-row").hidden = seats.length === 0;
}

function tokenForSeat(choice) {
  if (choice === DEV) return config.token;
  if (choice === CUSTOM) return null;
  return config.seatTokens[choice] || null;
}

/** The client's token provider: the field's value; after a 4401, fresh dev tokens first. */
async function provideToken({ reason }) {
  if (reason === "unauthorized") {
    // A restarted dev gateway generates new keys: ask it for the current tokens once.
    const fresh = await fetchConfig();
    if (fresh) {
      config = fresh;
      const token = tokenForSeat($("seat").value);
      if (token && token !== $("token").value.trim()) {
        $("token").value = token;
        log("status", "fetched a fresh token from /console-config.json");
      }
    }
  }
  return $("token").value.trim();
}

// ---- client ---------------------------------------------------------------------------

function connect() {
  disconnect();
  const url = $("ws-url").value.trim() || defaultWsUrl();
  $("ws-url").value = url;
  try {
    client = new GameSyncClient({ url, token: provideToken });
  } catch (err) {
    log("error", err.message);
    return;
  }
  clientOffs = [
    client.on("status", ({ status, previous, error }) => {
      renderStatus(status, error);
      if (status !== previous) log("status", `${previous} → ${status}${error ? ` (${describe(error)})` : ""}`);
    }),
    client.on("frame", ({ direction, frame }) => log(direction, summarise(frame))),
    client.on("open", ({ url }) => log("status", `open ${url}`)),
    client.on("close", ({ code, reason }) => log("close", `close ${code}${reason ? ` ${reason}` : ""}`)),
    client.on("game", ({ gameId }) => {
      if (gameId === shownGame) renderGame();
    }),
  ];
  for (const id of games) client.subscribe(id);
  client.connect();
  renderStatus(client.status, client.error);
}

function disconnect() {
  if (!client) return;
  client.disconnect();
  renderStatus(client.status, null);
  for (const off of clientOffs) off();
  clientOffs = [];
  client = null;
}

function subscribe(id) {
  if (!games.has(id)) {
    games.add(id);
    client?.subscribe(id);
  }
  shownGame = id;
  renderSubscriptions();
  renderGame();
}

function unsubscribe(id) {
  if (!games.delete(id)) return;
  client?.unsubscribe(id);
  if (shownGame === id) shownGame = games.values().next().value ?? null;
  renderSubscriptions();
  renderGame();
}

// ---- rendering ------------------------------------------------------------------------

function describe(error) {
  const code = error.closeCode ? ` (close ${error.closeCode})` : "";
  return error.message && error.message !== error.code ? `${error.code}: ${error.message}${code}` : `${error.code}${code}`;
}

function renderStatus(status, error) {
  const badge = $("status");
  badge.textContent = client && status === Status.CONNECTED ? `${status} (${client.transport})` : status;
  badge.dataset.status = status;
  badge.dataset.transport = client ? client.transport : "";
  const reason = $("status-reason");
  reason.textContent = error && status !== Status.CONNECTED ? describe(error) : "";
}

function renderSubscriptions() {
  const holder = $("subscriptions");
  holder.replaceChildren();
  if (games.size === 0) {
    holder.textContent = "none";
    return;
  }
  for (const id of games) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = id === shownGame ? "link shown" : "link";
    button.textContent = `#${id}`;
    button.addEventListener("click", () => {
      shownGame = id;
      $("game-id").value = String(id);
      renderSubscriptions();
      renderGame();
    });
    holder.append(button, " ");
  }
}

function renderGame() {
  const state = client && shownGame !== null ? client.getGame(shownGame) : null;
  $("shown-game").textContent = shownGame === null ? "—" : String(shownGame);
  $("version").textContent = state && state.version !== undefined ? String(state.version) : "—";
  $("snapshot").textContent = state && state.snapshot !== undefined ? JSON.stringify(state.snapshot, null, 2) : state && state.error ? describe(state.error) : "—";
  const viewer = state ? state.viewer : undefined;
  $("viewer").textContent = viewer === undefined ? "—" : JSON.stringify(viewer, null, 2);
  renderHand(viewer, Boolean(state && state.version !== undefined));
  renderTable(state ? state.snapshot : undefined, viewer);
}

/**
 * A readable view of Nomination Whist snapshots (the --demo game, Nommie's shape); any other
 * snapshot shape leaves the panel hidden and only the JSON shows.
 */
function renderTable(snapshot, viewer) {
  const panel = $("table-panel");
  const game = snapshot && snapshot.game;
  const phase = snapshot && snapshot.phase;
  if (!game || !Array.isArray(game.seating) || !phase || typeof phase.phase !== "string") {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  const data = phase.data || {};
  const round = data.round || {};
  const details = [phase.phase];
  if (game.round_no) details.push(`round ${game.round_no}`);
  if (round.hand_size) details.push(`${round.hand_size} cards`);
  if (round.trump) details.push(`trump ${round.trump === "NO_TRUMPS" ? "none" : round.trump.toLowerCase()}`);
  if (data.trick_no) details.push(`trick ${data.trick_no}`);
  $("table-phase").textContent = details.join(" · ");
  const onTable = new Map((data.current_trick || []).map(([seat, card]) => [seat, card]));
  const body = $("table").tBodies[0];
  body.replaceChildren();
  for (const seat of game.seating) {
    const row = document.createElement("tr");
    row.dataset.seat = String(seat.seat);
    if (data.to_act === seat.seat) row.classList.add("to-act");
    if (viewer && viewer.seat === seat.seat) row.classList.add("mine");
    const bids = round.bids || data.bids || [];
    const cells = [
      `${seat.seat}${game.dealer === seat.seat ? " (dealer)" : ""}`,
      `${seat.display_name || "?"} · user ${seat.user_id ?? "—"}`,
      bids[seat.seat] ?? "—",
      (round.tricks_won || [])[seat.seat] ?? "—",
      (game.scores_total || [])[seat.seat] ?? "—",
    ];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    const played = document.createElement("td");
    if (onTable.has(seat.seat)) played.append(cardElement(onTable.get(seat.seat), false));
    row.append(played);
    body.append(row);
  }
}

function cardElement(card, playable) {
  const span = document.createElement("span");
  const suit = String(card).slice(-1);
  span.className = `card${suit === "H" || suit === "D" ? " red" : ""}${playable ? " playable" : ""}`;
  span.dataset.card = card;
  span.textContent = `${String(card).slice(0, -1).replace("T", "10")}${SUITS[suit] || suit}`;
  return span;
}

function renderHand(viewer, hasSnapshot) {
  const hand = $("hand");
  hand.replaceChildren();
  if (viewer === undefined || viewer === null) {
    if (!hasSnapshot) return;
    const note = document.createElement("span");
    note.className = "muted small";
    note.textContent = "No private state for this token (the publisher sent none for this user).";
    hand.append(note);
    return;
  }
  const cards = Array.isArray(viewer.hand) ? viewer.hand : [];
  const playable = new Set(Array.isArray(viewer.playable) ? viewer.playable : []);
  for (const card of cards) hand.append(cardElement(card, playable.has(card)));
}

function summarise(frame) {
  if (frame.type === "snapshot") {
    const phase = frame.data && frame.data.phase && frame.data.phase.phase;
    return `snapshot game ${frame.gameId} v${frame.gameVersion}${phase ? ` ${phase}` : ""}${"viewer" in frame ? " +viewer" : ""}`;
  }
  return JSON.stringify(frame);
}

function log(kind, text) {
  const list = $("log");
  const item = document.createElement("li");
  item.className = kind;
  item.dataset.kind = kind;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date().toISOString().slice(11, 23);
  const arrow = { in: "← ", out: "→ ", close: "× ", error: "! ", status: "· " }[kind] || "";
  item.append(time, `${arrow}${text}`);
  list.prepend(item);
  while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
}

// ---- wiring ---------------------------------------------------------------------------

function readGameId() {
  const id = Number($("game-id").value);
  if (!Number.isInteger(id) || id < 0 || $("game-id").value.trim() === "") {
    log("error", "game id must be a whole number");
    return null;
  }
  return id;
}

async function start() {
  $("connection-form").addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  $("disconnect").addEventListener("click", disconnect);
  $("game-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = readGameId();
    if (id !== null) subscribe(id);
  });
  $("unsubscribe").addEventListener("click", () => {
    const id = readGameId();
    if (id !== null) unsubscribe(id);
  });
  $("seat").addEventListener("change", () => {
    const token = tokenForSeat($("seat").value);
    if (token === null) return;
    $("token").value = token;
    if (client) connect(); // switch seats live: a new socket with the new token
  });
  $("token").addEventListener("input", () => {
    $("seat").value = CUSTOM;
  });
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());

  const loaded = await fetchConfig();
  if (loaded) config = loaded;
  fillSeatPicker();
  $("ws-url").value = chooseWsUrl(config.wsUrl);

  const seat = params.get("seat");
  const token = params.get("token");
  if (token !== null) {
    $("seat").value = CUSTOM;
    $("token").value = token;
  } else if (seat !== null && config.seatTokens[seat]) {
    $("seat").value = seat;
    $("token").value = config.seatTokens[seat];
  } else {
    $("seat").value = config.token ? DEV : CUSTOM;
    $("token").value = config.token;
  }
  const game = params.has("game") ? Number(params.get("game")) : config.demoGameId;
  if (Number.isInteger(game)) $("game-id").value = String(game);

  renderSubscriptions();
  renderGame();
  if (params.get("autoconnect") !== "0" && $("token").value.trim() && Number.isInteger(game)) {
    subscribe(game);
    connect();
  }
}

// For debugging from the devtools console (and for the browser tests' diagnostics).
window.gamesyncConsole = {
  get client() {
    return client;
  },
  connect,
  disconnect,
  subscribe,
  unsubscribe,
};

start();
