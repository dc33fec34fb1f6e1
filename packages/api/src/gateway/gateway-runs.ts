import type { RunSignal } from "@cascade/engine";

/**
 * The gateway requests this process is answering, so that a shutdown can end them with an answer
 * (503, or a stream's error event) before the process exits, rather than cut their connections
 * with none: a caller's SDK then retries at once, on another replica.
 */
export class GatewayRuns {
  private readonly open = new Set<RunSignal>();
  private stopping = false;

  /** A request started (stopped at once when the process is stopping already). */
  add(run: RunSignal): void {
    this.open.add(run);
    if (this.stopping) run.interrupt("shutdown");
  }

  delete(run: RunSignal): void {
    this.open.delete(run);
  }

  /** Stops every open request (their calls are charged as any stopped call is), and any that starts after. */
  stopAll(): void {
    this.stopping = true;
    for (const run of this.open) run.interrupt("shutdown");
  }
}
