import { Gauge, type Registry } from "prom-client";
import type { AlertStore } from "./alert-store.js";

/** What `cascade_alerts_firing` shows: 1 per firing alert, 0 for recently resolved ones. */
export async function alertsFiringSamples(
  store: AlertStore,
): Promise<Array<{ kind: string; subject: string; value: number }>> {
  const [active, history] = await Promise.all([store.active(), store.history(50)]);
  const samples = new Map<string, { kind: string; subject: string; value: number }>();
  for (const alert of history)
    samples.set(`${alert.kind}\n${alert.subject}`, { kind: alert.kind, subject: alert.subject, value: 0 });
  for (const alert of active)
    samples.set(`${alert.kind}\n${alert.subject}`, { kind: alert.kind, subject: alert.subject, value: 1 });
  return [...samples.values()];
}

/**
 * Registers `cascade_alerts_firing{kind,subject}` on a registry, read from Redis at each scrape
 * (so every process reports the same alerts, whichever holds the evaluation lease). A read that
 * fails, or takes longer than `waitMs` (Redis away or stalled), leaves the gauge empty for that
 * scrape: the process's other series are still served (the scrape failed as a whole before).
 */
export function registerAlertsGauge(
  registry: Registry,
  store: AlertStore,
  waitMs = 2_000,
): Gauge<"kind" | "subject"> {
  return new Gauge({
    name: "cascade_alerts_firing",
    help: "1 while an alert fires, 0 once it resolved (kind, subject)",
    labelNames: ["kind", "subject"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const read = alertsFiringSamples(store);
      let timer: NodeJS.Timeout | undefined;
      const samples = await Promise.race([
        read,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), waitMs);
        }),
      ])
        .catch(() => undefined)
        .finally(() => clearTimeout(timer));
      read.catch(() => {});
      for (const sample of samples ?? []) {
        this.set({ kind: sample.kind, subject: sample.subject }, sample.value);
      }
    },
  });
}
