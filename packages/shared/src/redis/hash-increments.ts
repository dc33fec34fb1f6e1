import type { RedisClient } from "./connection.js";

/**
 * hash-increments.lua — adds amounts to fields of one hash and (re)sets its lifetime, in one
 * command: a finished request's counters cost one Redis command, not one per field.
 * KEYS[1] the hash; ARGV[1] its TTL in seconds; ARGV[2..] field, amount, field, amount, ...
 * (HINCRBYFLOAT: whole amounts read back as whole numbers). Returns nothing.
 */
const HASH_INCREMENTS_LUA = `
for i = 2, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
`;

const COMMAND = "cascadeHashIncrements";
type HashIncrementsCommand = (
  key: string,
  ttlSeconds: number,
  ...pairs: Array<string | number>
) => Promise<unknown>;

/**
 * Adds `increments` (field → amount) to the hash at `key` and sets its TTL, as one script call.
 * Resolves when Redis has applied it; amounts of 0 are left out, and nothing is sent when none is left.
 */
export function addToHash(
  redis: RedisClient,
  key: string,
  ttlSeconds: number,
  increments: Readonly<Record<string, number>>,
): Promise<unknown> {
  const pairs: Array<string | number> = [];
  for (const [field, amount] of Object.entries(increments)) {
    if (amount !== 0 && Number.isFinite(amount)) pairs.push(field, amount);
  }
  if (!pairs.length) return Promise.resolve();
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: HASH_INCREMENTS_LUA });
  const command = (redis as unknown as Record<string, HashIncrementsCommand>)[
    COMMAND
  ] as HashIncrementsCommand;
  return command.call(redis, key, ttlSeconds, ...pairs);
}
