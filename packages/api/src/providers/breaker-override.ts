import { BREAKER_OVERRIDE_LUA, type RedisClient } from "@cascade/shared";

/** What POST /v1/providers/:id/breaker may set: pin open, pin closed, or back to its own rules. */
export type BreakerOverride = "open" | "closed" | "auto";

const COMMAND = "cascadeBreakerOverride";

type OverrideCommands = RedisClient & {
  [COMMAND](key: string, state: BreakerOverride, why: string): Promise<[string, string]>;
};

/**
 * Registers breaker-override.lua on this client (once: buildApp may run many times on one
 * client in tests) and returns the function that runs it: it answers the state in force before
 * and after.
 */
export function defineBreakerOverride(
  redis: RedisClient,
): (breakerKey: string, state: BreakerOverride, why: string) => Promise<{ from: string; to: string }> {
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: BREAKER_OVERRIDE_LUA });
  const commands = redis as OverrideCommands;
  return async (breakerKey, state, why) => {
    const [from, to] = await commands[COMMAND](breakerKey, state, why);
    return { from, to };
  };
}
