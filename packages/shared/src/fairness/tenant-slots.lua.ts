/**
 * Lua scripts of a tenant's `max_concurrency`: its running jobs are a sorted set of run id ->
 * expiry (Redis ms), so a worker that dies without releasing frees its slots when they expire.
 * Times come from Redis (TIME), shared by every worker.
 */

/** A waiting set no job was added to for this long is dropped (its jobs woke on their own). */
const WAITING_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * tenant-slot-take — a run of one of the tenant's jobs starts: forget expired runs; a run already
 * holding a slot keeps it; else take one unless `max` are taken. A job refused goes on the
 * tenant's waiting set (woken by tenant-slot-release); a job that takes a slot leaves it.
 * KEYS: 1 the tenant's running set, 2 its waiting set
 * ARGV: 1 run id (job id and lock token), 2 max, 3 hold ms (the slot expires unless renewed within
 *       it), 4 job id, 5 the job's order among the waiting (its BullMQ priority: lower first)
 * Returns: 1 taken (or kept), 0 refused.
 */
export const TENANT_SLOT_TAKE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ${WAITING_TTL_MS})
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%d', now + hold), ARGV[1])
redis.call('PEXPIRE', KEYS[1], hold)
redis.call('ZREM', KEYS[2], ARGV[4])
return 1
`;

/**
 * tenant-slot-release — a run ends: its slot is freed, and the first of the tenant's waiting jobs
 * (if any) is handed back to be woken. Ids of jobs no longer waiting (cancelled, removed, or run
 * since on their own: in neither the queue's delayed set nor its active list, where a job refused
 * a moment ago still is) are dropped on the way, up to 50 per release.
 * KEYS: 1 the tenant's running set, 2 its waiting set, 3 the completions queue's delayed set,
 *       4 its active list
 * ARGV: 1 run id
 * Returns: the job id to wake, or false.
 */
export const TENANT_SLOT_RELEASE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
for _ = 1, 50 do
  local first = redis.call('ZPOPMIN', KEYS[2])
  local id = first[1]
  if not id then return false end
  if redis.call('ZSCORE', KEYS[3], id) or redis.call('LPOS', KEYS[4], id) then return id end
end
return false
`;

/**
 * tenant-slot-renew — a running job keeps its slot for another `hold` ms (only if it still has it).
 * KEYS: 1 the tenant's running set
 * ARGV: 1 run id, 2 hold ms
 * Returns: 1 renewed, 0 the slot had gone.
 */
export const TENANT_SLOT_RENEW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[2])
local renewed = redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%d', now + hold), ARGV[1])
if renewed == 1 then redis.call('PEXPIRE', KEYS[1], hold) end
return renewed
`;
