import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import type { Alert } from "./alert-types.js";

/**
 * Applies one evaluation to one alert, compare-and-set, so that however many evaluators race
 * (a lease handed over mid-tick) an alert fires once and resolves once.
 * KEYS[1] alerts state hash (alert id -> alert JSON); KEYS[2] history list (resolved alerts, newest first)
 * KEYS[3] outbox list: each transition, when ARGV[8] is "1" (there are webhook URLs), with the same
 * change, so that its webhooks are queued even when the process that made it dies first
 * ARGV[1] alert id; ARGV[2] verdict: fire | resolve | hold
 * ARGV[3] the alert JSON stored when it fires (state firing); ARGV[4] current value ("" = none)
 * ARGV[5] now (unix s); ARGV[6] history cap; ARGV[7] now (ms); ARGV[8] "1" to fill the outbox
 * Returns {"fired"|"resolved", alert JSON} on a transition, else false (a firing alert's value is refreshed).
 */
const TRANSITION_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local alert = current and cjson.decode(current) or nil
local firing = alert ~= nil and alert.state == 'firing'
local function outbox(kind, json)
  if ARGV[8] == '1' then
    redis.call('RPUSH', KEYS[3], '{"type":"' .. kind .. '","at_ms":' .. ARGV[7] .. ',"alert":' .. json .. '}')
  end
end
if ARGV[2] == 'fire' and not firing then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  outbox('alert.fired', ARGV[3])
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
  outbox('alert.resolved', json)
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

/** A transition that happened: who made it happen writes the log line. */
export interface AlertTransition {
  type: "alert.fired" | "alert.resolved";
  alert: Alert;
}

/** A transition in the outbox: its webhooks go out from there (at least once). */
export interface OutboxEntry extends AlertTransition {
  /** When it happened (Redis time, ms): the webhook's `timestamp`. */
  atMs: number;
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
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 3, lua: TRANSITION_SCRIPT });
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
    nowMs: number,
    announce: boolean,
  ): Promise<AlertTransition | undefined> {
    const reply = await this.command(
      this.keys.alertsState,
      this.keys.alertsHistory,
      this.keys.alertsOutbox,
      id,
      verdict,
      JSON.stringify(firing),
      value === null ? "" : String(value),
      Math.floor(nowMs / 1000),
      ALERT_HISTORY_LENGTH,
      Math.floor(nowMs),
      announce ? "1" : "0",
    );
    if (!reply) return undefined;
    return {
      type: reply[0] === "fired" ? "alert.fired" : "alert.resolved",
      alert: normalise(JSON.parse(reply[1]) as Alert),
    };
  }

  /** Transitions whose webhooks are not queued yet, oldest first (at most `limit`). */
  async unannounced(limit: number): Promise<Array<{ raw: string; event: OutboxEntry }>> {
    const values = await this.redis.lrange(this.keys.alertsOutbox, 0, limit - 1);
    return values.map((raw) => {
      const parsed = JSON.parse(raw) as { type: AlertTransition["type"]; at_ms: number; alert: Alert };
      return {
        raw,
        event: { type: parsed.type, atMs: Number(parsed.at_ms), alert: normalise(parsed.alert) },
      };
    });
  }

  /** The transition's webhooks are queued: off the outbox. */
  async announced(raw: string): Promise<void> {
    await this.redis.lrem(this.keys.alertsOutbox, 1, raw);
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
