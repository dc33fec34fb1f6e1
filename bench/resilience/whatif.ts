/**
 * Bench-only stand-ins for changes to Resilience, to measure what they would gain before anyone
 * changes product code. They reuse the product's admit.lua and settle.lua (through the commands
 * Resilience defines on the connection) with specs built here:
 *
 * - "no-settle": settle() does nothing. Not a design (spend and tpm would never be corrected),
 *   only the upper bound of what taking the settle off the success path can save.
 * - "batched-settle": a plain success (no failure, no probe, no 429, not aborted) is added to an
 *   in-process aggregate (tpm refunds and budget deltas summed per key, usage fields summed) and
 *   settled with one settle.lua call per flush (every FLUSH_MS, or at MAX_BATCH successes).
 *   Everything else settles at once, as today.
 * - "batched": as "batched-settle", and the admissions asked for in one event-loop turn go to
 *   Redis as one admit.lua call whose spec is the union of theirs (bucket costs and budget
 *   amounts summed per key). Denial semantics are not those a real design needs (all or
 *   nothing for the batch; on a denial every request is retried alone), and per-model stats
 *   count one call per batch: this measures cost only, in a bench where nothing is denied.
 */
import type { BenchModules } from "../support/modules.js";
import type { WhatIf } from "./workload.js";

type Worker = import("../../packages/worker/dist/index.js").Resilience;
type HopRequest = import("../../packages/worker/dist/index.js").HopRequest;
type Ticket = import("../../packages/worker/dist/index.js").Ticket;
type CallOutcome = import("../../packages/worker/dist/index.js").CallOutcome;
type Admission = import("../../packages/worker/dist/index.js").Admission;
type Config = import("../../packages/shared/dist/index.js").Config;
type Keys = import("../../packages/shared/dist/index.js").Keys;
type Logger = import("../../packages/shared/dist/index.js").Logger;
type RedisClient = ReturnType<BenchModules["shared"]["createRedis"]>;

export const FLUSH_MS = 20;
export const MAX_BATCH = 500;
const USAGE_TTL_S = 400 * 86_400;

type Defined = {
  cascadeAdmit(numberOfKeys: number, ...args: string[]): Promise<[number, string, string?, string?]>;
  cascadeSettle(numberOfKeys: number, ...args: string[]): Promise<string[]>;
};

export interface WhatIfResilience extends Worker {
  /** Settles whatever is still aggregated; resolves when Redis has it. */
  flush?(): Promise<void>;
}

/** Builds a key list with 1-based indexes, as the Lua scripts want. */
class KeyIndex {
  readonly keys: string[] = [];
  private readonly positions = new Map<string, number>();
  add(key: string): number {
    let position = this.positions.get(key);
    if (position === undefined) {
      this.keys.push(key);
      position = this.keys.length;
      this.positions.set(key, position);
    }
    return position;
  }
}

interface SettleAggregate {
  usageKey: string | undefined;
  buckets: Map<string, { rate: number; capacity: number; refund: number }>;
  budgets: Map<string, { ttl_s: number; delta: number }>;
  usage: Record<string, number>;
}

export function createWhatIfResilience(
  modules: BenchModules,
  whatIf: WhatIf | undefined,
  connection: RedisClient,
  config: Config,
  keys: Keys,
  logger: Logger,
): WhatIfResilience {
  const Base = modules.worker.Resilience;
  if (whatIf === undefined) return new Base(connection, config, keys, logger);
  if (whatIf === "no-settle") {
    return new (class NoSettle extends Base {
      override async settle(): Promise<void> {}
    })(connection, config, keys, logger);
  }
  const commands = connection as unknown as Defined;

  class BatchedSettle extends Base {
    private aggregates = new Map<string, SettleAggregate>();
    private pendingCount = 0;
    private timer: NodeJS.Timeout | undefined;
    private readonly inflight = new Set<Promise<unknown>>();

    override async settle(ticket: Ticket, outcome: CallOutcome): Promise<void> {
      const plain = outcome.reason === undefined && !outcome.aborted && !ticket.breaker.probe;
      if (!plain) return super.settle(ticket, outcome);
      const { request } = ticket;
      const cost = outcome.costUsd ?? 0;
      const used = (outcome.promptTokens ?? 0) + (outcome.completionTokens ?? 0);
      const day = modules.shared.budgetPeriods(Date.now()).dayDate;
      const usageKey = cost > 0 ? keys.usage(request.tenant, day) : undefined;
      const group = usageKey ?? "";
      let aggregate = this.aggregates.get(group);
      if (!aggregate) {
        aggregate = { usageKey, buckets: new Map(), budgets: new Map(), usage: {} };
        this.aggregates.set(group, aggregate);
      }
      for (const bucket of ticket.tpm) {
        const name = ticket.keys[bucket.key - 1] as string;
        const entry = aggregate.buckets.get(name);
        if (entry) entry.refund += bucket.reserved - used;
        else
          aggregate.buckets.set(name, {
            rate: bucket.rate,
            capacity: bucket.capacity,
            refund: bucket.reserved - used,
          });
      }
      for (const budget of ticket.budgets) {
        const name = ticket.keys[budget.key - 1] as string;
        const entry = aggregate.budgets.get(name);
        if (entry) entry.delta += cost - budget.reserved;
        else aggregate.budgets.set(name, { ttl_s: budget.ttl_s, delta: cost - budget.reserved });
      }
      if (cost > 0) {
        const fields = aggregate.usage;
        const add = (field: string) => {
          fields[field] = (fields[field] ?? 0) + cost;
        };
        add("total");
        add(`model:${request.modelId}`);
        if (request.route) add(`route:${request.route}`);
        if (request.user !== undefined) add(`user:${request.user}`);
      }
      this.pendingCount += 1;
      if (this.pendingCount >= MAX_BATCH) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), FLUSH_MS);
    }

    private flushNow(): void {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      const aggregates = this.aggregates;
      this.aggregates = new Map();
      this.pendingCount = 0;
      for (const aggregate of aggregates.values()) {
        const list = new KeyIndex();
        const spec = {
          failure: false,
          breakers: [],
          cooldown: null,
          buckets: [...aggregate.buckets].map(([name, bucket]) => ({ key: list.add(name), ...bucket })),
          budgets: [...aggregate.budgets].map(([name, budget]) => ({ key: list.add(name), ...budget })),
          usage: aggregate.usageKey
            ? { key: list.add(aggregate.usageKey), fields: aggregate.usage, ttl_s: USAGE_TTL_S }
            : null,
          stats: [],
        };
        const call = commands
          .cascadeSettle(list.keys.length, ...list.keys, JSON.stringify(spec))
          .catch((error: Error) => logger.error({ err: error.message }, "batched settle failed"));
        this.inflight.add(call);
        void call.finally(() => this.inflight.delete(call));
      }
    }

    async flush(): Promise<void> {
      if (this.pendingCount > 0) this.flushNow();
      await Promise.all([...this.inflight]);
    }
  }
  if (whatIf === "batched-settle") return new BatchedSettle(connection, config, keys, logger);

  /** Builds a request's spec and ticket exactly as Resilience does, without calling Redis. */
  const captured = { keys: [] as string[], spec: "" };
  const capture = {
    defineCommand() {},
    async cascadeAdmit(numberOfKeys: number, ...args: string[]) {
      captured.keys = args.slice(0, numberOfKeys);
      captured.spec = args[numberOfKeys] as string;
      return [1, ""];
    },
  };
  const builder = new Base(capture as never, config, keys, logger);

  interface Waiting {
    request: HopRequest;
    resolve(admission: Admission): void;
    reject(error: unknown): void;
  }
  interface AdmitSpec {
    breakers: Array<{ state: number; window: number; window_ms: number; lease_ms: number }>;
    cooldowns: number[];
    buckets: Array<{ key: number; rate: number; capacity: number; cost: number }>;
    budgets: Array<{ key: number; cap: number; amount: number; ttl_s: number }>;
    stats: number[];
  }

  class Batched extends BatchedSettle {
    private waiting: Waiting[] = [];

    override admit(request: HopRequest): Promise<Admission> {
      return new Promise((resolve, reject) => {
        this.waiting.push({ request, resolve, reject });
        if (this.waiting.length === 1) setImmediate(() => void this.admitBatch());
      });
    }

    private async admitBatch(): Promise<void> {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const list = new KeyIndex();
        const merged: AdmitSpec = { breakers: [], cooldowns: [], buckets: [], budgets: [], stats: [] };
        const seen = new Map<string, { cost?: number; amount?: number; entry: object }>();
        const tickets: Ticket[] = [];
        for (const item of batch) {
          const admission = await builder.admit(item.request);
          if (!admission.admitted) throw new Error("the spec builder cannot deny");
          tickets.push(admission.ticket);
          const spec = JSON.parse(captured.spec) as AdmitSpec;
          const name = (index: number) => captured.keys[index - 1] as string;
          const global = (index: number) => list.add(name(index));
          for (const breaker of spec.breakers) {
            const id = `breaker ${name(breaker.state)}`;
            if (seen.has(id)) continue;
            const entry = { ...breaker, state: global(breaker.state), window: global(breaker.window) };
            seen.set(id, { entry });
            merged.breakers.push(entry);
          }
          for (const key of [...spec.cooldowns]) {
            const id = `cooldown ${name(key)}`;
            if (!seen.has(id)) {
              seen.set(id, { entry: {} });
              merged.cooldowns.push(global(key));
            }
          }
          for (const bucket of spec.buckets) {
            const id = `bucket ${name(bucket.key)}`;
            const known = seen.get(id)?.entry as AdmitSpec["buckets"][number] | undefined;
            if (known) known.cost += bucket.cost;
            else {
              const entry = { ...bucket, key: global(bucket.key) };
              seen.set(id, { entry });
              merged.buckets.push(entry);
            }
          }
          for (const budget of spec.budgets) {
            const id = `budget ${name(budget.key)}`;
            const known = seen.get(id)?.entry as AdmitSpec["budgets"][number] | undefined;
            if (known) known.amount += budget.amount;
            else {
              const entry = { ...budget, key: global(budget.key) };
              seen.set(id, { entry });
              merged.budgets.push(entry);
            }
          }
          for (const key of spec.stats) {
            const id = `stats ${name(key)}`;
            if (!seen.has(id)) {
              seen.set(id, { entry: {} });
              merged.stats.push(global(key));
            }
          }
        }
        const reply = await commands.cascadeAdmit(list.keys.length, ...list.keys, JSON.stringify(merged));
        if (Number(reply[0]) === 1) {
          batch.forEach((item, index) => {
            item.resolve({ admitted: true, ticket: tickets[index] as Ticket });
          });
          return;
        }
        // Denied as a batch: ask for each alone, with the product's own admit.
        for (const item of batch) super.admit(item.request).then(item.resolve, item.reject);
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
  }
  return new Batched(connection, config, keys, logger);
}
