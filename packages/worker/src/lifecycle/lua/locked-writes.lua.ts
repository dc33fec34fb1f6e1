/**
 * Writes a running completion job makes, each done only if the run making it still holds the
 * job's BullMQ lock: the lock key's value is the token BullMQ gave this run, and compare and
 * write happen in one script, so a run that stalled past its lock (GC pause, partition, SIGSTOP)
 * and whose job another worker now runs cannot write over that run's state. All keys share the
 * `{prefix}` hash tag (Redis Cluster).
 */

/**
 * locked-progress — the job's progress (its resume point), as BullMQ's updateProgress writes it:
 * the job hash's `progress` field plus a `progress` event on the queue's event stream (the API's
 * ?wait and SSE listeners wake on it), trimmed as BullMQ trims it.
 * KEYS: 1 job lock, 2 job hash, 3 queue event stream, 4 queue meta
 * ARGV: 1 this run's lock token, 2 job id, 3 progress JSON
 * Returns: 1 when written, 0 when the lock is not this run's (nothing written), -1 when the
 * job is gone.
 */
export const LOCKED_PROGRESS_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local maxEvents = redis.call('HGET', KEYS[4], 'opts.maxLenEvents')
if not maxEvents then
  maxEvents = 10000
  redis.call('HSET', KEYS[4], 'opts.maxLenEvents', maxEvents)
end
redis.call('HSET', KEYS[2], 'progress', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxEvents, '*', 'event', 'progress', 'jobId', ARGV[2], 'data', ARGV[3])
return 1
`;

/**
 * locked-events — appends events to a streaming job's event stream (GET /v1/jobs/:id/events)
 * and (re)sets its expiry, so a worker dying mid-stream leaves nothing behind forever.
 * KEYS: 1 job lock, 2 job event stream
 * ARGV: 1 this run's lock token, 2 max stream length, 3 retention s, then pairs from 4 on:
 *       event name, JSON data
 * Returns: the number of events appended, or -1 when the lock is not this run's (none appended).
 */
export const LOCKED_EVENTS_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local appended = 0
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[i], 'data', ARGV[i + 1])
  appended = appended + 1
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return appended
`;
