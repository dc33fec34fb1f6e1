import type { AlertStore } from "./alert-store.js";

/**
 * What `cascade_alerts_firing` shows: 1 per firing alert, 0 for recently resolved ones (read from
 * Redis at each scrape with the other deployment-wide gauges: every process reports the same
 * alerts, whichever holds the evaluation lease).
 */
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
