import { z } from "zod";
import { redactRedisUrl } from "../redis/connection.js";

const intFromEnv = <Fallback extends number | undefined>(
  name: string,
  fallback: Fallback,
  min: number,
  max: number,
) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined || value.trim() === "") return fallback;
      // Decimal only (Helm writes 1209600 as 1.2096e+06): Number() would also take 0x10 or 0b1.
      const parsed = /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(value)
        ? Number(value) + 0
        : Number.NaN;
      if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
        context.addIssue({
          code: "custom",
          message: `${name} must be an integer from ${min} to ${max}, got "${value}"`,
        });
        return z.NEVER;
      }
      return parsed as number | Fallback;
    });

/** Whether `value` parses as a URL naming a host, with a port (if any) Redis could listen on. */
function isRedisUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.hostname !== "" && (url.port === "" || Number(url.port) <= 65535);
  } catch {
    return false;
  }
}

/** The process environment of the contract ("Processes and environment"), plus Cascade's additions. */
export const settingsSchema = z
  .object({
    REDIS_URL: z
      .string()
      .default("redis://127.0.0.1:6379")
      .refine((value) => /^rediss?:\/\//.test(value), {
        // Only what comes before the first ":" is shown: a value that is no redis:// URL (a cloud
        // console's connection string) may hold a password no URL parser finds.
        error: (issue) => {
          const value = String(issue.input);
          const colon = value.indexOf(":");
          const shown = colon >= 0 ? `, not ${JSON.stringify(value.slice(0, colon + 1))}…` : "";
          return `REDIS_URL must start with redis:// or rediss://${shown}`;
        },
        abort: true,
      })
      .refine(isRedisUrl, {
        error: (issue) =>
          `REDIS_URL is not a valid URL with a host (${JSON.stringify(redactRedisUrl(String(issue.input)))}); use redis://[user:password@]host:port[/db]`,
      }),
    PORT: intFromEnv("PORT", 3000, 0, 65535),
    // Empty is unset, as for the numbers: `HOST=` must not open the API on every interface.
    HOST: z
      .string()
      .optional()
      .transform((value) => (value === undefined || value.trim() === "" ? "127.0.0.1" : value)),
    WORKER_CONCURRENCY: intFromEnv("WORKER_CONCURRENCY", 50, 1, 10000),
    LOG_LEVEL: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
        error: (issue) =>
          `LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (lower case), got ${JSON.stringify(String(issue.input))}`,
      })
      .default("info"),
    /** Addition: the Redis key prefix; always wrapped in a hash tag so Redis Cluster works. */
    CASCADE_REDIS_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, {
        error: (issue) =>
          `CASCADE_REDIS_PREFIX may use letters, digits, _ . -, got ${JSON.stringify(String(issue.input))}`,
      })
      .default("cascade"),
    /** Addition: BullMQ lock duration; a crashed worker's jobs are recovered after about this long. */
    WORKER_LOCK_DURATION_MS: intFromEnv("WORKER_LOCK_DURATION_MS", 30000, 1000, 600000),
    /**
     * Addition: a worker may claim as many jobs ahead of its free slots as it finished in this many
     * ms (at most a quarter of WORKER_CONCURRENCY, and only at 100 slots or more); 0 claims none
     * ahead (ADR 0026).
     */
    WORKER_PREFETCH_MS: intFromEnv("WORKER_PREFETCH_MS", 50, 0, 10000),
    /** Addition: how long finished jobs are kept (default 7 days). */
    JOB_RETENTION_S: intFromEnv("JOB_RETENTION_S", 7 * 24 * 3600, 1, 365 * 24 * 3600),
    /**
     * Addition: how long a streaming job's events stay replayable; unset, as long as the job is kept
     * (JOB_RETENTION_S), as the contract says ("for the job's retention").
     */
    EVENTS_RETENTION_S: intFromEnv("EVENTS_RETENTION_S", undefined, 1, 365 * 24 * 3600),
    /**
     * Addition: how long an API request waits for Redis to come back (a failover takes a second or
     * two) before it is answered 503 with Retry-After, instead of being held until Redis returns.
     */
    API_REDIS_WAIT_MS: intFromEnv("API_REDIS_WAIT_MS", 2000, 0, 60000),
    /**
     * Addition: replicas that must hold what a write request changed (an accepted job, a cancel, a
     * file, a batch) before the API answers it: Redis's WAIT, one per group of requests (0: answer
     * at once; replication stays asynchronous). ADR 0027.
     */
    API_REPLICA_ACKS: intFromEnv("API_REPLICA_ACKS", 0, 0, 16),
    /** Addition: the most an answer waits for API_REPLICA_ACKS replicas; then it goes out anyway, counted. */
    API_REPLICA_WAIT_MS: intFromEnv("API_REPLICA_WAIT_MS", 1000, 1, 60000),
    /** Addition: a worker serves its Prometheus metrics on HOST:METRICS_PORT when set (unset: none). */
    METRICS_PORT: intFromEnv("METRICS_PORT", undefined, 1, 65535),
    /** Addition: API shutdown grace for in-flight requests. */
    SHUTDOWN_TIMEOUT_MS: intFromEnv("SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000),
  })
  .transform((settings) => ({
    ...settings,
    // A stream written before its job's end is kept past the job's deadline too (job-event-writer).
    EVENTS_RETENTION_S: settings.EVENTS_RETENTION_S ?? settings.JOB_RETENTION_S,
  }));

export type Settings = z.infer<typeof settingsSchema>;
