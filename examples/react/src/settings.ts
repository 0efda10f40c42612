// What the page URL chooses. `?user=N` stands for the signed-in user (Nommie's session);
// every choice about how the client runs is read here and passed down from one place.

export interface PageSettings {
  /** The demo seat's user id, "1" to "4". */
  user: string;
  // Delta snapshots (protocol v2) add their switch here, e.g. `delta: boolean` read from
  // `?delta=on|off`; gamesync.ts passes it to the client's options, and the browser tests
  // open the page with it (`open_as(..., delta="on")`).
}

export function readPageSettings(search: string): PageSettings {
  const params = new URLSearchParams(search);
  return { user: params.get("user") ?? "1" };
}
