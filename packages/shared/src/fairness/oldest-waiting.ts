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

const OLDEST_PARKED_COMMAND = "cascadeOldestParked";

/**
 * KEYS[1]: a queue's delayed set. ARGV: the prefix of its jobs' hashes, the exact bound, the sample
 * size, the windows. Returns since when (ms) the longest waiting job there has waited: one that
 * has not started (a worker took it and parked it for its tenant's max_concurrency or a limit: no
 * attempt in its progress) since its creation; one that has started, since it became due (a job
 * handed back at a worker's shutdown, due at once, or one whose wait between tries is over, which
 * waits for a worker to take it: with no worker running, nothing promotes it), not while its wait
 * between tries lasts. The set is scored by when each job is due (ms × 4096 + a counter, BullMQ's
 * encoding), not by age: every job is read up to the exact bound; beyond, its front (the most
 * overdue), its end and windows across it.
 */
const OLDEST_PARKED_LUA = `
local key = KEYS[1]
local prefix = ARGV[1]
local exact = tonumber(ARGV[2])
local sample = tonumber(ARGV[3])
local windows = tonumber(ARGV[4])
local size = redis.call('ZCARD', key)
if size == 0 then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local oldest = nil
local function consider(entries)
  for i = 1, #entries, 2 do
    local fields = redis.call('HMGET', prefix .. entries[i], 'timestamp', 'progress')
    local since = tonumber(fields[1])
    -- Started: an attempt in its progress (JSON.stringify's, so '"attempts":[{' when it has one);
    -- read as text, not decoded: a job's progress holds up to its attempts' messages.
    local progress = fields[2]
    if progress and string.find(progress, '"attempts":[{', 1, true) then
      local due = math.floor(tonumber(entries[i + 1]) / 4096)
      if due <= now then since = due else since = nil end
    end
    if since and (oldest == nil or since < oldest) then oldest = since end
  end
end
if size <= exact then
  consider(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'))
else
  consider(redis.call('ZRANGE', key, 0, sample - 1, 'WITHSCORES'))
  for w = 1, windows do
    local start = math.floor(size * w / (windows + 1))
    consider(redis.call('ZRANGE', key, start, start + sample - 1, 'WITHSCORES'))
  end
  consider(redis.call('ZRANGE', key, -sample, -1, 'WITHSCORES'))
end
if oldest == nil then return false end
return string.format('%.0f', oldest)
`;

/** Where a queue's waiting jobs are: its wait list, its prioritized set, and a job's hash. */
export interface WaitingKeys {
  wait: string;
  prioritized: string;
  job(jobId: string): string;
  /**
   * The completions queue's delayed set, whose jobs that have not started wait too (status
   * `queued`: parked for a tenant's max_concurrency or a limit). Left out for the webhooks queue,
   * whose delayed deliveries wait for a retry on its schedule.
   */
  delayed?: string;
}

/**
 * Creation time (Unix ms) of the oldest job waiting to run, or undefined when none waits.
 *
 * Fair share (docs/decisions/0019) orders the prioritized set by priority, tenant round robin and
 * aging, not by age: a less urgent job enqueued first waits behind every more urgent one enqueued
 * after it. One script reads the set's scores (all of them up to OLDEST_WAITING_EXACT jobs; beyond,
 * its front, its end, windows across it and each priority band's start) for the first added job, and returns it with the
 * front's jobs (a job promoted from the delayed set was added late but created early); the wait
 * list's tail (it is FIFO) is read beside it, and the delayed set's jobs that have not started
 * (`delayed`). Two pipelined round trips, however long the queue.
 */
export async function oldestWaitingMs(redis: RedisClient, keys: WaitingKeys): Promise<number | undefined> {
  if (!(OLDEST_COMMAND in redis))
    redis.defineCommand(OLDEST_COMMAND, { numberOfKeys: 1, lua: OLDEST_PRIORITIZED_LUA });
  if (keys.delayed && !(OLDEST_PARKED_COMMAND in redis))
    redis.defineCommand(OLDEST_PARKED_COMMAND, { numberOfKeys: 1, lua: OLDEST_PARKED_LUA });
  const lookup = redis.pipeline();
  const scripts = lookup as unknown as Record<string, (...args: Array<string | number>) => unknown>;
  lookup.lrange(keys.wait, -1, -1);
  scripts[OLDEST_COMMAND]?.(
    keys.prioritized,
    OLDEST_WAITING_EXACT,
    OLDEST_WAITING_SAMPLE,
    OLDEST_WAITING_WINDOWS,
  );
  if (keys.delayed)
    scripts[OLDEST_PARKED_COMMAND]?.(
      keys.delayed,
      keys.job(""),
      OLDEST_WAITING_EXACT,
      OLDEST_WAITING_SAMPLE,
      OLDEST_WAITING_WINDOWS,
    );
  const replies = (await lookup.exec()) ?? [];
  const ids = new Set<string>();
  for (const [error, reply] of replies.slice(0, 2)) {
    if (error) throw error;
    for (const id of (reply as string[] | null) ?? []) if (id) ids.add(id);
  }
  const stamps: number[] = [];
  const [parkedError, parked] = replies[2] ?? [null, null];
  if (parkedError) throw parkedError;
  if (parked) stamps.push(Number(parked));
  if (ids.size > 0) {
    const times = redis.pipeline();
    for (const id of ids) times.hget(keys.job(id), "timestamp");
    for (const [, stamp] of (await times.exec()) ?? []) stamps.push(Number(stamp));
  }
  const valid = stamps.filter((stamp) => Number.isFinite(stamp) && stamp > 0);
  return valid.length > 0 ? Math.min(...valid) : undefined;
}
