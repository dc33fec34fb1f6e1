import { BREAKER_FIELDS, BREAKER_LOG_LENGTH } from "../redis-shape.js";

/**
 * breaker-override.lua — an operator pins a breaker open or closed, or hands it back to its own
 * rules (POST /v1/providers/:id/breaker). admit.lua reads `forced` on every call. One script, so
 * the override and its log entry land together, stamped with Redis TIME like every transition.
 *
 * KEYS[1]: the breaker's hash (keys.breaker(id)).
 * ARGV[1]: open | closed | auto (auto removes the override).
 * ARGV[2]: why, for the breaker's log.
 * Returns: { from, to }: the state in force before and after (forced, else the breaker's own).
 */
export const BREAKER_OVERRIDE_LUA = `
local key = KEYS[1]
local fields = redis.call('HMGET', key, '${BREAKER_FIELDS.state}', '${BREAKER_FIELDS.forced}', '${BREAKER_FIELDS.log}')
local from = fields[2] or fields[1] or 'closed'
local log = cjson.decode(fields[3] or '[]')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local to = ARGV[1] == 'auto' and (fields[1] or 'closed') or ARGV[1]
table.insert(log, 1, { at = now, from = from, to = to, why = ARGV[2] })
if #log > ${BREAKER_LOG_LENGTH} then table.remove(log) end
if ARGV[1] == 'auto' then redis.call('HDEL', key, '${BREAKER_FIELDS.forced}') else redis.call('HSET', key, '${BREAKER_FIELDS.forced}', ARGV[1]) end
redis.call('HSET', key, '${BREAKER_FIELDS.log}', cjson.encode(log))
return { from, to }
`;
