import { z } from "zod";

/**
 * The Redis shape of breakers, cooldowns, buckets, call stats and usage: the field names the Lua
 * scripts write (they interpolate these constants), the engine reads back and the API's status
 * view parses with the schemas below. One place, so a renamed field cannot drift between them.
 */

/** Fields of a breaker's hash (`keys.breaker(id)`). Times are Redis TIME, in milliseconds. */
export const BREAKER_FIELDS = {
  /** closed | open | half_open; absent means closed. */
  state: "state",
  /** While open: when the next call may probe. */
  openUntil: "open_until",
  /** Consecutive failed probes: the open time doubles with each, capped at 16 × open_ms. */
  reopens: "reopens",
  /** While half-open: when the probe's lease ends (another call may then probe). */
  probeUntil: "probe_until",
  /** When `state` last changed. */
  changedAt: "changed_at",
  /** JSON list of the latest transitions, newest first: { at, from, to, why }. */
  log: "log",
  /** An operator's override: open | closed; absent when the breaker runs on its own. */
  forced: "forced",
} as const;

export const BREAKER_STATES = ["closed", "open", "half_open"] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

/** How many transitions a breaker's log keeps. */
export const BREAKER_LOG_LENGTH = 20;

/** Fields of a breaker's rolling window (`keys.breakerWindow(id)`): `<slot>:n` calls, `<slot>:f` failures. */
export const BREAKER_WINDOW_KINDS = { calls: "n", failures: "f" } as const;

/** Fields of a 429 cooldown's hash (`keys.cooldown(scope, id)`). */
export const COOLDOWN_FIELDS = {
  /** Milliseconds (Redis TIME) until which the provider or model takes no call. */
  until: "until",
  /** Consecutive 429s without a Retry-After: the cooldown doubles with each. */
  streak: "streak",
} as const;

/** Fields of a token bucket's hash (`keys.bucket(scope, id, kind)`). */
export const BUCKET_FIELDS = {
  /** Tokens left at `ts` (may be negative after a request larger than the bucket). */
  tokens: "tokens",
  /** Milliseconds (Redis TIME) of the last write; refill runs from here. */
  ts: "ts",
} as const;

/**
 * Per-minute counters of a stats hash (`keys.stats(scope, id)`): fields are `<minute>:<kind>`.
 * Attempts (admit.lua, settle.lua): calls made, errors among them, skips. Requests
 * (RecentStatsRecorder): finished requests that tried the subject, and fallbacks among them.
 */
export const STATS_KINDS = {
  calls: "calls",
  errors: "errors",
  skips: "skips",
  requests: "requests",
  fallbacks: "fallbacks",
} as const;

/** Minutes of per-minute stats a reader sums (GET /v1/providers' `recent`: the last 5). */
export const STATS_MINUTES = 5;
/**
 * When a stats hash gets a new minute's field, its writer deletes the fields of minutes
 * STATS_MINUTES + 1 to STATS_MINUTES + 10 ago: the hash lives on while it is written (its TTL is
 * 10 minutes from the last new minute), so without this its fields would pile up for ever. A
 * hash written at least every 10 minutes meets a prune for every old minute.
 */
export const STATS_PRUNE_MINUTES = { from: STATS_MINUTES + 1, to: STATS_MINUTES + 10 } as const;

/** The field names a prune at `minute` deletes. */
export function staleStatsFields(minute: number): string[] {
  const fields: string[] = [];
  for (let ago = STATS_PRUNE_MINUTES.from; ago <= STATS_PRUNE_MINUTES.to; ago += 1) {
    for (const kind of Object.values(STATS_KINDS)) fields.push(`${minute - ago}:${kind}`);
  }
  return fields;
}

/** The same prune for the Lua scripts that count calls, errors and skips (admit.lua, settle.lua). */
export const PRUNE_STATS_LUA = `
local function prune_stats(key, minute)
  local stale = {}
  for ago = ${STATS_PRUNE_MINUTES.from}, ${STATS_PRUNE_MINUTES.to} do
    for _, kind in ipairs({ ${Object.values(STATS_KINDS)
      .map((kind) => `'${kind}'`)
      .join(", ")} }) do
      table.insert(stale, (minute - ago) .. ':' .. kind)
    end
  end
  redis.call('HDEL', key, unpack(stale))
end
`;

/** Usage hash (`keys.usage(tenant, day)`): USD in `total` and in `<subject>:<id>` fields. */
export const USAGE_TOTAL_FIELD = "total";
type UsageSubject = "model" | "route" | "user" | "deployment";

/** A usage hash field: what one model, route, end user or pool deployment (`<model>/<deployment>`) spent that day. */
export function usageField(subject: UsageSubject, id: string): string {
  return `${subject}:${id}`;
}

/** A number Redis keeps as a string (Lua writes numbers with up to 17 significant digits). */
const numeric = z.string().transform(Number).pipe(z.number());

const breakerTransitionSchema = z.object({
  at: z.number(),
  from: z.string(),
  to: z.string(),
  why: z.string(),
});

const breakerLog = z
  .string()
  .transform((text, context) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      context.addIssue({ code: "custom", message: "breaker log is not JSON" });
      return z.NEVER;
    }
  })
  .pipe(z.array(breakerTransitionSchema));

/** A breaker's hash as HGETALL returns it (an empty object for a breaker never written). */
export const breakerHashSchema = z.object({
  [BREAKER_FIELDS.state]: z.enum(BREAKER_STATES).optional(),
  [BREAKER_FIELDS.openUntil]: numeric.optional(),
  [BREAKER_FIELDS.reopens]: numeric.optional(),
  [BREAKER_FIELDS.probeUntil]: numeric.optional(),
  [BREAKER_FIELDS.changedAt]: numeric.optional(),
  [BREAKER_FIELDS.log]: breakerLog.optional(),
  [BREAKER_FIELDS.forced]: z.enum(["open", "closed"]).optional(),
});
export type BreakerHash = z.infer<typeof breakerHashSchema>;

export const cooldownHashSchema = z.object({
  [COOLDOWN_FIELDS.until]: numeric.optional(),
  [COOLDOWN_FIELDS.streak]: numeric.optional(),
});

export const bucketHashSchema = z.object({
  [BUCKET_FIELDS.tokens]: numeric.optional(),
  [BUCKET_FIELDS.ts]: numeric.optional(),
});

/** A stats hash: `<minute>:<kind>` -> count. */
export const statsHashSchema = z.record(z.string(), numeric);
