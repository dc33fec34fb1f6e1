/**
 * Lua scripts of the batch record. Every multi-key change of a batch happens in one of these, so
 * API processes, enqueuers, workers and sweepers racing on the same batch never see half a change.
 * Times come from Redis (TIME), not from any one machine's clock. All keys share the `{prefix}`
 * hash tag (Redis Cluster).
 */

/**
 * create-batch — the batch is accepted: copy the input file (so deleting the file cannot starve
 * the enqueue), write the record (status validating), index it, mark it active, take the lease.
 * KEYS: 1 batch, 2 file meta, 3 file data, 4 batch input copy, 5 active set, 6 tenant batch index,
 *       7 enqueue lease
 * ARGV: 1 tenant, 2 batch id, 3 JSON object of string fields, 4 lease token, 5 lease ms,
 *       6 completion window s
 * Returns: created_at (Unix s), or 0 when the input file is gone.
 */
export const CREATE_BATCH_LUA = `
local meta = redis.call('HMGET', KEYS[2], 'tenant', 'purpose')
if meta[1] ~= ARGV[1] or meta[2] ~= 'batch' then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('COPY', KEYS[3], KEYS[4], 'REPLACE')
  redis.call('PERSIST', KEYS[4])
end
local t = redis.call('TIME')
local now = tonumber(t[1])
local flat = {'created_at', now, 'expires_at', now + tonumber(ARGV[6]), 'status', 'validating',
  'progress_at', string.format('%d', now * 1000)}
for key, value in pairs(cjson.decode(ARGV[3])) do
  flat[#flat + 1] = key
  flat[#flat + 1] = value
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('ZADD', KEYS[6], 0, ARGV[2])
redis.call('SET', KEYS[7], ARGV[4], 'PX', ARGV[5])
return now
`;

/**
 * end-lines — record how lines ended, at most once per line (a bitmap by line number), update
 * request_counts, and when the last line has ended, finalize: the output and error lists become
 * files (RENAME, no copy), the batch takes its terminal status, and its working keys are dropped.
 * KEYS: 1 batch, 2 ended bitmap, 3 output list, 4 error list, 5 custom ids, 6 active set,
 *       7 output file meta, 8 output file data, 9 error file meta, 10 error file data,
 *       11 tenant file index, 12 batch input copy, 13 enqueue lease
 * ARGV: 1 output file id, 2 error file id, 3 batch retention s, then 7 per line from 4 on:
 *       line, kind (ok | fail | stop), JSON line (for stop, its start without the closing brace),
 *       input tokens, output tokens, cached input tokens, reasoning output tokens
 * Returns: {status, lines ended so far, total, the lines this call ended (comma-separated: a
 * line another call had ended already is not among them)}; status is the terminal one when this
 * call finalized, 'missing' when there is no such batch.
 */
export const END_LINES_LUA = `
local batch, ended_key, out_key, err_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local status = redis.call('HGET', batch, 'status')
if not status then return {'missing', 0, 0, ''} end
if status == 'completed' or status == 'failed' or status == 'expired' or status == 'cancelled' then
  return {status, 0, 0, ''}
end
local ending = redis.call('HGET', batch, 'ending') or ''
local completed, failed, cancelled, ended = 0, 0, 0, 0
local newly = {}
local tokens_in, tokens_out, out_bytes, err_bytes = 0, 0, 0, 0
local tokens_cached, tokens_reasoning = 0, 0
for i = 4, #ARGV, 7 do
  if redis.call('SETBIT', ended_key, tonumber(ARGV[i]), 1) == 0 then
    ended = ended + 1
    table.insert(newly, ARGV[i])
    local kind, json = ARGV[i + 1], ARGV[i + 2]
    if kind == 'ok' then
      completed = completed + 1
      tokens_in = tokens_in + tonumber(ARGV[i + 3])
      tokens_out = tokens_out + tonumber(ARGV[i + 4])
      tokens_cached = tokens_cached + tonumber(ARGV[i + 5])
      tokens_reasoning = tokens_reasoning + tonumber(ARGV[i + 6])
      redis.call('RPUSH', out_key, json .. '\\n')
      out_bytes = out_bytes + #json + 1
    elseif kind == 'fail' or ending ~= 'cancel' then
      if kind ~= 'fail' then
        -- The line's start, {"id":…,"custom_id":… as JSON.stringify wrote it: completed, not parsed.
        local code, message = 'cancelled', 'The request was cancelled before it finished.'
        if ending == 'expire' then
          code, message = 'batch_expired', 'This request could not be executed before the completion window expired.'
        end
        json = json .. ',"response":null,"error":{"code":"' .. code .. '","message":"' .. message .. '"}}'
      end
      failed = failed + 1
      redis.call('RPUSH', err_key, json .. '\\n')
      err_bytes = err_bytes + #json + 1
    else
      cancelled = cancelled + 1
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1])
if ended > 0 then
  redis.call('HINCRBY', batch, 'ended', ended)
  redis.call('HINCRBY', batch, 'completed', completed)
  redis.call('HINCRBY', batch, 'failed', failed)
  redis.call('HINCRBY', batch, 'cancelled', cancelled)
  redis.call('HINCRBY', batch, 'input_tokens', tokens_in)
  redis.call('HINCRBY', batch, 'output_tokens', tokens_out)
  redis.call('HINCRBY', batch, 'cached_tokens', tokens_cached)
  redis.call('HINCRBY', batch, 'reasoning_tokens', tokens_reasoning)
  redis.call('HINCRBY', batch, 'output_bytes', out_bytes)
  redis.call('HINCRBY', batch, 'error_bytes', err_bytes)
  redis.call('HSET', batch, 'progress_at', string.format('%d', now * 1000 + math.floor(tonumber(t[2]) / 1000)))
end
local counts = redis.call('HMGET', batch, 'ended', 'total')
local total_ended, total = tonumber(counts[1] or '0'), tonumber(counts[2] or '0')
if total_ended < total then return {status, total_ended, total, table.concat(newly, ',')} end

local final, at = 'completed', 'completed_at'
if ending == 'cancel' then final, at = 'cancelled', 'cancelled_at'
elseif ending == 'expire' then final, at = 'expired', 'expired_at' end
local info = redis.call('HMGET', batch, 'tenant', 'id', 'output_ttl_s', 'output_bytes', 'error_bytes',
  'finalizing_at', 'in_progress_at')
local tenant, id, ttl = info[1], info[2], tonumber(info[3] or '604800')
local function publish(list, meta, data, file_id, bytes, suffix)
  if redis.call('EXISTS', list) == 0 then return '' end
  redis.call('RENAME', list, data)
  redis.call('HSET', meta, 'id', file_id, 'tenant', tenant, 'bytes', bytes or '0', 'created_at', now,
    'filename', id .. '_' .. suffix .. '.jsonl', 'purpose', 'batch_output', 'expires_at', now + ttl)
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', data, ttl)
  redis.call('ZADD', KEYS[11], 0, file_id)
  return file_id
end
local out_id = publish(out_key, KEYS[7], KEYS[8], ARGV[1], info[4], 'output')
local err_id = publish(err_key, KEYS[9], KEYS[10], ARGV[2], info[5], 'error')
redis.call('HSET', batch, 'status', final, at, now, 'output_file_id', out_id, 'error_file_id', err_id)
-- A cancelled batch was never finalized (nor in progress, if cancelled while validating): as at
-- OpenAI, those stay null.
if final ~= 'cancelled' then
  if not info[6] then redis.call('HSET', batch, 'finalizing_at', now) end
  if not info[7] then redis.call('HSET', batch, 'in_progress_at', now) end
end
redis.call('UNLINK', ended_key, KEYS[5], KEYS[12], KEYS[13])
redis.call('SREM', KEYS[6], id)
redis.call('EXPIRE', batch, tonumber(ARGV[3]))
return {final, total_ended, total, table.concat(newly, ',')}
`;

/**
 * enqueue-progress — an enqueuer reports its cursor (lines 1..cursor handed over), renewing its
 * lease; with done = '1' the enqueue is over: the input copy and the lease go.
 * KEYS: 1 batch, 2 enqueue lease, 3 batch input copy
 * ARGV: 1 lease token, 2 cursor, 3 lease ms, 4 done ('1' | '0')
 * Returns: {status, ending}, or {'lost', ''} when the lease is not this enqueuer's.
 */
export const ENQUEUE_PROGRESS_LUA = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost', ''} end
local cursor = tonumber(ARGV[2])
if cursor > tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0') then
  redis.call('HSET', KEYS[1], 'cursor', cursor)
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'enqueue_done', '1')
  redis.call('UNLINK', KEYS[3], KEYS[2])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local state = redis.call('HMGET', KEYS[1], 'status', 'ending')
return {state[1] or 'missing', state[2] or ''}
`;

/**
 * batch-transition — the status changes that are not about lines:
 *   start:  validating -> in_progress (the first line is about to be queued)
 *   cancel: validating | in_progress -> cancelling (ending 'cancel')
 *   expire: validating | in_progress past expires_at -> finalizing (ending 'expire')
 * KEYS: 1 batch
 * ARGV: 1 transition
 * Returns: {status, ending, changed (1 | 0)}; status 'missing' when there is no such batch.
 */
export const BATCH_TRANSITION_LUA = `
local state = redis.call('HMGET', KEYS[1], 'status', 'ending', 'expires_at')
local status, ending = state[1], state[2] or ''
if not status then return {'missing', '', 0} end
local now = tonumber(redis.call('TIME')[1])
local open = status == 'validating' or status == 'in_progress'
if ARGV[1] == 'start' and status == 'validating' then
  redis.call('HSET', KEYS[1], 'status', 'in_progress', 'in_progress_at', now)
  return {'in_progress', ending, 1}
elseif ARGV[1] == 'cancel' and open then
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'ending', 'cancel', 'cancelling_at', now)
  return {'cancelling', 'cancel', 1}
elseif ARGV[1] == 'expire' and open and now >= tonumber(state[3] or '0') then
  redis.call('HSET', KEYS[1], 'status', 'finalizing', 'ending', 'expire', 'finalizing_at', now)
  return {'finalizing', 'expire', 1}
end
return {status, ending, 0}
`;

/**
 * release-lease — drop a lease only if it is still ours.
 * KEYS: 1 lease; ARGV: 1 token. Returns 1 when released.
 */
export const RELEASE_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
