/**
 * Scripts of the failed-jobs sweep (failed-jobs-sweep.ts). Their keys are the completions queue's
 * failed set (BullMQ's: job ids scored by finish time in ms, as the failing worker's clock read
 * it) and the sweep's cursor, `"<score>:<job id>"` of the last failure handled; both share the
 * `{prefix}` hash tag (Redis Cluster).
 */

/**
 * `after(a, b)`: whether job id `a` sorts after `b` among members of equal score, in byte order as
 * the sorted set orders ties (Lua's < on strings follows the locale). Shared by both scripts.
 */
const AFTER_LUA = `
local function after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end`;

/**
 * failed-page — the next failures after the cursor that are at least ARGV[1] ms old by Redis's
 * clock, oldest first. Ties on the score (BullMQ fails every stalled-out job of one check at the
 * same millisecond) are walked by rank from the cursor's own entry, so a page boundary inside a
 * tie loses nothing; when that entry has gone (removed, retried, or failed again since) the tie is
 * read from its start and the entries up to the cursor's job id, in the set's own byte order,
 * are skipped.
 * KEYS: 1 failed set, 2 cursor
 * ARGV: 1 settle ms, 2 page size
 * Returns: a flat list of job id, score, ...; empty on the first run ever, which sets the cursor
 * to now less the settle time (failures from before the first sweeper are not looked at).
 */
export const FAILED_PAGE_LUA = `${AFTER_LUA}
local time = redis.call('TIME')
local upper = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[1])
local cursor = redis.call('GET', KEYS[2])
if not cursor then
  redis.call('SET', KEYS[2], string.format('%.0f', upper) .. ':')
  return {}
end
local sep = string.find(cursor, ':', 1, true)
local score = tonumber(string.sub(cursor, 1, sep - 1))
local member = string.sub(cursor, sep + 1)
local limit = tonumber(ARGV[2])
local entries
local at = false
if member ~= '' then at = redis.call('ZSCORE', KEYS[1], member) end
if at and tonumber(at) == score then
  local rank = redis.call('ZRANK', KEYS[1], member)
  entries = redis.call('ZRANGE', KEYS[1], rank + 1, rank + limit, 'WITHSCORES')
else
  local from = string.format('%.0f', score)
  entries = {}
  local offset = 0
  while #entries < 2 * limit do
    local chunk = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', offset, limit)
    if #chunk == 0 then break end
    for i = 1, #chunk, 2 do
      if #entries < 2 * limit and (tonumber(chunk[i + 1]) > score or after(chunk[i], member)) then
        entries[#entries + 1] = chunk[i]
        entries[#entries + 1] = chunk[i + 1]
      end
    end
    offset = offset + limit
  end
end
local page = {}
for i = 1, #entries, 2 do
  if tonumber(entries[i + 1]) > upper then break end
  page[#page + 1] = entries[i]
  page[#page + 1] = entries[i + 1]
end
return page
`;

/**
 * advance-cursor — moves the cursor to a handled failure, forward only (by score, then job id as
 * the sorted set orders ties), so sweepers that overlap never move it back.
 * KEYS: 1 cursor
 * ARGV: 1 score, 2 job id
 * Returns: 1 when moved, 0 when the cursor was already there or beyond.
 */
export const ADVANCE_CURSOR_LUA = `${AFTER_LUA}
local cursor = redis.call('GET', KEYS[1])
if cursor then
  local sep = string.find(cursor, ':', 1, true)
  local score = tonumber(string.sub(cursor, 1, sep - 1))
  local member = string.sub(cursor, sep + 1)
  local next = tonumber(ARGV[1])
  if next < score then return 0 end
  if next == score then
    if not after(ARGV[2], member) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
return 1
`;
