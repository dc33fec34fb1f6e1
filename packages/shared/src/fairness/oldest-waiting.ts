import type { RedisClient } from "../redis/connection.js";

import { FAIR_UNITS } from "./fair-share-numbers.js";

/** How many of the prioritized set's first jobs are looked at (and the size of each window read beyond them). */
export const OLDEST_WAITING_SAMPLE = 50;
/**
 * Up to this many prioritized jobs, every one is read (~0.7 ms of Redis at 1,000; 3.5 ms at
 * 5,000, too long for a read that runs every few seconds); beyond, windows where old jobs wait.
 */
export const OLDEST_WAITING_EXACT = 1_000;
/** Windows read, evenly spaced, across a prioritized set larger than OLDEST_WAITING_EXACT. */
const OLDEST_WAITING_WINDOWS = 5;

const OLDEST_COMMAND = "cascadeOldestPrioritized";

/**
 * KEYS[1]: a queue's prioritized set. ARGV: the exact bound, the sample size, the windows.
 * Returns the ids of the set's first `sample` jobs and of the first added job among those read:
 * BullMQ's score is priority × 2^32 + a counter incremented by every add (fair share keeps the
 * counter when it re-tags), so the lowest counter is the earliest added.
 *
 * Past the exact bound: the front, the end, windows across the set, and both sides of each less
 * urgent priority's band start. Fair share tags a priority-p job V + (p − 1) × gap (V its tenant's
 * virtual time then, at most the head's tag since), so the first added job of a band waits near
 * head + (p − 1) × gap: just below it (added when the head was lower) or just above.
 */
const OLDEST_PRIORITIZED_LUA = `
local key = KEYS[1]
local exact = tonumber(ARGV[1])
local sample = tonumber(ARGV[2])
local windows = tonumber(ARGV[3])
local size = redis.call('ZCARD', key)
if size == 0 then return {} end
local step = ${FAIR_UNITS.scoreStep}
local gap = ${FAIR_UNITS.gap}
local first_id = nil
local first_counter = nil
local function consider(flat)
  for i = 1, #flat, 2 do
    local counter = tonumber(flat[i + 1]) % step
    if first_counter == nil or counter < first_counter then
      first_counter = counter
      first_id = flat[i]
    end
  end
  return flat
end
local function read(start, stop)
  return consider(redis.call('ZRANGE', key, start, stop, 'WITHSCORES'))
end
local front = read(0, sample - 1)
if size > sample then
  if size <= exact then
    read(sample, -1)
  else
    for w = 1, windows do
      local start = math.floor(size * w / (windows + 1))
      read(start, start + sample - 1)
    end
    read(-sample, -1)
    local head = math.floor(tonumber(front[2]) / step)
    for k = 1, 9 do
      local band = string.format('%.0f', (head + k * gap) * step)
      consider(redis.call('ZRANGEBYSCORE', key, band, '+inf', 'WITHSCORES', 'LIMIT', 0, sample))
      consider(redis.call('ZREVRANGEBYSCORE', key, '(' .. band, '-inf', 'WITHSCORES', 'LIMIT', 0, sample))
    end
  end
end
local ids = {}
for i = 1, #front, 2 do ids[#ids + 1] = front[i] end
if first_id then ids[#ids + 1] = first_id end
return ids
`;

/** Where a queue's waiting jobs are: its wait list, its prioritized set, and a job's hash. */
export interface WaitingKeys {
  wait: string;
  prioritized: string;
  job(jobId: string): string;
}

/**
 * Creation time (Unix ms) of the oldest job waiting to run, or undefined when none waits.
 *
 * Fair share (docs/decisions/0019) orders the prioritized set by priority, tenant round robin and
 * aging, not by age: a less urgent job enqueued first waits behind every more urgent one enqueued
 * after it. One script reads the set's scores (all of them up to OLDEST_WAITING_EXACT jobs; beyond,
 * its front, its end, windows across it and each priority band's start) for the first added job, and returns it with the
 * front's jobs (a job promoted from the delayed set was added late but created early); the wait
 * list's tail (it is FIFO) is read beside it. Two pipelined round trips, however long the queue.
 */
export async function oldestWaitingMs(redis: RedisClient, keys: WaitingKeys): Promise<number | undefined> {
  if (!(OLDEST_COMMAND in redis))
    redis.defineCommand(OLDEST_COMMAND, { numberOfKeys: 1, lua: OLDEST_PRIORITIZED_LUA });
  const lookup = redis.pipeline();
  lookup.lrange(keys.wait, -1, -1);
  (lookup as unknown as Record<string, (...args: Array<string | number>) => unknown>)[OLDEST_COMMAND]?.(
    keys.prioritized,
    OLDEST_WAITING_EXACT,
    OLDEST_WAITING_SAMPLE,
    OLDEST_WAITING_WINDOWS,
  );
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
