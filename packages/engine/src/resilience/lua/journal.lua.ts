/**
 * The journal of calls in flight (call-journal.ts, ADR 0033). Heartbeats are Redis time, so a
 * process whose clock is off neither looks dead nor keeps a dead one alive.
 */

/**
 * journal-beat.lua — this process is alive: the time (Redis's) after which it is taken for dead,
 * its own stale time from now, and its journal's lifetime (entries are plain HSETs).
 * KEYS[1]: this process's journal (hash); KEYS[2]: the journals (zset by that deadline).
 * ARGV[1]: this process's id; ARGV[2]: the journal's lifetime, ms; ARGV[3]: its stale time, ms.
 */
export const JOURNAL_BEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
`;

/**
 * journal-stale.lua — processes past their deadline (at most ARGV[1] of them).
 * KEYS[1]: the journals (zset).
 */
export const JOURNAL_STALE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))
`;

/** What a charged entry becomes (a tombstone): its call's settlement, if one ever comes, subtracts the estimate. */
export const CHARGED = "!";

/**
 * journal-claim.lua — charges the calls a dead process left: each entry not yet charged becomes a
 * tombstone and its estimate is added to its usage fields, in one step with the check that the
 * process is still silent (one that beat again since it was found keeps its journal). An entry of
 * a job is also copied to that job's record of lost calls (`<process id>/<field>` → the entry), for
 * the run that takes the job over (its attempts and cost). The process leaves the zset; its
 * journal, kept a day for the tombstones, goes at once if empty.
 * KEYS[1]: the journals (zset); KEYS[2]: the dead process's journal; KEYS[3..]: usage hashes and
 * jobs' records of lost calls.
 * ARGV[1]: the process's id; ARGV[2]: a job's record's lifetime, ms; ARGV[3..]: field, usage key
 * index, record index (0: none) triples (an entry the caller could not read: usage index 2, the
 * journal's own).
 * Returns the fields charged.
 */
export const JOURNAL_CLAIM_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if deadline == nil or deadline >= now then return {} end
local claimed = {}
for i = 3, #ARGV, 3 do
  local field = ARGV[i]
  local value = redis.call('HGET', KEYS[2], field)
  if value and value ~= '${CHARGED}' then
    local ok, entry = pcall(cjson.decode, value)
    redis.call('HSET', KEYS[2], field, '${CHARGED}')
    -- An entry that does not read is set aside, uncharged (nothing says what it cost); index 2
    -- (the journal itself) is what the caller gives one it could not read.
    local index = tonumber(ARGV[i + 1])
    if index ~= 2 and ok and type(entry) == 'table' and type(entry.c) == 'number' and type(entry.f) == 'table' and type(entry.t) == 'number' then
      local key = KEYS[index]
      if entry.c > 0 then
        for _, name in ipairs(entry.f) do redis.call('HINCRBYFLOAT', key, name, entry.c) end
        redis.call('EXPIRE', key, entry.t)
      end
      local record = tonumber(ARGV[i + 2])
      if record > 0 then
        redis.call('HSET', KEYS[record], ARGV[1] .. '/' .. field, value)
        redis.call('PEXPIRE', KEYS[record], ARGV[2])
      end
      table.insert(claimed, field)
    end
  end
end
-- Charged entries stay a day as tombstones: a process that was only paused settles those calls
-- against them (settle.lua). A process that beats again is back in the zset.
-- Entries written since the caller read the journal (a paused process that resumed) keep the
-- process on the list: a later pass charges them if it is still silent.
local live = false
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
  if value ~= '${CHARGED}' then live = true; break end
end
if not live then redis.call('ZREM', KEYS[1], ARGV[1]) end
if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) else redis.call('PEXPIRE', KEYS[2], 86400000) end
return claimed
`;
