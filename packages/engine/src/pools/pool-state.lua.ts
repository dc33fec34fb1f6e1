import { BREAKER_FIELDS, BUCKET_FIELDS, COOLDOWN_FIELDS } from "@cascade/shared";

/**
 * pool-state.lua — how each deployment of a pool stands right now, read only, in one round trip,
 * for the hop to pick one by its model's strategy.
 *
 * KEYS: every key named by index in ARGV[1] and ARGV[2].
 * ARGV[1]: JSON [{ state, cooldowns: [index], buckets: [{ key, rate, capacity }], in_flight }] per
 *          deployment; `state` is its breaker's hash, `in_flight` its zset of calls (0: not read).
 * ARGV[2]: index of the pool's latency hash (0: not read); ARGV[3]: JSON [field] per deployment.
 * ARGV[4]: index of the pool's failures hash (0: not read), same fields; ARGV[5]: how long a
 *   failure is remembered, ms.
 * Returns per deployment { blocked, headroom_milli, wait_ms, in_flight, latency_ms,
 *   failed_recently }: blocked = 1 when its breaker is open (its probe not due), half-open with a
 *   probe out, or forced open, or it is cooling down; headroom = the smallest share of any bucket
 *   left (1000 = full, negative for places in line already taken, 1000 without buckets); wait_ms
 *   until its buckets have a token; latency_ms = -1 when none was recorded; failed_recently = 1
 *   when its last failure is less than ARGV[5] ms old (and no success came after it).
 */
export const POOL_STATE_LUA = `
local deployments = cjson.decode(ARGV[1])
local latency_key = tonumber(ARGV[2]) or 0
local latency_fields = cjson.decode(ARGV[3] or '[]')
local failures_key = tonumber(ARGV[4]) or 0
local failure_memory = tonumber(ARGV[5]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for index, d in ipairs(deployments) do
  local blocked = 0
  local f = redis.call('HMGET', KEYS[d.state], '${BREAKER_FIELDS.state}', '${BREAKER_FIELDS.openUntil}', '${BREAKER_FIELDS.probeUntil}', '${BREAKER_FIELDS.forced}')
  local state, open_until, probe_until, forced = f[1] or 'closed', tonumber(f[2]) or 0, tonumber(f[3]) or 0, f[4]
  if forced == 'open' then blocked = 1
  elseif forced ~= 'closed' then
    if state == 'open' and now < open_until then blocked = 1 end
    if state == 'half_open' and now < probe_until then blocked = 1 end
  end
  for _, k in ipairs(d.cooldowns) do
    if now < (tonumber(redis.call('HGET', KEYS[k], '${COOLDOWN_FIELDS.until}')) or 0) then blocked = 1 end
  end
  local headroom = 1
  local wait = 0
  for _, b in ipairs(d.buckets) do
    local fields = redis.call('HMGET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', '${BUCKET_FIELDS.ts}')
    local tokens = tonumber(fields[1]) or b.capacity
    local ts = tonumber(fields[2]) or now
    tokens = math.min(b.capacity, tokens + math.max(0, now - ts) * b.rate)
    if tokens / b.capacity < headroom then headroom = tokens / b.capacity end
    if tokens < 1 then
      local until_token = math.ceil((1 - tokens) / b.rate)
      if until_token > wait then wait = until_token end
    end
  end
  local in_flight = 0
  if d.in_flight > 0 then in_flight = redis.call('ZCOUNT', KEYS[d.in_flight], now, '+inf') end
  local latency = -1
  if latency_key > 0 then latency = tonumber(redis.call('HGET', KEYS[latency_key], latency_fields[index])) or -1 end
  local failed_recently = 0
  if failures_key > 0 then
    local failed_at = tonumber(redis.call('HGET', KEYS[failures_key], latency_fields[index]))
    if failed_at and now - failed_at < failure_memory then failed_recently = 1 end
  end
  out[index] = { blocked, math.floor(headroom * 1000), wait, in_flight, math.floor(latency), failed_recently }
end
return out
`;

/**
 * pool-latency.lua — folds one successful call's latency into its deployment's moving average
 * (EWMA, weight ARGV[3] for the new sample), so `lowest_latency` follows recent calls, and forgets
 * the deployment's last failure: it answers again.
 *
 * KEYS[1]: the pool's latency hash; KEYS[2]: the pool's failures hash. ARGV[1]: the deployment's
 * field; ARGV[2]: latency in ms; ARGV[3]: the new sample's weight (0..1). Returns the new
 * average, rounded.
 */
export const POOL_LATENCY_LUA = `
local previous = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local sample = tonumber(ARGV[2])
local average = sample
if previous then average = previous + (sample - previous) * tonumber(ARGV[3]) end
redis.call('HSET', KEYS[1], ARGV[1], average)
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('HDEL', KEYS[2], ARGV[1])
return math.floor(average)
`;

/**
 * pool-failed.lua — stamps a deployment's failed call with Redis's time, so every worker's
 * `lowest_latency` puts it after the pool's others for a while (pool-state.lua).
 *
 * KEYS[1]: the pool's failures hash. ARGV[1]: the deployment's field. Returns the stamp, ms.
 */
export const POOL_FAILED_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now)
redis.call('PEXPIRE', KEYS[1], 86400000)
return now
`;
