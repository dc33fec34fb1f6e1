/**
 * Lua scripts of fair share between tenants (docs/decisions/0019-fair-share-on-bullmq-priorities.md).
 * A completion job's BullMQ priority is its start-time fair queuing tag, plus a gap per step of
 * the job's own priority: BullMQ's prioritized set then hands jobs out in weighted round robin
 * across tenants within a priority, and a less urgent job is overtaken by a bounded amount of more
 * urgent work (aging). Numbers are interpolated from fair-share-numbers.ts. All keys share the
 * `{prefix}` hash tag (Redis Cluster); job hashes are `<job key prefix><job id>`, the prefix being
 * `keys.completionJob("")`, as BullMQ's own scripts build them.
 *
 * Fields of the fair clock hash: `v` the virtual clock, `top` the largest tag handed out,
 * `last:<priority>:<tenant>` a tenant's last tag at a priority (whole; its fraction in
 * `frac:<priority>:<tenant>`, which a rebase leaves as it is), `rebased_by` what the last rebase
 * subtracted, `rebases` how many there were, `swept_at` (Redis ms) when the sweep last ran.
 */
import { FAIR_UNITS } from "./fair-share-numbers.js";

const { gap, limit, rebaseAt, scoreStep } = FAIR_UNITS;

/**
 * Subtracts `by` from every priority the queue holds: the prioritized set's scores (keeping each
 * member's low 32-bit counter, so ties keep their order) and those jobs' `priority` fields, the
 * `priority` fields of delayed and active jobs (which re-enter the prioritized set with it), and
 * every tenant's last tag. Nothing drops below 1 (0 would mean "no priority" to BullMQ).
 * Expects locals: clock, prioritized, delayed, active, prefix.
 */
const REBASE_FUNCTION = `
local function shift_hash(id, by)
  local key = prefix .. id
  local current = tonumber(redis.call('HGET', key, 'priority'))
  if current and current > 0 then
    redis.call('HSET', key, 'priority', string.format('%d', math.max(current - by, 1)))
  end
end
local function shift_member(id, score, by)
  local counter = score % ${scoreStep}
  local moved = math.max(math.floor(score / ${scoreStep}) - by, 1)
  redis.call('HSET', prefix .. id, 'priority', string.format('%d', moved))
  return string.format('%.0f', moved * ${scoreStep} + counter)
end
local function rebase(by)
  local members = redis.call('ZRANGE', prioritized, 0, -1, 'WITHSCORES')
  local batch = {}
  for i = 1, #members, 2 do
    batch[#batch + 1] = shift_member(members[i], tonumber(members[i + 1]), by)
    batch[#batch + 1] = members[i]
    if #batch >= 1000 then
      redis.call('ZADD', prioritized, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then redis.call('ZADD', prioritized, unpack(batch)) end
  for _, id in ipairs(redis.call('ZRANGE', delayed, 0, -1)) do shift_hash(id, by) end
  for _, id in ipairs(redis.call('LRANGE', active, 0, -1)) do shift_hash(id, by) end
  local fields = redis.call('HGETALL', clock)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 5) == 'last:' then
      redis.call('HSET', clock, fields[i], string.format('%d', math.max(tonumber(fields[i + 1]) - by, 0)))
    end
  end
  redis.call('HSET', clock, 'rebased_by', string.format('%d', by))
  redis.call('HINCRBY', clock, 'rebases', 1)
end
`;

/**
 * The tags themselves, as a function both scripts below call: `fair_tags(tenant, priority, step,
 * count)` returns the BullMQ priorities of `count` jobs `tenant` enqueues now at `priority`.
 * V (virtual clock) = max(stored v, the tag of the prioritized set's head job), or, when nothing
 * is prioritized, the largest tag handed out (everything handed out has started). The head's tag
 * is its BullMQ priority minus its priority's gap; its priority is read from the start of its data
 * (`{"v":1,"tenant":"…","priority":N`, see fairJobData) — a head written otherwise is passed over.
 * S = max(V, the tenant's last tag at this priority); tag_i = S + i × step; BullMQ priority =
 * min(floor(tag_i) + (priority − 1) × gap, limit). The step is tagUnit / weight, a fraction for
 * most weights: a tenant's last tag is kept as its whole part (`last:`, what a release before
 * this one reads and writes) and its fraction (`frac:<priority>:<tenant>`), and jobs whose tags
 * floor to one integer go in BullMQ's tie order (their add order), so a weight-11 tenant gets 11
 * jobs for a weight-6 one's 6. When V reaches the rebase point, everything is first
 * shifted down by V − 1 (see REBASE_FUNCTION), in the same script.
 * Expects locals: clock, prioritized, delayed, active, prefix.
 */
const TAGS_FUNCTION = `
${REBASE_FUNCTION}
local function fair_tags(tenant, priority, step, count)
  local field = 'last:' .. priority .. ':' .. tenant
  local fraction = 'frac:' .. priority .. ':' .. tenant
  local state = redis.call('HMGET', clock, 'v', 'top', field, fraction)
  local v, top = tonumber(state[1]) or 0, tonumber(state[2]) or 0
  local last = (tonumber(state[3]) or 0) + (tonumber(state[4]) or 0)
  local head = redis.call('ZRANGE', prioritized, 0, 0, 'WITHSCORES')
  if #head == 0 then
    v = math.max(v, top)
  else
    local data = redis.call('HGET', prefix .. head[1], 'data')
    local head_priority = data and tonumber(string.match(data, '^{"v":%d+,"tenant":"[^"\\\\]*","priority":(%d+)'))
    if head_priority then
      v = math.max(v, math.floor(tonumber(head[2]) / ${scoreStep}) - (head_priority - 1) * ${gap})
    end
  end
  if v >= ${rebaseAt} then
    local by = v - 1
    rebase(by)
    v = 1
    top = math.max(top - by, 1)
    last = math.max(last - by, 0)
  end
  local start = math.max(v, last)
  local priorities = {}
  for i = 1, count do
    priorities[i] = math.min(math.floor(start + i * step) + (priority - 1) * ${gap}, ${limit})
  end
  last = math.min(start + count * step, ${limit})
  local whole = math.floor(last)
  redis.call('HSET', clock, 'v', string.format('%d', v), 'top', string.format('%d', math.max(top, whole)),
    field, string.format('%d', whole), fraction, string.format('%.17g', last - whole))
  return priorities
end
`;

/**
 * fair-tags — the BullMQ priorities of `count` jobs one tenant enqueues at one priority, for an
 * add that follows (batch chunks: one call per chunk of up to 500 lines). See TAGS_FUNCTION.
 * KEYS: 1 fair clock, 2 prioritized zset, 3 delayed zset, 4 active list
 * ARGV: 1 job key prefix, 2 tenant, 3 priority (1..10), 4 step, 5 count
 * Returns: the `count` BullMQ priorities, in order.
 */
export const FAIR_TAGS_LUA = `
local clock, prioritized, delayed, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]
${TAGS_FUNCTION}
return fair_tags(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
`;

/**
 * fair-place — puts one job that BullMQ has just added at a placeholder priority at its fair-share
 * tag instead: queued right after BullMQ's add in a MULTI, the fallback of fair-add below
 * (docs/decisions/0021-one-round-trip-per-enqueue.md). The job leaves the
 * prioritized set while its tag is computed (it must not be taken for the head), then goes back
 * with the tag as its priority, keeping BullMQ's counter (the score's low 32 bits), and its hash's
 * `priority` field is set to match — what BullMQ's changePriority and the rebase write — as is the
 * priority in its stored options (JSON), so the job reads back as if it had been added at its
 * tag. A job that is not prioritized at the placeholder (the add found an existing job with this
 * id, or a worker already took it) is left alone and no tag is spent.
 * KEYS: 1 fair clock, 2 prioritized zset, 3 delayed zset, 4 active list
 * ARGV: 1 job key prefix, 2 tenant, 3 priority (1..10), 4 step, 5 job id, 6 placeholder priority
 * Returns: the job's BullMQ priority, or 0 when it was left alone.
 */
export const FAIR_PLACE_LUA = `
local clock, prioritized, delayed, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, job_id, placeholder = ARGV[1], ARGV[5], tonumber(ARGV[6])
${TAGS_FUNCTION}
local score = tonumber(redis.call('ZSCORE', prioritized, job_id))
if not score or math.floor(score / ${scoreStep}) ~= placeholder then return 0 end
redis.call('ZREM', prioritized, job_id)
-- Redis keeps a failed script's writes: should the tag fail, the job goes back where BullMQ put it
-- (at the back of the line) rather than stay out of the set, where it would never run.
local ok, tags = pcall(fair_tags, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), 1)
if not ok then
  redis.call('ZADD', prioritized, string.format('%.0f', score), job_id)
  return redis.error_reply(type(tags) == 'table' and tags.err or tostring(tags))
end
local tag = tags[1]
redis.call('ZADD', prioritized, string.format('%.0f', tag * ${scoreStep} + score % ${scoreStep}), job_id)
local job = prefix .. job_id
-- BullMQ orders by the score and re-adds by the 'priority' field; 'opts' (JSON) is what readers
-- such as bull-board show as the job's priority, so it says the tag too.
local opts = redis.call('HGET', job, 'opts')
local placed = opts and string.gsub(opts, '"priority":' .. placeholder .. '([,}])', '"priority":' .. tag .. '%1', 1)
if placed and placed ~= opts then
  redis.call('HSET', job, 'priority', string.format('%d', tag), 'opts', placed)
else
  redis.call('HSET', job, 'priority', string.format('%d', tag))
end
return tag
`;

/**
 * fair-add — the tags of a batch of jobs, then BullMQ's own add script for a prioritized job (its
 * source as BullMQ loaded it on the connection, `bullmqAddLua`, run unchanged inside a function)
 * once per job, with each job's tag as its priority: the adds of one event-loop turn and their tags
 * in one script call, one round trip (docs/decisions/0021-one-round-trip-per-enqueue.md), and
 * nothing BullMQ's add does (events, markers, the priority counter, duplicates) copied here.
 *
 * The jobs go in groups of one tenant, priority and step, in the order each group first appears
 * in the batch; each group's tags come from one `fair_tags` call (consecutive tags, in batch
 * order), and its jobs are added before the next group's tags are computed, so the batch gets the
 * tags one add at a time in that order would give (the next group sees these jobs as the head of
 * the line, and a rebase it runs shifts them). A job's tag is computed before its add, so it is
 * never in the prioritized set at another priority, and BullMQ itself writes the tag into its
 * score, its `priority` field and its stored options: BullMQ's packed options are unpacked, given
 * the tag as `priority`, and packed again before its script reads them (the table BullMQ's script
 * sees is the one it would have unpacked, with that one field changed). A job whose id already
 * exists, or came earlier in the batch, is left to BullMQ's duplicate handling and no tag is spent
 * on it. Should a group's tags fail (a fair clock of the wrong type), its jobs are still added, at
 * the priority BullMQ was given (FAIR_PLACEHOLDER_PRIORITY: the back of its line), rather than
 * failing their enqueues. Each job's add runs on its own (pcall): one that fails answers its own
 * error, and the others are added.
 * KEYS: BullMQ's add's `bullmqKeys` keys (the same for every job of a queue), then 1 fair clock,
 *   2 prioritized zset, 3 delayed zset, 4 active list
 * ARGV: 1 job key prefix, 2 the number of jobs, then for each job BullMQ's add's `bullmqArgs`
 *   arguments (packed options last) followed by its tenant, priority (1..10), step and job id
 * Returns: for each job, what BullMQ's add returns (the job id, or its negative error code), or
 *   the error it raised.
 */
export function fairAddLua(bullmqAddLua: string, bullmqKeys: number, bullmqArgs: number): string {
  const key = (index: number) => `KEYS[${bullmqKeys + index}]`;
  const per = bullmqArgs + 4;
  return `
local clock, prioritized, delayed, active = ${key(1)}, ${key(2)}, ${key(3)}, ${key(4)}
local prefix, count = ARGV[1], tonumber(ARGV[2])
local args = {}
for i = 1, 2 + count * ${per} do args[i] = ARGV[i] end
${TAGS_FUNCTION}
local function bullmq_add()
${bullmqAddLua}
end
local replies = {}
-- Job j's add (BullMQ's, with its ARGV) at BullMQ priority \`tag\`, or where BullMQ was told.
local function add(j, tag)
  local at = 2 + (j - 1) * ${per}
  for i = 1, ${bullmqArgs} do ARGV[i] = args[at + i] end
  if tag then
    -- Options that do not unpack to a table (a BullMQ whose add takes them otherwise) are left as
    -- they are: the job is added at the placeholder, at the back of its line, not refused.
    local unpacked, options = pcall(cmsgpack.unpack, ARGV[${bullmqArgs}])
    if unpacked and type(options) == 'table' then
      options['priority'] = tag
      ARGV[${bullmqArgs}] = cmsgpack.pack(options)
    end
  end
  local added, reply = pcall(bullmq_add)
  if not added then
    reply = { err = type(reply) == 'table' and reply.err or tostring(reply) }
  elseif reply == nil then
    reply = false
  end
  replies[j] = reply
end
-- The jobs in groups of one tenant, priority and step, in the order each group first appears.
-- A job whose id exists (or came earlier in this batch) takes no tag: BullMQ's add answers it as
-- a duplicate.
local groups, order, seen = {}, {}, {}
for j = 1, count do
  local at = 2 + (j - 1) * ${per} + ${bullmqArgs}
  local name = args[at + 1] .. '\0' .. args[at + 2] .. '\0' .. args[at + 3]
  local group = groups[name]
  if not group then
    group = { tenant = args[at + 1], priority = tonumber(args[at + 2]), step = tonumber(args[at + 3]), jobs = {}, tagged = 0 }
    groups[name] = group
    order[#order + 1] = group
  end
  local id = args[at + 4]
  local fresh = not seen[id] and redis.call('EXISTS', prefix .. id) == 0
  seen[id] = true
  group.jobs[#group.jobs + 1] = { j = j, fresh = fresh }
  if fresh then group.tagged = group.tagged + 1 end
end
-- Each group's tags, then its adds, before the next group's tags: the next group sees these jobs
-- (the head of the line, a rebase shifting them), as one add at a time in this order would.
for _, group in ipairs(order) do
  local tagged, tags = false, nil
  if group.tagged > 0 then
    -- Should the tags fail (a fair clock of the wrong type), the jobs are still added, at the
    -- placeholder: the back of their line.
    tagged, tags = pcall(fair_tags, group.tenant, group.priority, group.step, group.tagged)
  end
  local next_tag = 1
  for _, job in ipairs(group.jobs) do
    local tag = nil
    if job.fresh and tagged then
      tag = tags[next_tag]
      next_tag = next_tag + 1
    end
    add(job.j, tag)
  end
end
return replies
`;
}
/**
 * fair-sweep — fixes stragglers: jobs whose priority was computed before a rebase but added after
 * it, so they sit about `rebased_by` too far back. No valid job has a priority above top + 9 ×
 * gap (+ slack); any such prioritized job is shifted down by the last rebase's amount. Runs at
 * most once per interval across all processes (swept_at in the clock hash is the lease).
 * KEYS: 1 fair clock, 2 prioritized zset
 * ARGV: 1 job key prefix, 2 interval ms, 3 slack
 * Returns: jobs shifted, or -1 when another process swept less than an interval ago.
 */
export const FAIR_SWEEP_LUA = `
local clock, prioritized = KEYS[1], KEYS[2]
local prefix, interval, slack = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', clock, 'swept_at', 'rebased_by', 'top')
if now < (tonumber(state[1]) or 0) + interval then return -1 end
redis.call('HSET', clock, 'swept_at', string.format('%d', now))
local by, top = tonumber(state[2]) or 0, tonumber(state[3]) or 0
if by <= 0 then return 0 end
local above = top + 9 * ${gap} + slack + 1
-- A straggler's priority is at most the limit: past it, stragglers cannot be told apart.
if above > ${limit} then return 0 end
local stale = redis.call('ZRANGEBYSCORE', prioritized, string.format('%.0f', above * ${scoreStep}), '+inf',
  'WITHSCORES', 'LIMIT', 0, 1000)
local batch = {}
for i = 1, #stale, 2 do
  local score = tonumber(stale[i + 1])
  local counter = score % ${scoreStep}
  local moved = math.max(math.floor(score / ${scoreStep}) - by, 1)
  redis.call('HSET', prefix .. stale[i], 'priority', string.format('%d', moved))
  batch[#batch + 1] = string.format('%.0f', moved * ${scoreStep} + counter)
  batch[#batch + 1] = stale[i]
end
if #batch > 0 then redis.call('ZADD', prioritized, unpack(batch)) end
return #batch / 2
`;
