import type { Logger } from "../logger.js";
import { type RedisClient, redisCliFor } from "./connection.js";

/**
 * Checks Redis again each time `redis` connects after its first time (startup checked it then):
 * a policy other than `noeviction` (a Redis restarted with a managed service's default, or without
 * its redis.conf) is logged as an error naming the fix, since evicted keys are lost jobs; a server
 * that restarted (its run id changed) is logged as a warning: what it wrote in its last fsync
 * window, or all of it without persistence, may be gone. Never throws; nothing is refused.
 */
export function watchRedisComebacks(
  redis: RedisClient,
  logger: Pick<Logger, "error" | "warn">,
  /** REDIS_URL, for the fix's command line (see redisCliFor). */
  url?: string,
): void {
  // A cluster client asks any node: run ids differ between them.
  const cluster = (redis as { isCluster?: boolean }).isCluster === true;
  let runId: string | undefined;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      const info = cluster ? "" : String(await redis.info("server").catch(() => ""));
      const current = /run_id:(\w+)/.exec(info)?.[1];
      if (runId !== undefined && current !== undefined && current !== runId) {
        const uptime = /uptime_in_seconds:(\d+)/.exec(info)?.[1];
        logger.warn(
          { run_id: current, uptime_s: uptime === undefined ? undefined : Number(uptime) },
          "Redis restarted (its run id changed): jobs written in its last fsync window, or all of them without persistence, may be gone",
        );
      }
      runId = current ?? runId;
      const reply = (await redis.config("GET", "maxmemory-policy").catch(() => undefined)) as
        | string[]
        | undefined;
      const policy = reply?.[1];
      if (policy !== undefined && policy !== "noeviction") {
        logger.error(
          { maxmemory_policy: policy },
          `Redis came back with maxmemory-policy=${policy}; Cascade needs noeviction (evicted keys are lost jobs): run \`${url === undefined ? "redis-cli" : redisCliFor(url)} CONFIG SET maxmemory-policy noeviction\` and set it in redis.conf`,
        );
      }
    } catch {
      // Gone again: the next connection checks.
    } finally {
      checking = false;
    }
  };
  redis.on("ready", () => void check());
  if (redis.status === "ready") void check();
}
