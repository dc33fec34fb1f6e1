import type { RedisClient } from "@cascade/shared";
import type { FastifyInstance } from "fastify";
import { withinMs } from "../within-ms.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * False: this route's answers never wait for replicas (the gateway: its answer is the
     * completion itself, not a write a client relies on finding later).
     */
    replicaWait?: boolean;
  }
}

export type ReplicaWaitOutcome = "acked" | "short" | "error";

export interface ReplicaWaitOptions {
  /**
   * A connection of its own: Redis holds every later command of the connection a WAIT was sent
   * on until the WAIT returns, so on the request connection a lagging replica would stall every
   * request, not only the writes that wait for it.
   */
  redis: RedisClient;
  /** The key written before each WAIT (the deployment's hash tag, so on a cluster it lands on its master). */
  markKey: string;
  /** Replicas that must acknowledge (API_REPLICA_ACKS, at least 1). */
  replicas: number;
  /** The most a WAIT blocks (API_REPLICA_WAIT_MS). */
  timeoutMs: number;
  /** Told how each round ended: replicas that acknowledged, or the error. */
  onRound?: (outcome: ReplicaWaitOutcome, detail: { acked?: number; error?: Error }) => void;
}

/** How long the mark key lives: it only has to be written, never read. */
const MARK_TTL_MS = 60_000;
/** A round's WAIT gets this long past its own timeout to answer before the round gives up on it. */
const NO_REPLY_GRACE_MS = 250;

/**
 * Waits until what this process wrote is held by `replicas` replicas (Redis's WAIT), for many
 * requests at once (a group commit, ADR 0027).
 *
 * WAIT counts the writes of the connection it is sent on, and the requests wrote on the API's
 * command connection. So each round first writes a mark on this connection, then WAITs: the
 * replication stream is one ordered log, so a replica that acknowledged the mark holds every
 * write the master had applied before it — the writes of every request that asked before the
 * round was sent (each asks once its own writes were answered).
 *
 * One round at a time: a request that asks while a round is out joins the next one, sent as soon
 * as that round returns. A round whose replicas do not all acknowledge within `timeoutMs` (or that
 * fails) still releases its requests: what they wrote is on the master, and refusing the answer
 * now would only make clients retry a write that happened. It is counted (`onRound`).
 */
export class ReplicaWait {
  /** The round not sent yet: callers join it. */
  private next: Promise<void> | undefined;
  /** The round sent, until its WAIT returns. */
  private out: Promise<void> | undefined;
  /** Replicas the last round saw acknowledge (undefined: it failed). */
  private lastAcked: number | undefined;

  constructor(private readonly options: ReplicaWaitOptions) {}

  /**
   * Resolves once the writes this process made before the call are on the replicas, or within
   * `timeoutMs` of the call either way (a round that waited for the one before it waits only what
   * is left). Never rejects.
   */
  confirm(): Promise<void> {
    this.next ??= this.round(performance.now());
    return this.next;
  }

  /** One round (the startup check): how many replicas acknowledged (undefined: it failed). */
  async probe(): Promise<number | undefined> {
    await this.confirm();
    return this.lastAcked;
  }

  private async round(askedAt: number): Promise<void> {
    // Callers of this turn (or of the time the round before is out) join this round.
    await (this.out ?? new Promise<void>((resolve) => setImmediate(resolve)));
    this.next = undefined;
    // The first caller has waited for the round before: its WAIT takes only what is left (at
    // least 1 ms: WAIT 0 would block without end).
    const left = Math.max(1, Math.round(this.options.timeoutMs - (performance.now() - askedAt)));
    const sent = this.send(left);
    this.out = sent;
    try {
      await sent;
    } finally {
      if (this.out === sent) this.out = undefined;
    }
  }

  private async send(timeoutMs: number): Promise<void> {
    const { redis, markKey, replicas } = this.options;
    let outcome: ReplicaWaitOutcome;
    let detail: { acked?: number; error?: Error };
    try {
      // One pipeline, so one connection (on a cluster, the master of the mark's slot): WAIT has
      // no key of its own and follows the mark.
      const exec = redis
        .pipeline()
        .set(markKey, String(Date.now()), "PX", MARK_TTL_MS)
        .wait(replicas, timeoutMs)
        .exec();
      // Redis ends a WAIT at its timeout; a connection that stalls (its peer gone silent, or not
      // connected yet) would hold the round to the command timeout, so the round gives up here.
      const replies = await withinMs(exec, timeoutMs + NO_REPLY_GRACE_MS);
      const [marked, waited] = replies ?? [];
      const error =
        marked?.[0] ?? waited?.[0] ?? (replies ? undefined : new Error("the WAIT pipeline was discarded"));
      if (error) throw error;
      const acked = Number(waited?.[1]);
      outcome = acked >= replicas ? "acked" : "short";
      detail = { acked };
    } catch (error) {
      outcome = "error";
      detail = { error: error as Error };
    }
    this.lastAcked = detail.acked;
    try {
      this.options.onRound?.(outcome, detail);
    } catch {
      // A metric or a log line failing must not hold up the answers waiting on this round.
    }
  }
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * A write request answered 2xx (a job accepted or cancelled, a file or batch stored, a delivery
 * retried) goes out once the replicas hold what it wrote. Reads, errors and routes that opt out
 * (`config: { replicaWait: false }`) are not held.
 */
export function registerReplicaWait(app: FastifyInstance, wait: ReplicaWait): void {
  app.addHook("onSend", async (request, reply, payload) => {
    if (reply.statusCode >= 300 || !WRITE_METHODS.has(request.method)) return payload;
    if (request.routeOptions.config?.replicaWait === false) return payload;
    await wait.confirm();
    return payload;
  });
}
