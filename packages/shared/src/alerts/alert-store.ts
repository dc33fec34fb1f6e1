import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import type { Alert } from "./alert-types.js";

/**
 * Applies one evaluation to one alert, compare-and-set, so that however many evaluators race
 * (a lease handed over mid-tick) an alert fires once and resolves once.
 * KEYS[1] alerts state hash (alert id -> alert JSON); KEYS[2] history list (resolved alerts, newest first)
 * ARGV[1] alert id; ARGV[2] verdict: fire | resolve | hold
 * ARGV[3] the alert JSON stored when it fires (state firing); ARGV[4] current value ("" = none)
 * ARGV[5] now (unix s); ARGV[6] history cap
 * Returns {"fired"|"resolved", alert JSON} on a transition, else false (a firing alert's value is refreshed).
 */
const TRANSITION_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local alert = current and cjson.decode(current) or nil
local firing = alert ~= nil and alert.state == 'firing'
if ARGV[2] == 'fire' and not firing then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return {'fired', ARGV[3]}
end
if not firing then return false end
if ARGV[4] ~= '' then alert.value = tonumber(ARGV[4]) end
if ARGV[2] == 'resolve' then
  alert.state = 'resolved'
  alert.resolved_at = tonumber(ARGV[5])
  local json = cjson.encode(alert)
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('LPUSH', KEYS[2], json)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  return {'resolved', json}
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(alert))
return false
`;

const COMMAND = "cascadeAlertTransition";
type TransitionCommand = (...args: Array<string | number>) => Promise<[string, string] | null>;

/** Resolved alerts kept for GET /v1/alerts. */
export const ALERT_HISTORY_LENGTH = 200;

export type AlertVerdict = "fire" | "resolve" | "hold";

/** A transition that happened: who made it happen sends the log line and the webhooks. */
export interface AlertTransition {
  type: "alert.fired" | "alert.resolved";
  alert: Alert;
}

/**
 * Alerts in Redis: the current alert of each rule and subject (one hash, so a new lease holder
 * carries on without firing again) and a capped list of resolved ones.
 */
export class AlertStore {
  private readonly command: TransitionCommand;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: TRANSITION_SCRIPT });
    this.command = (
      (redis as unknown as Record<string, TransitionCommand>)[COMMAND] as TransitionCommand
    ).bind(redis);
  }

  /** Fires (with `firing` as the new alert), resolves, or refreshes the value of a firing alert. */
  async apply(
    id: string,
    verdict: AlertVerdict,
    firing: Alert,
    value: number | null,
    nowSeconds: number,
  ): Promise<AlertTransition | undefined> {
    const reply = await this.command(
      this.keys.alertsState,
      this.keys.alertsHistory,
      id,
      verdict,
      JSON.stringify(firing),
      value === null ? "" : String(value),
      nowSeconds,
      ALERT_HISTORY_LENGTH,
    );
    if (!reply) return undefined;
    return {
      type: reply[0] === "fired" ? "alert.fired" : "alert.resolved",
      alert: normalise(JSON.parse(reply[1]) as Alert),
    };
  }

  /** Alerts firing now, most recently fired first. */
  async active(): Promise<Alert[]> {
    const values = await this.redis.hvals(this.keys.alertsState);
    return values
      .map((value) => normalise(JSON.parse(value) as Alert))
      .filter((alert) => alert.state === "firing")
      .sort((left, right) => right.fired_at - left.fired_at || (left.id < right.id ? -1 : 1));
  }

  /** Ids of the alerts currently stored as firing. */
  async activeIds(): Promise<string[]> {
    return this.redis.hkeys(this.keys.alertsState);
  }

  /** Resolved alerts, newest first. */
  async history(limit = ALERT_HISTORY_LENGTH): Promise<Alert[]> {
    const values = await this.redis.lrange(this.keys.alertsHistory, 0, limit - 1);
    return values.map((value) => normalise(JSON.parse(value) as Alert));
  }
}

/** Lua's cjson writes an empty table or a missing field differently: the public shape, always. */
function normalise(alert: Alert): Alert {
  return {
    id: alert.id,
    rule: alert.rule,
    kind: alert.kind,
    subject: alert.subject,
    state: alert.state,
    value: Number(alert.value),
    threshold: Number(alert.threshold),
    fired_at: Number(alert.fired_at),
    resolved_at:
      alert.resolved_at === null || alert.resolved_at === undefined ? null : Number(alert.resolved_at),
  };
}
