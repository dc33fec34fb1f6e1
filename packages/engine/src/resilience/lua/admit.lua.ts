import {
  BREAKER_FIELDS,
  BREAKER_LOG_LENGTH,
  BREAKER_WINDOW_KINDS,
  BUCKET_FIELDS,
  COOLDOWN_FIELDS,
  PRUNE_STATS_LUA,
  STATS_KINDS,
} from "@cascade/shared";

/**
 * admit.lua — may this hop call its provider now? One round trip checks, all or nothing:
 * circuit breakers, 429 cooldowns, rpm/tpm token buckets and spend budgets, and on success
 * takes what the call needs (bucket tokens, a budget reservation, a half-open probe lease).
 *
 * Hash field names are interpolated from @cascade/shared (resilience/redis-shape.ts), which the
 * API's status view parses with the same names.
 *
 * KEYS: every key named by index in the spec (breaker state + window, cooldowns, buckets, budgets, stats).
 * ARGV[1]: JSON spec, the same for every call of one provider/model/tenant/user (cached by the caller) {
 *   breakers: [{ state, window, window_ms, lease_ms }],   -- state/window are KEYS indexes
 *   cooldowns: [keyIndex],
 *   buckets: [{ key, rate, capacity, tpm }],               -- rate in tokens per ms; tpm buckets take
 *                                                            ARGV[2] tokens, rpm buckets 1
 *   budgets: [{ key, cap, ttl_s }],                         -- each reserves ARGV[3] USD
 *   stats: [keyIndex]                                       -- per-minute call/skip counters
 * }
 * ARGV[2]: tokens this call reserves (prompt estimate + max_tokens); ARGV[3]: its estimated cost;
 * ARGV[4]: comma-separated amounts the worker would like to hold locally (a lease, see below), one
 *          per bucket then one per budget, 0 for none.
 * ARGV[5]: reserve_ms: how long the caller may wait for its rpm tokens. When rpm buckets are all
 *          that is short and their next tokens come within this, the call takes a place in line:
 *          the short rpm buckets go into debt for it (each later caller lines up behind), nothing
 *          else is taken, and the reply says when to call (see Returns). 0: no place in line.
 * ARGV[6]: "" or "<due_ms>:<i,j>": the call holds a place in line, due at due_ms (Redis time), on
 *          the rpm buckets at positions i, j of spec.buckets: those are not asked again; before
 *          due_ms the call is told to wait on (a worker whose clock runs ahead, or a job promoted
 *          early, never calls before its slot); a call later than its bucket's burst covers
 *          (capacity / rate past due_ms) is asked for a token again, so a stalled worker's
 *          booked calls never reach the provider bunched together.
 * Leases: besides what the call needs, each bucket and budget hands out up to that much more when
 * it is there to spare; the worker admits its next calls
 * from them without a round trip. Taken tokens count as used (a lease can only under-use a limit);
 * unused budget is given back when the lease ends.
 * Time comes from Redis TIME, so every worker shares one clock.
 * Returns: { 1, probes, leases, probe_until, half_opened, streaks } admitted, probes = comma-separated
 *          indexes of breakers whose probe this is, leases = comma-separated extra tokens per bucket
 *          then extra USD per budget, probe_until = the probe lease's end (settle.lua hands back only
 *          that probe), half_opened = the breakers this call moved from open to half_open (a
 *          transition, for metrics and the log; a probe re-granted while half-open is not one),
 *          streaks = the cooldown keys (KEYS indexes) whose cooldown is over but whose 429 streak
 *          is kept: a success of this call ends it (settle.lua's clear_streaks);
 *          { 0, reason, wait_ms, detail } denied: reason circuit_open | rate_limited | over_budget;
 *          wait_ms = -1 when waiting cannot help;
 *          { 2, wait_ms, due_ms, booked } a place in line: call in wait_ms, with ARGV[6] =
 *          "<due_ms>:<booked>".
 */
export const ADMIT_LUA = `
local spec = cjson.decode(ARGV[1])
local tokens_needed = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local wants = {}
for amount in string.gmatch(ARGV[4] or '', '[^,]+') do table.insert(wants, tonumber(amount) or 0) end
local reserve_ms = tonumber(ARGV[5]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = {}
local held_due = 0
if ARGV[6] and ARGV[6] ~= '' then
  local due_text, booked_text = string.match(ARGV[6], '^([^:]*):?(.*)$')
  held_due = tonumber(due_text) or 0
  if now < held_due then return { 2, tostring(held_due - now), tostring(held_due), booked_text } end
  for position in string.gmatch(booked_text, '[^,]+') do held[tonumber(position)] = true end
end
local minute = math.floor(now / 60000)
${PRUNE_STATS_LUA}
local function count_stat(field)
  for _, k in ipairs(spec.stats) do
    -- A new minute's field refreshes the key's lifetime; later increments need not.
    if redis.call('HINCRBY', KEYS[k], minute .. ':' .. field, 1) == 1 then
      redis.call('PEXPIRE', KEYS[k], 600000)
      prune_stats(KEYS[k], minute)
    end
  end
end

local function deny(reason, wait, detail, relook)
  count_stat('${STATS_KINDS.skips}')
  return { 0, reason, tostring(math.floor(wait)), detail or '', relook and tostring(math.ceil(relook)) or '' }
end

-- Phase 1: decide, reading only.
-- Budgets first: a call the money cannot pay for is over_budget whatever else holds it up. Asked
-- after the buckets, it booked a place in line (taking a token) and was refused at its turn, again
-- and again until its deadline, then reported rate_limited.
local budget_spent = {}
local fresh_budgets = {}
for index, b in ipairs(spec.budgets) do
  local raw = redis.call('GET', KEYS[b.key])
  local spent = tonumber(raw) or 0
  -- A call estimated at nothing (no price it can be charged by) fits any budget, overspent or not.
  if cost > 0 and spent + cost > b.cap then
    return deny('over_budget', -1, string.format('%.6f of %.6f USD spent; this call may cost up to %.6f', spent, b.cap, cost))
  end
  fresh_budgets[index] = raw == false
  budget_spent[index] = spent
end

local probes = {}
for index, b in ipairs(spec.breakers) do
  local fields = redis.call('HMGET', KEYS[b.state], '${BREAKER_FIELDS.state}', '${BREAKER_FIELDS.openUntil}', '${BREAKER_FIELDS.probeUntil}', '${BREAKER_FIELDS.forced}')
  local state, open_until, probe_until, forced = fields[1] or 'closed', tonumber(fields[2]) or 0, tonumber(fields[3]) or 0, fields[4]
  if forced == 'open' then
    return deny('circuit_open', -1, 'forced open')
  elseif forced ~= 'closed' then
    if state == 'open' then
      if now < open_until then return deny('circuit_open', open_until - now, 'open') end
      probes[index] = true
    elseif state == 'half_open' then
      if now < probe_until then return deny('circuit_open', probe_until - now, 'probe in flight') end
      probes[index] = true
    end
  end
end

-- A cooldown over whose streak is still kept: this call's success ends the streak (settle.lua).
local streaks = {}
for _, k in ipairs(spec.cooldowns) do
  local fields = redis.call('HMGET', KEYS[k], '${COOLDOWN_FIELDS.until}', '${COOLDOWN_FIELDS.streak}')
  local until_ms = tonumber(fields[1]) or 0
  if now < until_ms then return deny('rate_limited', until_ms - now, 'cooldown') end
  if fields[2] then table.insert(streaks, tostring(k)) end
end

local levels = {}
local line_wait = 0
local booked = {}
for index, b in ipairs(spec.buckets) do
  local fields = redis.call('HMGET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', '${BUCKET_FIELDS.ts}')
  local tokens = tonumber(fields[1])
  local ts = tonumber(fields[2]) or now
  if tokens == nil then tokens = b.capacity end
  -- Debt (places in line taken) is paid back by the refill like any other use.
  tokens = math.min(b.capacity, tokens + math.max(0, now - ts) * b.rate)
  local cost_here = 1
  if b.tpm then cost_here = tokens_needed end
  -- A request larger than the bucket waits for a full bucket, then runs into debt.
  local need = math.min(cost_here, b.capacity)
  -- A booked call later than its bucket's burst covers (a stalled worker) would reach the
  -- provider bunched with the calls booked after it: it asks again instead.
  if held[index] and (now - held_due) * b.rate >= b.capacity then held[index] = nil end
  if not held[index] then
    if tokens < need then
      local wait = math.ceil((need - tokens) / b.rate)
      if not b.tpm and reserve_ms > 0 and wait <= reserve_ms then
        -- Short of rpm only so far: the place in line is decided once every bucket is seen.
        if wait > line_wait then line_wait = wait end
        table.insert(booked, index)
      else
        -- The refill's wait: a tpm bucket's may end sooner, as calls in flight settle and give back
        -- what they reserved and did not use. A debt deeper than the bucket is such reservations
        -- (a call reserving more than the bucket runs it into debt): a caller told to wait looks
        -- again within the time two bucketfuls take to refill (chain/admission.ts).
        if b.tpm then return deny('rate_limited', wait, 'tpm bucket', 2 * b.capacity / b.rate) end
        return deny('rate_limited', wait, 'bucket')
      end
    end
    levels[index] = tokens - cost_here
  end
end

if line_wait > 0 then
  -- A due probe may be booked too: nothing of the breaker is taken now; the call takes the probe
  -- lease when it comes back at its slot (or is told the probe is out, and passed over).
  -- Only the short buckets are booked: the others are asked when the call is due, so a booking
  -- never takes their tokens a minute before the call uses them.
  for _, index in ipairs(booked) do
    local b = spec.buckets[index]
    redis.call('HSET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', levels[index], '${BUCKET_FIELDS.ts}', now)
    redis.call('PEXPIRE', KEYS[b.key], math.ceil((b.capacity - levels[index]) / b.rate) + 60000)
  end
  return { 2, tostring(line_wait), tostring(now + line_wait), table.concat(booked, ',') }
end

-- Phase 2: everything passed; take what the call needs.
local probe_list = {}
local opened_half = {}
local probe_until = 0
for index, b in ipairs(spec.breakers) do
  local key = KEYS[b.state]
  if probes[index] then
    local previous = redis.call('HGET', key, '${BREAKER_FIELDS.state}') or 'closed'
    probe_until = now + b.lease_ms
    redis.call('HSET', key, '${BREAKER_FIELDS.state}', 'half_open', '${BREAKER_FIELDS.probeUntil}', probe_until, '${BREAKER_FIELDS.changedAt}', now)
    if previous ~= 'half_open' then
      table.insert(opened_half, tostring(index))
      local log = cjson.decode(redis.call('HGET', key, '${BREAKER_FIELDS.log}') or '[]')
      table.insert(log, 1, { at = now, from = previous, to = 'half_open', why = 'open time over; letting one probe through' })
      if #log > ${BREAKER_LOG_LENGTH} then table.remove(log) end
      redis.call('HSET', key, '${BREAKER_FIELDS.log}', cjson.encode(log))
    end
    table.insert(probe_list, tostring(index))
  else
    local bucket_ms = math.max(1, math.floor(b.window_ms / 10))
    if redis.call('HINCRBY', KEYS[b.window], math.floor(now / bucket_ms) .. ':${BREAKER_WINDOW_KINDS.calls}', 1) == 1 then
      redis.call('PEXPIRE', KEYS[b.window], b.window_ms * 2)
    end
  end
end
local leases = {}
for index, b in ipairs(spec.buckets) do
  local extra = 0
  if levels[index] ~= nil then
    local want = wants[index] or 0
    if want > 0 and levels[index] > 0 then extra = math.floor(math.min(levels[index], want)) end
    redis.call('HSET', KEYS[b.key], '${BUCKET_FIELDS.tokens}', levels[index] - extra, '${BUCKET_FIELDS.ts}', now)
    redis.call('PEXPIRE', KEYS[b.key], math.ceil(b.capacity / b.rate) + 60000)
  end
  table.insert(leases, tostring(extra))
end
for index, b in ipairs(spec.budgets) do
  -- Budgets lease only while they have room for 1000 more such calls, and at most 5% of what is
  -- left: near its end a budget is admitted call by call, exactly, and no worker hoards it.
  local left = b.cap - budget_spent[index] - cost
  local extra = 0
  if left >= 1000 * cost then extra = math.max(0, math.min(wants[#spec.buckets + index] or 0, left * 0.05)) end
  table.insert(leases, string.format('%.10f', extra))
  redis.call('INCRBYFLOAT', KEYS[b.key], cost + extra)
  if fresh_budgets[index] then redis.call('EXPIRE', KEYS[b.key], b.ttl_s) end
end
count_stat('${STATS_KINDS.calls}')
return { 1, table.concat(probe_list, ','), table.concat(leases, ','), tostring(probe_until), table.concat(opened_half, ','), table.concat(streaks, ',') }
`;
