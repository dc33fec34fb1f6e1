import { randomUUID } from "node:crypto";
import type { Clock, Keys, Logger } from "@cascade/shared";
import { SettleBatch } from "./settle-batch.js";

/** Sends one settle.lua call; rejects when Redis did not answer it. */
export type SendSettlement = (keys: string[], spec: string) => Promise<unknown>;

/** First wait before a refused batch is sent again; it doubles on each refusal, up to the cap. */
const RETRY_FIRST_MS = 100;
const RETRY_CAP_MS = 5_000;
/** How long close() keeps trying to write what is pending before it gives up (and says so). */
export const CLOSE_WAIT_MS = 5_000;

/**
 * The money side of settling (budget corrections, lease give-backs, tpm refunds, usage records),
 * written to Redis in batches, one batch at a time, and never dropped:
 *
 * - A batch whose script call fails (a Redis blip, a failover, a refused script) is kept, sealed,
 *   and sent again after 100 ms, doubling to 5 s, until Redis takes it; settlements that arrive
 *   meanwhile gather in the next batch, so memory stays bounded by the keys involved.
 * - A failed call may still have run (its answer was lost, or ioredis re-sent it after a
 *   reconnect). Each batch carries this process's id and a sequence number; settle.lua records the
 *   last sequence it applied for the process and skips one it has seen, so a batch sent twice is
 *   applied once. Batches are sent strictly in order, which is what makes one number enough.
 */
export class SettleQueue {
  /** Settlements gathering for the next batch. */
  pending = new SettleBatch();
  private sealed: { batch: SettleBatch; keys: string[]; spec: string } | undefined;
  private sequence = 0;
  /** A batch was dropped (its script failed): not everything was written. */
  private dropped = false;
  private refusals = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly ledgerKey: string;

  constructor(
    private readonly send: SendSettlement,
    keys: Keys,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.ledgerKey = keys.settleLedger(randomUUID());
  }

  /** True while a refused batch waits to be sent again (a new flush would only add load). */
  get backingOff(): boolean {
    return this.retryTimer !== undefined;
  }

  /**
   * Writes what is pending (after any sealed batch). Resolves once written, or once Redis refused
   * and a retry is scheduled; never rejects.
   */
  flush(): Promise<void> {
    if (this.retryTimer) return this.running ?? Promise.resolve();
    const previous = this.running ?? Promise.resolve();
    const next = previous.then(() => this.drain());
    this.running = next;
    void next.finally(() => {
      if (this.running === next) this.running = undefined;
    });
    return next;
  }

  private backoffMs(): number {
    return Math.min(RETRY_CAP_MS, RETRY_FIRST_MS * 2 ** Math.max(0, this.refusals - 1));
  }

  private async drain(): Promise<void> {
    // A refused batch waits for its retry timer: flushes queued behind the refused send must not
    // each send it again at once (a storm on a Redis that is just coming back).
    if (this.retryTimer) return;
    while (true) {
      if (!this.sealed) {
        if (this.pending.size === 0) return;
        const batch = this.pending;
        this.pending = new SettleBatch();
        this.sequence += 1;
        this.sealed = { batch, ...batch.toScript({ key: this.ledgerKey, sequence: this.sequence }) };
      }
      try {
        await this.send(this.sealed.keys, this.sealed.spec);
        this.sealed = undefined;
        this.refusals = 0;
      } catch (error) {
        if (isScriptError(error)) {
          // The script itself failed on this batch: sending it again would fail again and hold
          // every later batch behind it. Say exactly what is dropped, and go on.
          this.logger.error(
            { err: (error as Error).message, dropped: this.sealed?.batch.summary() },
            "settle script failed on a batch; dropped it",
          );
          this.sealed = undefined;
          this.dropped = true;
          continue;
        }
        this.refusals += 1;
        const waitMs = this.backoffMs();
        this.logger.error(
          { err: (error as Error).message, retry_in_ms: waitMs, refusals: this.refusals },
          "could not settle a batch of calls; it will be sent again",
        );
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.flush();
        }, waitMs);
        this.retryTimer.unref();
        return;
      }
    }
  }

  /**
   * Writes everything pending, retrying refusals, for at most `waitMs`; then gives up, logging
   * the money that could not be written (on shutdown).
   */
  /** Resolves true once everything was written, false when it gave up (or a batch was dropped). */
  async close(waitMs = CLOSE_WAIT_MS): Promise<boolean> {
    const deadline = this.clock.now() + waitMs;
    const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
    while ((this.sealed || this.pending.size > 0) && this.clock.now() < deadline) {
      if (this.retryTimer) {
        // Keep the backoff (a refusing Redis gets no storm), but within the bound.
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        await sleep(Math.min(this.backoffMs(), deadline - this.clock.now()));
        continue;
      }
      // A call that hangs (Redis unreachable, commands queued) must not hold shutdown either.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - this.clock.now()));
      });
      await Promise.race([this.flush(), bound]);
      clearTimeout(timer);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.sealed || this.pending.size > 0) {
      this.logger.error(
        { unwritten: this.sealed?.batch.summary(), pending: this.pending.summary() },
        "gave up settling calls on shutdown: Redis did not take them in time",
      );
      return false;
    }
    return !this.dropped;
  }
}

/** A Lua runtime error in settle.lua (a reply error naming the script), as opposed to Redis being away. */
function isScriptError(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === "ReplyError" &&
    /user_script|Error running script|ERR.*script/i.test(error.message) &&
    !/NOSCRIPT|BUSY|LOADING|READONLY|OOM|MASTERDOWN|CLUSTERDOWN/.test(error.message)
  );
}
