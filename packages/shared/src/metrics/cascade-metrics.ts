import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { Attempt } from "../schemas/job.js";
import {
  FIRST_TOKEN_BUCKETS,
  HOP_DURATION_BUCKETS,
  QUEUE_WAIT_BUCKETS,
  REQUEST_DURATION_BUCKETS,
} from "./buckets.js";

/**
 * A label value that is never empty: a request's route is null for a `models` list or a model's
 * fallbacks, a skip or success carries no error reason. Every value passed here is a config id or
 * an enum member (bounded); job, request and user ids never become labels.
 */
export function labelValue(value: string | null | undefined): string {
  return value === null || value === undefined || value === "" ? "none" : value;
}

/**
 * One process's metrics (contract, "Operations"): its own prom-client Registry, never the global
 * one, so several apps in one test process (or an API and a worker in one bench) never share
 * counts or collide on registration. `attempt`, `firstToken` and `breakerTransition` are what the
 * engine calls (its EngineMetrics interface and Resilience's transition listener).
 */
export interface CascadeMetrics {
  readonly registry: Registry;
  readonly jobs: Counter<"route" | "tenant" | "status">;
  readonly gatewayRequests: Counter<"route" | "tenant" | "status">;
  readonly attempts: Counter<"provider" | "model" | "outcome" | "reason">;
  readonly fallbacks: Counter<"route" | "from" | "to" | "reason">;
  readonly breakerTransitions: Counter<"breaker" | "to">;
  readonly costUsd: Counter<"tenant" | "route" | "model">;
  readonly webhookDeliveries: Counter<"outcome">;
  readonly limitWaits: Counter<"provider" | "model">;
  readonly replicaWaits: Counter<"outcome">;
  readonly deploymentAttempts: Counter<"model" | "deployment" | "outcome" | "reason">;
  readonly queueWait: Histogram<"route">;
  readonly hopDuration: Histogram<"provider" | "model" | "outcome">;
  readonly timeToFirstToken: Histogram<"provider" | "model">;
  readonly jobDuration: Histogram<"route" | "status">;
  /** One recorded attempt: counted; its call timed unless it was skipped (no call was made). */
  attempt(attempt: Attempt): void;
  /** The first streamed token of a hop arrived `seconds` after the call was dispatched. */
  firstToken(provider: string, model: string, seconds: number): void;
  /** A hop waits for bucket capacity or a cooldown (skips are attempts with reason rate_limited). */
  limitWait(provider: string, model: string): void;
  /** A circuit breaker moved to `to` (closed, open, half_open). */
  breakerTransition(breaker: string, to: string): void;
  /** A webhook delivery attempt ended: delivered, retry, dead, or gone (the receiver answered 410). */
  webhookDelivery(outcome: "delivered" | "retry" | "dead" | "gone"): void;
  /** A wait for replicas (API_REPLICA_ACKS) ended: enough acknowledged, too few in time, or an error. */
  replicaWait(outcome: "acked" | "short" | "error"): void;
}

export interface MetricsOptions {
  /** Node's process metrics (cpu, memory, event loop lag, gc) on this registry; default true. */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): CascadeMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const jobs = new Counter({
    name: "cascade_jobs_total",
    help: "Jobs that ended, by route, tenant and final status.",
    labelNames: ["route", "tenant", "status"] as const,
    registers,
  });
  const gatewayRequests = new Counter({
    name: "cascade_gateway_requests_total",
    help: "Gateway requests (POST /v1/chat/completions) that ended, by route, tenant and final status.",
    labelNames: ["route", "tenant", "status"] as const,
    registers,
  });
  const attempts = new Counter({
    name: "cascade_attempts_total",
    help: "Attempts of every hop (calls and skips), by provider, model, outcome and reason.",
    labelNames: ["provider", "model", "outcome", "reason"] as const,
    registers,
  });
  const fallbacks = new Counter({
    name: "cascade_fallbacks_total",
    help: "Requests answered by a model other than their chain's first: from the first model, to the answering one, with the first failure's reason.",
    labelNames: ["route", "from", "to", "reason"] as const,
    registers,
  });
  const breakerTransitions = new Counter({
    name: "cascade_breaker_transitions_total",
    help: "Circuit breaker state changes made by this process, by breaker and new state.",
    labelNames: ["breaker", "to"] as const,
    registers,
  });
  const costUsd = new Counter({
    name: "cascade_cost_usd_total",
    help: "What finished requests cost in USD (failed attempts included), under the answering model, or the chain's first model when none answered.",
    labelNames: ["tenant", "route", "model"] as const,
    registers,
  });
  const webhookDeliveries = new Counter({
    name: "cascade_webhook_deliveries_total",
    help: "Webhook delivery attempts by outcome: delivered, retry, dead, gone (410).",
    labelNames: ["outcome"] as const,
    registers,
  });
  const deploymentAttempts = new Counter({
    name: "cascade_deployment_attempts_total",
    help: "Calls to each deployment of a pooled model, by model, deployment, outcome and reason.",
    labelNames: ["model", "deployment", "outcome", "reason"] as const,
    registers,
  });
  const limitWaits = new Counter({
    name: "cascade_limit_waits_total",
    help: "Hops that found no capacity in their buckets (or a cooldown) and waited for it, by provider and model.",
    labelNames: ["provider", "model"] as const,
    registers,
  });
  const replicaWaits = new Counter({
    name: "cascade_replica_waits_total",
    help: "Waits of the API for replicas to hold what write requests changed (API_REPLICA_ACKS): acked, short (fewer replicas in time: answered anyway), error.",
    labelNames: ["outcome"] as const,
    registers,
  });
  const queueWait = new Histogram({
    name: "cascade_queue_wait_seconds",
    help: "Seconds from a job's creation to its first run.",
    labelNames: ["route"] as const,
    buckets: QUEUE_WAIT_BUCKETS,
    registers,
  });
  const hopDuration = new Histogram({
    name: "cascade_hop_duration_seconds",
    help: "Seconds of each upstream call (skipped hops make none), by provider, model and outcome.",
    labelNames: ["provider", "model", "outcome"] as const,
    buckets: HOP_DURATION_BUCKETS,
    registers,
  });
  const timeToFirstToken = new Histogram({
    name: "cascade_time_to_first_token_seconds",
    help: "Seconds from dispatching a streamed call to its first token.",
    labelNames: ["provider", "model"] as const,
    buckets: FIRST_TOKEN_BUCKETS,
    registers,
  });
  const jobDuration = new Histogram({
    name: "cascade_job_duration_seconds",
    help: "Seconds from a job's creation to its end (queue and limit waits included), by route and status.",
    labelNames: ["route", "status"] as const,
    buckets: REQUEST_DURATION_BUCKETS,
    registers,
  });
  return {
    registry,
    jobs,
    gatewayRequests,
    attempts,
    fallbacks,
    breakerTransitions,
    costUsd,
    webhookDeliveries,
    limitWaits,
    replicaWaits,
    deploymentAttempts,
    queueWait,
    hopDuration,
    timeToFirstToken,
    jobDuration,
    attempt(attempt) {
      const provider = labelValue(attempt.provider);
      const model = labelValue(attempt.model);
      attempts.inc({ provider, model, outcome: attempt.outcome, reason: labelValue(attempt.reason) });
      if (attempt.outcome !== "skipped") {
        hopDuration.observe({ provider, model, outcome: attempt.outcome }, attempt.duration_ms / 1000);
      }
      if (attempt.deployment !== undefined) {
        deploymentAttempts.inc({
          model,
          deployment: labelValue(attempt.deployment),
          outcome: attempt.outcome,
          reason: labelValue(attempt.reason),
        });
      }
    },
    limitWait(provider, model) {
      limitWaits.inc({ provider: labelValue(provider), model: labelValue(model) });
    },
    firstToken(provider, model, seconds) {
      timeToFirstToken.observe({ provider: labelValue(provider), model: labelValue(model) }, seconds);
    },
    breakerTransition(breaker, to) {
      breakerTransitions.inc({ breaker: labelValue(breaker), to: labelValue(to) });
    },
    webhookDelivery(outcome) {
      webhookDeliveries.inc({ outcome });
    },
    replicaWait(outcome) {
      replicaWaits.inc({ outcome });
    },
  };
}
