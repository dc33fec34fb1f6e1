import {
  BREAKER_FIELDS,
  BREAKER_LOG_LENGTH,
  BREAKER_WINDOW_KINDS,
  BUCKET_FIELDS,
  COOLDOWN_FIELDS,
  PRUNE_STATS_LUA,
  STATS_KINDS,
} from "@cascade/shared";
import { CHARGED } from "./journal.lua.js";

/**
 * settle.lua — after a hop's call: feed the outcome to its breakers, cool down on a 429, settle
 * tpm reservations and budget reservations to the real numbers, and record usage. Runs only when
 * there is something to settle (a failure, a probe, a 429, reserved tokens or money).
 *
 * Probes (a half-open breaker lets one call through): only a success closes the breaker; a
 * breaker failure re-opens it, the open time doubling; a call that says nothing about the
 * provider's health (a 429, another 4xx, a content filter, an aborted call) hands the probe back
 * at once — the breaker stays half-open and the next call probes — but only while the probe is
 * still this call's (probe_until unchanged since admit.lua set it), never another worker's.
 *
 * Hash field names are interpolated from @cascade/shared (resilience/redis-shape.ts), which the
 * API's status view parses with the same names.
 *
 * KEYS: every key named by index in the spec.
 * ARGV[1]: JSON spec {
 *   ledger: { key, sequence } | absent,  -- a batch's writer and number: a sequence at or below the
 *                                            last one applied for that writer is skipped whole
 *                                            (the batch was sent again after its answer was lost)
 *   failure: bool,            -- the call failed with a reason breakers count
 *   breakers: [{ state, window, probe, probe_until, window_ms, min_requests, threshold, open_ms }],
 *                             -- probe: false | 'success' | 'failure' | 'hand_back';
 *                             -- probe_until: what admit.lua set for this probe (hand_back checks it)
 *   cooldown: { keys: [keyIndex], retry_after_ms } | null,   -- set on a 429
 *   clear_streaks: [keyIndex] | absent,  -- a success: these cooldowns' 429 streaks end (the next
 *                                            429 cools down 1 s again), unless a cooldown runs
 *   buckets: [{ key, rate, capacity, refund }],              -- refund may be negative
 *   budgets: [{ key, delta, ttl_s }],
 *   usages: [{ key, fields: { name: amount }, ttl_s }],
 *   windows: [{ key, window_ms, count }],                   -- calls admitted in-process, batched
 *   calls: [{ key, count }],                                -- the same for per-minute stats
 *   stats: [keyIndex],
 *   journal: { key, calls: [[entry, usageKey, cost, ttl_s, estimate, field...]] } | absent,
 *                             -- journaled calls (call-journal.ts): each call's entry is removed
 *                             -- and its cost written; if the entry was a tombstone (a recovery
 *                             -- took this process for dead and charged the estimate), cost − estimate
 *   announce: { channel, message } | absent  -- published when a breaker moved or a cooldown was
 *                                            set, in this script, so that no client can see the
 *                                            new state before the message that invalidates every
 *                                            worker's in-process "known clear" cache is sent
 * }
 * Returns: a list of breaker transitions, "index:to", for logging; after a cooldown was set, last,
 * "cooldown:<ms>": how long from now until the call's cooldowns all end (the 429 answered to a
 * caller says that, not the provider's hint alone, which a streak of 429s outgrows).
 */
export const SETTLE_LUA = `
local spec = cjson.decode(ARGV[1])
if spec.ledger and spec.ledger ~= cjson.null then
  local ledger = KEYS[spec.ledger.key]
  if spec.ledger.sequence <= (tonumber(redis.call('GET', ledger)) or 0) then
    -- Applied before (its answer was lost). A journal entry whose write was sent again after it
    -- is an orphan: removed, or it would be charged again should this process die.
    if spec.journal and spec.journal ~= cjson.null then
      for _, c in ipairs(spec.journal.calls) do redis.call('HDEL', KEYS[spec.journal.key], c[1]) end
    end
    return {}
  end
  redis.call('SET', ledger, spec.ledger.sequence, 'EX', 86400)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local transitions = {}
${PRUNE_STATS_LUA}

local function transition(index, key, to, why, extra)
  local fields = redis.call('HMGET', key, '${BREAKER_FIELDS.state}', '${BREAKER_FIELDS.log}')
  local from = fields[1] or 'closed'
  local log = cjson.decode(fields[2] or '[]')
  table.insert(log, 1, { at = now, from = from, to = to, why = why })
  if #log > ${BREAKER_LOG_LENGTH} then table.remove(log) end
  redis.call('HSET', key, '${BREAKER_FIELDS.state}', to, '${BREAKER_FIELDS.changedAt}', now, '${BREAKER_FIELDS.log}', cjson.encode(log), unpack(extra))
  table.insert(transitions, index .. ':' .. to)
end

for index, b in ipairs(spec.breakers or {}) do
  local key = KEYS[b.state]
  local fields = redis.call('HMGET', key, '${BREAKER_FIELDS.state}', '${BREAKER_FIELDS.reopens}', '${BREAKER_FIELDS.probeUntil}')
  local state, reopens = fields[1] or 'closed', tonumber(fields[2]) or 0
  if b.probe and b.probe ~= cjson.null then
    if state == 'half_open' then
      if b.probe == 'failure' then
        reopens = reopens + 1
        local open_for = math.min(b.open_ms * (2 ^ reopens), 16 * b.open_ms)
        transition(index, key, 'open', 'probe failed', { '${BREAKER_FIELDS.openUntil}', now + open_for, '${BREAKER_FIELDS.reopens}', reopens, '${BREAKER_FIELDS.probeUntil}', 0 })
      elseif b.probe == 'success' then
        transition(index, key, 'closed', 'probe succeeded', { '${BREAKER_FIELDS.reopens}', 0, '${BREAKER_FIELDS.probeUntil}', 0, '${BREAKER_FIELDS.openUntil}', 0 })
        redis.call('DEL', KEYS[b.window])
      elseif tonumber(fields[3]) == b.probe_until then
        redis.call('HSET', key, '${BREAKER_FIELDS.probeUntil}', 0)
      end
    end
  elseif spec.failure and state == 'closed' then
    local bucket_ms = math.max(1, math.floor(b.window_ms / 10))
    local current = math.floor(now / bucket_ms)
    redis.call('HINCRBY', KEYS[b.window], current .. ':${BREAKER_WINDOW_KINDS.failures}', 1)
    redis.call('PEXPIRE', KEYS[b.window], b.window_ms * 2)
    local counts = redis.call('HGETALL', KEYS[b.window])
    local requests, failures = 0, 0
    for i = 1, #counts, 2 do
      local bucket, kind = string.match(counts[i], '^(%d+):(%a)$')
      bucket = tonumber(bucket)
      if bucket and bucket > current - 10 then
        if kind == '${BREAKER_WINDOW_KINDS.calls}' then requests = requests + tonumber(counts[i + 1]) else failures = failures + tonumber(counts[i + 1]) end
      elseif bucket then
        redis.call('HDEL', KEYS[b.window], counts[i])
      end
    end
    if requests >= b.min_requests and failures / requests >= b.threshold then
      transition(index, key, 'open', string.format('%d of %d calls failed', failures, requests), { '${BREAKER_FIELDS.openUntil}', now + b.open_ms, '${BREAKER_FIELDS.probeUntil}', 0 })
      redis.call('DEL', KEYS[b.window])
    end
  end
end

local cooled = spec.cooldown ~= cjson.null and spec.cooldown ~= nil
local cooled_ms = 0
if cooled then
  for _, k in ipairs(spec.cooldown.keys) do
    local fields = redis.call('HMGET', KEYS[k], '${COOLDOWN_FIELDS.until}', '${COOLDOWN_FIELDS.streak}')
    local streak = (tonumber(fields[2]) or 0) + 1
    local wait = spec.cooldown.retry_after_ms
    if wait == cjson.null or wait == nil then wait = math.min(1000 * (2 ^ (streak - 1)), 60000) end
    local until_ms = math.max(tonumber(fields[1]) or 0, now + wait)
    cooled_ms = math.max(cooled_ms, until_ms - now)
    redis.call('HSET', KEYS[k], '${COOLDOWN_FIELDS.until}', until_ms, '${COOLDOWN_FIELDS.streak}', streak)
    -- The streak is forgotten a minute after the cooldown ends: later 429s start again at 1 s.
    redis.call('PEXPIRE', KEYS[k], (until_ms - now) + 60000)
  end
end

for _, k in ipairs(spec.clear_streaks or {}) do
  -- A 429 since this call's admission may have started a cooldown: that one and its streak stay.
  if (tonumber(redis.call('HGET', KEYS[k], '${COOLDOWN_FIELDS.until}')) or 0) <= now then redis.call('DEL', KEYS[k]) end
end

for _, b in ipairs(spec.buckets or {}) do
  local fields = redis.call('HMGET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', '${BUCKET_FIELDS.ts}')
  local tokens = tonumber(fields[1]) or b.capacity
  local ts = tonumber(fields[2]) or now
  tokens = math.min(b.capacity, tokens + math.max(0, now - ts) * b.rate + b.refund)
  redis.call('HSET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', tokens, '${BUCKET_FIELDS.ts}', now)
  redis.call('PEXPIRE', KEYS[b.key], math.ceil(b.capacity / b.rate) + 60000)
end

for _, b in ipairs(spec.budgets or {}) do
  if b.delta ~= 0 then
    redis.call('INCRBYFLOAT', KEYS[b.key], b.delta)
    -- admit.lua gives a budget key its lifetime; a correction that re-creates a key deleted
    -- meanwhile (an operator's reset, a lost key) must not leave it living for ever.
    if b.ttl_s and redis.call('TTL', KEYS[b.key]) == -1 then redis.call('EXPIRE', KEYS[b.key], b.ttl_s) end
  end
end

for _, usage in ipairs(spec.usages or {}) do
  for field, amount in pairs(usage.fields) do
    redis.call('HINCRBYFLOAT', KEYS[usage.key], field, amount)
  end
  redis.call('EXPIRE', KEYS[usage.key], usage.ttl_s)
end

if spec.journal and spec.journal ~= cjson.null then
  local journal = KEYS[spec.journal.key]
  local sums = {}
  for _, c in ipairs(spec.journal.calls) do
    -- A call a recovery charged its estimate (this process was taken for dead: its entry is a
    -- tombstone) is brought to its real cost, as its budget is. An entry that is not there (its
    -- write failed, or Redis lost it) is no charge: the call costs what it cost.
    local amount = c[3]
    if redis.call('HGET', journal, c[1]) == '${CHARGED}' then amount = c[3] - c[5] end
    redis.call('HDEL', journal, c[1])
    if amount ~= 0 then
      local sum = sums[c[2]]
      if not sum then sum = { ttl_s = c[4], fields = {} }; sums[c[2]] = sum end
      for i = 6, #c do sum.fields[c[i]] = (sum.fields[c[i]] or 0) + amount end
    end
  end
  for key, sum in pairs(sums) do
    for field, amount in pairs(sum.fields) do redis.call('HINCRBYFLOAT', KEYS[key], field, amount) end
    redis.call('EXPIRE', KEYS[key], sum.ttl_s)
  end
end

for _, w in ipairs(spec.windows or {}) do
  local bucket_ms = math.max(1, math.floor(w.window_ms / 10))
  redis.call('HINCRBY', KEYS[w.key], math.floor(now / bucket_ms) .. ':${BREAKER_WINDOW_KINDS.calls}', w.count)
  redis.call('PEXPIRE', KEYS[w.key], w.window_ms * 2)
end

if spec.calls and #spec.calls > 0 then
  local minute = math.floor(now / 60000)
  for _, c in ipairs(spec.calls) do
    if redis.call('HINCRBY', KEYS[c.key], minute .. ':${STATS_KINDS.calls}', c.count) == c.count then
      prune_stats(KEYS[c.key], minute)
    end
    redis.call('PEXPIRE', KEYS[c.key], 600000)
  end
end

if spec.failure then
  local minute = math.floor(now / 60000)
  for _, k in ipairs(spec.stats) do
    if redis.call('HINCRBY', KEYS[k], minute .. ':${STATS_KINDS.errors}', 1) == 1 then prune_stats(KEYS[k], minute) end
    redis.call('PEXPIRE', KEYS[k], 600000)
  end
end

if spec.announce and spec.announce ~= cjson.null and (#transitions > 0 or cooled) then
  redis.call('PUBLISH', spec.announce.channel, spec.announce.message)
end
if cooled then table.insert(transitions, 'cooldown:' .. cooled_ms) end
return transitions
`;
