import type { RedisClient } from "../redis/connection.js";

/** How many of the prioritized set's first jobs are looked at. */
export const OLDEST_WAITING_SAMPLE = 50;

/** Where a queue's waiting jobs are: its wait list, its prioritized set, and a job's hash. */
export interface WaitingKeys {
  wait: string;
  prioritized: string;
  job(jobId: string): string;
}

/**
 * Creation time (Unix ms) of the oldest job waiting to run, or undefined when none waits.
 *
 * This is a sample, not an exact minimum: fair share (docs/decisions/0019) orders the prioritized
 * set by tenant round robin and aging, not by age, so the oldest job is not at a known place. The
 * wait list's tail (it is FIFO) and the first OLDEST_WAITING_SAMPLE prioritized jobs are read —
 * the next to run, among them each backlogged tenant's oldest — in two pipelined round trips,
 * however long the queue. A job stuck further back (a less urgent one, aging) is missed until it
 * comes near the front.
 */
export async function oldestWaitingMs(redis: RedisClient, keys: WaitingKeys): Promise<number | undefined> {
  const lookup = redis.pipeline();
  lookup.lrange(keys.wait, -1, -1);
  lookup.zrange(keys.prioritized, "0", String(OLDEST_WAITING_SAMPLE - 1));
  const replies = (await lookup.exec()) ?? [];
  const ids = new Set<string>();
  for (const [error, reply] of replies) {
    if (error) throw error;
    for (const id of (reply as string[] | null) ?? []) if (id) ids.add(id);
  }
  if (ids.size === 0) return undefined;
  const times = redis.pipeline();
  for (const id of ids) times.hget(keys.job(id), "timestamp");
  const stamps = ((await times.exec()) ?? [])
    .map(([, stamp]) => Number(stamp))
    .filter((stamp) => Number.isFinite(stamp) && stamp > 0);
  return stamps.length > 0 ? Math.min(...stamps) : undefined;
}
