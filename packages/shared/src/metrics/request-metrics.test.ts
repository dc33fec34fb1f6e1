import { describe, expect, it } from "vitest";
import type { FinishedRequest } from "../requests/finished-request.js";
import { createMetrics } from "./cascade-metrics.js";
import { requestMetricsObserver } from "./request-metrics.js";

const base: FinishedRequest = {
  door: "job",
  tenant: "acme",
  route: "default",
  firstModel: "primary",
  status: "succeeded",
  model: "backup",
  provider: "openai",
  costUsd: 0.25,
  attempts: [
    {
      model: "primary",
      provider: "openai",
      outcome: "skipped",
      reason: "circuit_open",
      duration_ms: 0,
      started_at: 1,
    },
    { model: "backup", provider: "openai", outcome: "success", duration_ms: 1200, started_at: 1 },
  ],
  createdAtMs: 10_000,
  startedAtMs: 12_500,
  finishedAtMs: 14_000,
};

async function sampleOf(
  metrics: ReturnType<typeof createMetrics>,
  name: string,
  labels: Record<string, string>,
) {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  const found = metric?.values.find(
    (value) =>
      (value.metricName ?? name) === (name.endsWith("_seconds") ? `${name}_count` : name) &&
      Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted),
  );
  return found?.value;
}

describe("requestMetricsObserver", () => {
  it("counts a fallen-back job under its door, its cost under the answering model, and its waits", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    requestMetricsObserver(metrics).finished(base);
    expect(
      await sampleOf(metrics, "cascade_jobs_total", {
        route: "default",
        tenant: "acme",
        status: "succeeded",
      }),
    ).toBe(1);
    expect(
      await sampleOf(metrics, "cascade_cost_usd_total", {
        tenant: "acme",
        route: "default",
        model: "backup",
      }),
    ).toBe(0.25);
    expect(
      await sampleOf(metrics, "cascade_fallbacks_total", {
        route: "default",
        from: "primary",
        to: "backup",
        reason: "circuit_open",
      }),
    ).toBe(1);
    expect(await sampleOf(metrics, "cascade_queue_wait_seconds", { route: "default" })).toBe(1);
    expect(
      await sampleOf(metrics, "cascade_job_duration_seconds", { route: "default", status: "succeeded" }),
    ).toBe(1);
    const page = await metrics.registry.metrics();
    expect(page).toContain('cascade_queue_wait_seconds_sum{route="default"} 2.5');
    expect(page).toContain('cascade_job_duration_seconds_sum{route="default",status="succeeded"} 4');
  });

  it("labels a gateway request without a route as none, a failure's cost under its first model, and times no queue", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const { model: _model, provider: _provider, startedAtMs: _started, ...failed } = base;
    requestMetricsObserver(metrics).finished({ ...failed, door: "gateway", route: null, status: "failed" });
    expect(
      await sampleOf(metrics, "cascade_gateway_requests_total", {
        route: "none",
        tenant: "acme",
        status: "failed",
      }),
    ).toBe(1);
    expect(await sampleOf(metrics, "cascade_cost_usd_total", { route: "none", model: "primary" })).toBe(0.25);
    expect(await sampleOf(metrics, "cascade_fallbacks_total", {})).toBeUndefined();
    expect(await sampleOf(metrics, "cascade_job_duration_seconds", {})).toBeUndefined();
    expect(await sampleOf(metrics, "cascade_jobs_total", {})).toBeUndefined();
  });
});

describe("createMetrics", () => {
  it("counts a pooled model's calls per deployment", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.attempt({ ...(base.attempts[1] as never), deployment: "east" });
    metrics.attempt({
      model: "backup",
      provider: "openai",
      deployment: "west",
      outcome: "error",
      reason: "rate_limited",
      duration_ms: 10,
      started_at: 1,
    });
    metrics.attempt(base.attempts[0] as never);
    expect(
      await sampleOf(metrics, "cascade_deployment_attempts_total", {
        deployment: "east",
        outcome: "success",
      }),
    ).toBe(1);
    expect(
      await sampleOf(metrics, "cascade_deployment_attempts_total", {
        deployment: "west",
        reason: "rate_limited",
      }),
    ).toBe(1);
    expect(
      await sampleOf(metrics, "cascade_deployment_attempts_total", { model: "primary" }),
    ).toBeUndefined();
  });

  it("counts attempts, times calls but not skips, and keeps each registry to itself", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const other = createMetrics({ defaultMetrics: false });
    for (const attempt of base.attempts) metrics.attempt(attempt);
    metrics.firstToken("openai", "backup", 0.3);
    metrics.breakerTransition("provider:openai", "open");
    metrics.webhookDelivery("gone");
    expect(
      await sampleOf(metrics, "cascade_attempts_total", {
        provider: "openai",
        model: "primary",
        outcome: "skipped",
        reason: "circuit_open",
      }),
    ).toBe(1);
    expect(await sampleOf(metrics, "cascade_attempts_total", { model: "backup", reason: "none" })).toBe(1);
    expect(await sampleOf(metrics, "cascade_hop_duration_seconds", { model: "primary" })).toBeUndefined();
    expect(
      await sampleOf(metrics, "cascade_hop_duration_seconds", { model: "backup", outcome: "success" }),
    ).toBe(1);
    expect(await sampleOf(metrics, "cascade_time_to_first_token_seconds", { model: "backup" })).toBe(1);
    expect(
      await sampleOf(metrics, "cascade_breaker_transitions_total", {
        breaker: "provider:openai",
        to: "open",
      }),
    ).toBe(1);
    expect(await sampleOf(metrics, "cascade_webhook_deliveries_total", { outcome: "gone" })).toBe(1);
    expect(await sampleOf(other, "cascade_webhook_deliveries_total", {})).toBeUndefined();
  });
});
