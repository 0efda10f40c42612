import type { ConnectionStatus, GameSyncError } from "@gamesync/client";

/** The connection status as a badge, with the reason when the client is not connected. */
export function StatusBadge({ status, error }: { status: ConnectionStatus; error: GameSyncError | null }) {
  const reason = error && status !== "connected" ? describe(error) : "";
  return (
    <span className="status">
      <span id="status" className="badge" data-status={status} role="status" aria-live="polite">
        {status}
      </span>
      {reason && <span id="status-reason" className="reason">{reason}</span>}
    </span>
  );
}

export function describe(error: GameSyncError): string {
  const close = error.closeCode ? ` (close ${error.closeCode})` : "";
  return `${error.code}${close}`;
}
