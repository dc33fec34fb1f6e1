import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { OPERATORS_OWNER, WEBHOOK_JOB_NAME, type WebhookJobData } from "../webhooks/delivery.js";
import { type WebhookQueue, webhookJobOptions } from "../webhooks/enqueue.js";
import { RedisLease } from "./alert-lease.js";
import { type Measurement, measureRules } from "./alert-measures.js";
import { AlertStore, type AlertTransition, type AlertVerdict } from "./alert-store.js";
import type { Alert, AlertEvent } from "./alert-types.js";

/** Rules are evaluated at least every 5 s (contract); every 2 s by default. */
export const ALERT_INTERVAL_MS = 2000;

export interface AlertEvaluatorOptions {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  /** The webhooks queue: alert webhooks are deliveries like job webhooks (retries, dead list). */
  webhookQueue: WebhookQueue;
  /** Between evaluations (default 2 s; tests shorten it). */
  intervalMs?: number;
}

function verdictOf(measurement: Measurement): AlertVerdict {
  if (measurement.value === null) return "hold";
  if (measurement.value > measurement.fireAbove) return "fire";
  if (measurement.value < measurement.resolveBelow) return "resolve";
  return "hold";
}

/**
 * Evaluates the config's alert rules. Every API and worker process runs one; a Redis lease lets
 * exactly one of them evaluate at a time, and each transition is a compare-and-set in Redis, so
 * an alert fires once and resolves once whichever process sees it. A transition is a log line,
 * the `cascade_alerts_firing` gauge (read from Redis, see alerts-gauge.ts) and a signed webhook to
 * every `alerts.webhook_urls` entry, owned by OPERATORS_OWNER.
 */
export class AlertEvaluator {
  readonly store: AlertStore;
  private readonly lease: RedisLease;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private evaluated = 0;

  constructor(private readonly options: AlertEvaluatorOptions) {
    this.intervalMs = options.intervalMs ?? ALERT_INTERVAL_MS;
    this.store = new AlertStore(options.redis, options.keys);
    // A dead holder's lease lapses one second after its last renewal; the others try every
    // interval, so evaluation resumes within interval + 1 s + interval (5 s at the default 2 s).
    this.lease = new RedisLease(options.redis, options.keys.alertsLease, this.intervalMs + 1_000);
  }

  /** Whether the config has rules to evaluate. */
  get enabled(): boolean {
    return (this.options.config.file.alerts?.rules.length ?? 0) > 0;
  }

  /** Evaluations this process made while holding the lease. */
  get evaluations(): number {
    return this.evaluated;
  }

  get leading(): boolean {
    return this.lease.holding;
  }

  /**
   * Starts ticking. Without rules there is nothing to evaluate, but alerts of rules since removed
   * may still be firing: one evaluation resolves them.
   */
  start(): void {
    if (this.timer || this.stopped) return;
    if (!this.enabled) {
      this.running = this.tick()
        .catch(() => {})
        .finally(() => {
          this.running = undefined;
        });
      return;
    }
    const loop = () => {
      this.running = this.tick()
        .catch((error: unknown) =>
          this.options.logger.warn({ err: (error as Error).message }, "alert evaluation failed; retrying"),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) {
            this.timer = setTimeout(loop, this.intervalMs);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  /** Stops ticking, waits for a running evaluation, and hands the lease back. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.lease.release().catch(() => {});
  }

  /** One evaluation, if this process holds (or can take) the lease. */
  async tick(): Promise<void> {
    if (!(await this.lease.acquireOrRenew())) return;
    const { redis } = this.options;
    const [seconds, micros] = await redis.time();
    const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const nowSeconds = Math.floor(nowMs / 1000);
    const measurements = await measureRules(this.options, nowMs);
    const measured = new Set<string>();
    for (const measurement of measurements) {
      measured.add(measurement.id);
      const firing: Alert = {
        id: measurement.id,
        rule: measurement.rule,
        kind: measurement.kind,
        subject: measurement.subject,
        state: "firing",
        value: measurement.value ?? 0,
        threshold: measurement.threshold,
        fired_at: nowSeconds,
        resolved_at: null,
      };
      const transition = await this.store.apply(
        measurement.id,
        verdictOf(measurement),
        firing,
        measurement.value,
        nowSeconds,
      );
      if (transition) await this.announce(transition, nowMs);
    }
    // An alert whose rule left the config would fire for ever: it resolves.
    for (const id of await this.store.activeIds()) {
      if (measured.has(id)) continue;
      const placeholder = { id } as Alert;
      const transition = await this.store.apply(id, "resolve", placeholder, null, nowSeconds);
      if (transition) await this.announce(transition, nowMs);
    }
    this.evaluated += 1;
  }

  private async announce(transition: AlertTransition, nowMs: number): Promise<void> {
    const { config, logger, webhookQueue } = this.options;
    const { alert } = transition;
    const fields = {
      alert_id: alert.id,
      kind: alert.kind,
      subject: alert.subject,
      value: alert.value,
      threshold: alert.threshold,
    };
    if (transition.type === "alert.fired") logger.warn(fields, `alert fired: ${alert.id}`);
    else logger.info(fields, `alert resolved: ${alert.id}`);
    const urls = config.file.alerts?.webhook_urls ?? [];
    if (urls.length === 0) return;
    const event: AlertEvent = {
      type: transition.type,
      timestamp: new Date(nowMs).toISOString(),
      data: alert,
    };
    const body = JSON.stringify(event);
    const suffix = randomBytes(9).toString("hex");
    await Promise.all(
      urls.map((url, index) => {
        const data: WebhookJobData = {
          v: 1,
          delivery_id: `whd_alert_${suffix}_${index}`,
          webhook_id: `msg_alert_${suffix}`,
          tenant: OPERATORS_OWNER,
          job_id: alert.id,
          url,
          event_type: transition.type,
          created_at: Math.floor(nowMs / 1000),
          body,
        };
        return webhookQueue
          .add(WEBHOOK_JOB_NAME, data, webhookJobOptions(config, data.delivery_id))
          .catch((error: unknown) =>
            logger.error(
              { err: (error as Error).message, alert_id: alert.id, url },
              "could not queue an alert webhook",
            ),
          );
      }),
    );
  }
}
