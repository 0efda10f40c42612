// What the page URL chooses. `?user=N` stands for the signed-in user (Nommie's session);
// every choice about how the client runs is read here and passed down from one place.

export interface PageSettings {
  /** The demo seat's user id, "1" to "4". */
  user: string;
  /** Delta snapshots (protocol 2): `?delta=on` (default off). gamesync.ts passes it on. */
  delta: boolean;
}

export function readPageSettings(search: string): PageSettings {
  const params = new URLSearchParams(search);
  return { user: params.get("user") ?? "1", delta: params.get("delta") === "on" };
}

/** The page's own URL with other settings (links between users and modes keep the rest). */
export function settingsQuery(settings: PageSettings): string {
  return `?user=${encodeURIComponent(settings.user)}&delta=${settings.delta ? "on" : "off"}`;
}
