import { createHash } from "node:crypto";
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

/** Outbox entries one evaluation queues webhooks for, at most (the rest wait for the next). */
const OUTBOX_BATCH = 100;
/** An outbox `alert.fired` older than this is dropped, not sent. */
const OUTBOX_MAX_AGE_MS = 3_600_000;

const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

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
    const announce = (this.options.config.file.alerts?.webhook_urls.length ?? 0) > 0;
    const measurements = await measureRules(this.options, nowMs);
    const measured = new Set<string>();
    for (const measurement of measurements) {
      measured.add(measurement.id);
      // 12 significant digits wherever the value is read: Redis's cjson writes 14 of a value it
      // stores again (a firing alert's refresh), JavaScript 17 (0.19230769230769 beside 0.5333333333333333).
      if (measurement.value !== null) measurement.value = Number(measurement.value.toPrecision(12));
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
        nowMs,
        announce,
      );
      if (transition) this.log(transition);
    }
    // An alert whose rule left the config would fire for ever: it resolves.
    for (const id of await this.store.activeIds()) {
      if (measured.has(id)) continue;
      const placeholder = { id } as Alert;
      const transition = await this.store.apply(id, "resolve", placeholder, null, nowMs, announce);
      if (transition) this.log(transition);
    }
    this.evaluated += 1;
    if (announce) await this.sendOutbox(nowMs);
  }

  private log(transition: AlertTransition): void {
    const { logger } = this.options;
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
  }

  /**
   * Queues the webhooks of the transitions in the outbox (written with each transition, so one
   * whose process died before it queued them is sent by the next evaluation) and takes each off
   * once all its webhooks are queued. Ids come from the transition itself: queued twice (a
   * process that died between the add and the removal), BullMQ keeps one delivery.
   */
  private async sendOutbox(nowMs: number): Promise<void> {
    const { config, logger, webhookQueue } = this.options;
    const urls = config.file.alerts?.webhook_urls ?? [];
    for (const { raw, event: transition } of await this.store.unannounced(OUTBOX_BATCH)) {
      const { alert } = transition;
      const event: AlertEvent = {
        type: transition.type,
        timestamp: new Date(transition.atMs).toISOString(),
        data: alert,
      };
      // An alert.fired too old to tell anyone anything (the URLs were gone for an hour, say) is
      // dropped; an alert.resolved never is: its alert.fired may have gone out, and a receiver
      // would keep that incident open.
      if (transition.type === "alert.fired" && nowMs - transition.atMs > OUTBOX_MAX_AGE_MS) {
        logger.warn(
          { alert_id: alert.id, type: transition.type, at: event.timestamp },
          "an alert.fired whose webhooks were not queued within an hour; dropped",
        );
        await this.store.announced(raw);
        continue;
      }
      const body = JSON.stringify(event);
      const suffix = sha256Hex(raw).slice(0, 18);
      try {
        await Promise.all(
          urls.map((url) => {
            const data: WebhookJobData = {
              v: 1,
              // Of the transition and the URL, not its place in the list (a config may reorder it).
              delivery_id: `whd_alert_${suffix}_${sha256Hex(url).slice(0, 12)}`,
              webhook_id: `msg_alert_${suffix}`,
              tenant: OPERATORS_OWNER,
              job_id: alert.id,
              url,
              event_type: transition.type,
              created_at: Math.floor(transition.atMs / 1000),
              body,
            };
            return webhookQueue.add(WEBHOOK_JOB_NAME, data, webhookJobOptions(config, data.delivery_id));
          }),
        );
        await this.store.announced(raw);
      } catch (error) {
        // Left in the outbox: the next evaluation queues it again.
        logger.error(
          { err: (error as Error).message, alert_id: alert.id },
          "could not queue an alert's webhooks; retrying at the next evaluation",
        );
        return;
      }
    }
  }
}
