import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import type { readProviderStatus } from "../providers/provider-status.js";

const BREAKER_STATES = ["closed", "half_open", "open"] as const;

function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * GET /metrics in Prometheus text format: cluster-wide figures read from Redis (queue depth by
 * state, breaker states, recent calls/errors/skips per provider and model, limit headroom), so
 * any API process answers for the whole deployment.
 */
export function registerMetricsRoute(
  app: FastifyInstance,
  deps: {
    /** Breakers, limits and recent calls of every provider and model, read from Redis. */
    providerStatus: () => ReturnType<typeof readProviderStatus>;
    queues: Record<string, Queue>;
  },
): void {
  app.get("/metrics", { schema: { hide: true }, config: { access: "admin" } }, async (_request, reply) => {
    const lines: string[] = [];
    const metric = (name: string, help: string, type: "gauge" | "counter") => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    metric("cascade_queue_jobs", "Jobs in each queue by BullMQ state.", "gauge");
    for (const [queueName, queue] of Object.entries(deps.queues)) {
      const counts = await queue.getJobCounts(
        "waiting",
        "prioritized",
        "active",
        "delayed",
        "completed",
        "failed",
      );
      for (const [state, count] of Object.entries(counts)) {
        lines.push(`cascade_queue_jobs{queue="${label(queueName)}",state="${state}"} ${count}`);
      }
    }
    const status = await deps.providerStatus();
    metric("cascade_breaker_state", "1 for the breaker's current state (closed, half_open, open).", "gauge");
    metric("cascade_recent_calls", "Upstream calls, errors and skips over the last 5 minutes.", "gauge");
    metric("cascade_limit_available", "Tokens available now in each rpm/tpm bucket.", "gauge");
    metric("cascade_cooldown_active", "1 while a provider is cooling down after a 429.", "gauge");
    const breakerLines = new Set<string>();
    for (const provider of status.data) {
      const breakers = [provider.breaker, ...provider.models.map((model) => model.breaker)];
      for (const breaker of breakers as Array<{ id: string; state?: string } | null>) {
        if (!breaker?.state) continue;
        for (const state of BREAKER_STATES) {
          breakerLines.add(
            `cascade_breaker_state{breaker="${label(breaker.id)}",state="${state}"} ${breaker.state === state ? 1 : 0}`,
          );
        }
      }
      const subjects: Array<[string, string, Record<string, unknown>]> = [
        ["provider", provider.id, provider as unknown as Record<string, unknown>],
        ...provider.models.map((model): [string, string, Record<string, unknown>] => [
          "model",
          String(model.id),
          model,
        ]),
      ];
      for (const [scope, id, view] of subjects) {
        const recent = view.recent as { calls: number; errors: number; skips: number } | undefined;
        if (recent) {
          for (const kind of ["calls", "errors", "skips"] as const) {
            lines.push(
              `cascade_recent_calls{scope="${scope}",id="${label(id)}",kind="${kind}"} ${recent[kind]}`,
            );
          }
        }
        for (const limit of (view.limits as Array<{ kind: string; available: number }>) ?? []) {
          lines.push(
            `cascade_limit_available{scope="${scope}",id="${label(id)}",kind="${limit.kind}"} ${limit.available}`,
          );
        }
      }
      lines.push(
        `cascade_cooldown_active{provider="${label(provider.id)}"} ${provider.cooldown_until ? 1 : 0}`,
      );
    }
    lines.push(...breakerLines);
    reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return `${lines.join("\n")}\n`;
  });
}
