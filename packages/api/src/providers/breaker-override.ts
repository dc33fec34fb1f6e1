import { BREAKER_OVERRIDE_LUA, type RedisClient } from "@cascade/shared";

/** What POST /v1/providers/:id/breaker may set: pin open, pin closed, or back to its own rules. */
export type BreakerOverride = "open" | "closed" | "auto";

const COMMAND = "cascadeBreakerOverride";

type OverrideCommands = RedisClient & {
  [COMMAND](key: string, state: BreakerOverride, why: string): Promise<number>;
};

/**
 * Registers breaker-override.lua on this client (once: buildApp may run many times on one
 * client in tests) and returns the function that runs it.
 */
export function defineBreakerOverride(
  redis: RedisClient,
): (breakerKey: string, state: BreakerOverride, why: string) => Promise<void> {
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: BREAKER_OVERRIDE_LUA });
  const commands = redis as OverrideCommands;
  return async (breakerKey, state, why) => {
    await commands[COMMAND](breakerKey, state, why);
  };
}
