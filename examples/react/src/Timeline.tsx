import { useGameSyncClient } from "@gamesync/client/react";
import type { ConnectionStatus } from "@gamesync/client";
import { useEffect, useState } from "react";

import { describe } from "./StatusBadge";

interface Transition {
  status: ConnectionStatus;
  reason: string;
  at: number;
}

/** Every status transition of the app's client, oldest first (the badge shows only the last). */
export function Timeline() {
  const client = useGameSyncClient();
  const [transitions, setTransitions] = useState<Transition[]>([]);

  useEffect(() => {
    if (!client) return undefined;
    const at = () => Math.round(performance.now());
    setTransitions([{ status: client.status, reason: "", at: at() }]);
    return client.on("status", ({ status, error }) => {
      const reason = error ? describe(error) : "";
      setTransitions((previous) => [...previous.slice(-99), { status, reason, at: at() }]);
    });
  }, [client]);

  return (
    <section className="panel" aria-labelledby="timeline-title">
      <h2 id="timeline-title">Connection timeline</h2>
      <ol id="transitions" className="log">
        {transitions.map((t, index) => (
          <li key={index} data-status={t.status}>
            <span className="muted">{(t.at / 1000).toFixed(1)} s</span> {t.status}
            {t.reason && <span className="muted"> · {t.reason}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}
