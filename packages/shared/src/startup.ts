import { type Config, loadConfig } from "./config/load.js";
import { ConfigError } from "./errors/config-error.js";
import { createLogger, type Logger } from "./logger.js";
import { checkRedis, type RedisCheck } from "./redis/connection.js";
import { applyProcessV8Flags } from "./v8-flags.js";

export interface Started {
  config: Config;
  logger: Logger;
  redisCheck: RedisCheck;
  /** Prints a startup problem as the one line a person reads, and exits non-zero. */
  fail(error: unknown): never;
}

/**
 * The start every Cascade process shares: config and environment, logger, and a Redis that is
 * reachable and will not evict keys. Any problem is one line on stderr naming the setting and the
 * fix, and exit code 1; warnings (open mode, an unreadable eviction policy) are logged loudly.
 * The process's V8 flags are set first, before the config is parsed (v8-flags.ts).
 */
export async function startProcess(
  processName: "api" | "worker",
  env: Record<string, string | undefined>,
): Promise<Started> {
  applyProcessV8Flags();
  const fail = (error: unknown): never => {
    const message =
      error instanceof ConfigError
        ? error.message
        : `${processName} failed to start: ${(error as Error)?.stack ?? error}`;
    process.stderr.write(`cascade ${processName}: ${message}\n`);
    process.exit(1);
  };
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    return fail(error);
  }
  const logger = createLogger(config.settings.LOG_LEVEL, { name: `cascade-${processName}` });
  const redisCheck = await checkRedis(config.settings.REDIS_URL, {
    // Only the API waits for replicas; the worker's settings may carry the shared value.
    replicaAcks: processName === "api" ? config.settings.API_REPLICA_ACKS : 0,
  }).catch(fail);
  for (const warning of [...config.warnings, ...redisCheck.warnings]) logger.warn(warning);
  return { config, logger, redisCheck, fail };
}
