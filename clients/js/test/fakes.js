// Test doubles for GameSyncClient: a virtual clock, a scripted WebSocket, a page whose
// visibility the test controls, and a fetch that answers from a queue.

export class FakeClock {
  now = 1_700_000_000_000;
  #next = 1;
  #timers = new Map();

  setTimeout = (fn, delay = 0) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + Math.max(0, delay), fn, delay });
    return id;
  };

  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  /** Delays of the timers now pending, in creation order. */
  pendingDelays() {
    return [...this.#timers.values()].map((t) => t.delay);
  }

  /** Jump to the earliest pending timer and fire it; returns its delay. */
  async runNext() {
    await settle();
    let next = null;
    for (const timer of this.#timers.values()) if (next === null || timer.at < next.at) next = timer;
    if (next === null) throw new Error("no timer pending");
    await this.advance(next.at - this.now);
    return next.delay;
  }

  /** Move time forward, firing due timers in order (and letting promises settle between). */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      await settle();
      let dueId = null;
      let due = null;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (due === null || timer.at < due.at)) {
          dueId = id;
          due = timer;
        }
      }
      if (due === null) break;
      this.#timers.delete(dueId);
      this.now = Math.max(this.now, due.at);
      due.fn();
    }
    this.now = end;
    await settle();
  }
}

/** Let pending promise callbacks run (no wall-clock waiting). */
export async function settle() {
  for (let i = 0; i < 20; i += 1) await Promise.resolve();
}

export class FakePage {
  visibilityState = "visible";
  #listeners = new Map();

  addEventListener(type, fn) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this.#listeners.get(type)?.delete(fn);
  }

  listenerCount(type) {
    return this.#listeners.get(type)?.size ?? 0;
  }

  dispatch(type) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) fn({ type });
  }

  hide() {
    this.visibilityState = "hidden";
    this.dispatch("visibilitychange");
  }

  show() {
    this.visibilityState = "visible";
    this.dispatch("visibilitychange");
  }
}

/** Builds a WebSocket constructor whose instances the test drives by hand. */
export function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    readyState = 0;
    sent = [];
    closedWith = null;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;

    constructor(url) {
      this.url = url;
      sockets.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(data));
    }

    close(code = 1000, reason = "") {
      this.closedWith = { code, reason };
      this.readyState = 2;
    }

    // --- driven by the test ---
    serverOpen() {
      this.readyState = 1;
      this.onopen?.({});
    }

    serverSend(message) {
      this.onmessage?.({ data: JSON.stringify({ version: 1, ...message }) });
    }

    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }

    /** Open, then answer the auth frame with welcome. */
    accept(welcome = {}) {
      this.serverOpen();
      this.serverSend({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt: 0, ...welcome });
    }

    sentOfType(type) {
      return this.sent.filter((m) => m.type === type);
    }
  }
  return { FakeWebSocket, sockets };
}

/** A fetch that records requests and answers from a queue of {status, body, etag} or Errors. */
export function fakeFetch() {
  const requests = [];
  const answers = [];
  const fetch = async (url, init) => {
    requests.push({ url, init });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected fetch ${url}`);
    if (answer instanceof Error) throw answer;
    const headers = new Map(Object.entries(answer.etag ? { etag: answer.etag } : {}));
    return {
      status: answer.status,
      ok: answer.status >= 200 && answer.status < 300,
      headers: { get: (name) => headers.get(name.toLowerCase()) ?? null },
      json: async () => answer.body,
    };
  };
  return { fetch, requests, answers };
}

/** A fixed sequence of "random" numbers, cycled. */
export function randomSequence(...values) {
  let i = 0;
  return () => values[i++ % values.length];
}

/** A token expiry that never comes due in a test (2100-01-01). */
export const FAR_FUTURE = 4102444800;

/**
 * A fetch for the SSE transport: each request to an `/sse` URL gets an event stream the test
 * writes to (`push`, `event`, `comment`, `end`); other URLs are answered like fakeFetch.
 */
export function fakeStreamFetch() {
  const streams = [];
  const json = fakeFetch();
  const encoder = new TextEncoder();
  const fetch = async (url, init = {}) => {
    if (!new URL(url).pathname.startsWith("/sse")) return json.fetch(url, init);
    let controller;
    const body = new ReadableStream({
      start(c) {
        controller = c;
      },
    });
    const stream = {
      url,
      init,
      params: new URL(url).searchParams,
      aborted: false,
      ended: false,
      push(text) {
        if (!this.aborted && !this.ended) controller.enqueue(encoder.encode(text));
      },
      event(message) {
        this.push(`data: ${JSON.stringify({ version: 1, ...message })}\n\n`);
      },
      comment() {
        this.push(":\n\n");
      },
      /** The gateway's end of a stream: a `close` event with the code, then the end. */
      close(code, reason = "") {
        this.push(`data: ${JSON.stringify({ type: "close", version: 2, code, reason })}\n\n`);
        this.end();
      },
      end() {
        if (this.aborted || this.ended) return;
        this.ended = true;
        controller.close();
      },
      /** Accept: welcome, then `subscribed` for each game of the URL. */
      accept(welcome = {}) {
        this.event({ type: "welcome", userId: "7", heartbeatMs: 20000, expiresAt: FAR_FUTURE, ...welcome });
        for (const id of this.games()) this.event({ type: "subscribed", gameId: id });
      },
      games() {
        return (this.params.get("games") || "").split(",").filter(Boolean).map(Number);
      },
    };
    streams.push(stream);
    init.signal?.addEventListener("abort", () => {
      stream.aborted = true;
      try {
        controller.error(new DOMException("aborted", "AbortError"));
      } catch {
        // already closed
      }
    });
    const answer = stream.refuse;
    if (answer) return answer;
    return { status: 200, ok: true, headers: { get: () => "text/event-stream" }, body };
  };
  return { fetch, streams, answers: json.answers, requests: json.requests };
}

/**
 * A client's whole environment made of the fakes above: a virtual clock, a page, a scripted
 * WebSocket class and the given fetch double (`fakeFetch()` or `fakeStreamFetch()`).
 */
export function fakeWorld(http) {
  const clock = new FakeClock();
  const page = new FakePage();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const environment = {
    WebSocket: FakeWebSocket,
    fetch: http.fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: () => clock.now,
    random: () => 0.5,
    window: page,
    document: page,
  };
  return { clock, page, sockets, http, environment };
}
