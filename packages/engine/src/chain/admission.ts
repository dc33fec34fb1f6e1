import { costUsd, type HopConfig, type ModelConfig, primaryProvider, type Reason } from "@cascade/shared";
import type { Ticket } from "../resilience/resilience.js";
import type { ChainContext } from "./chain-context.js";
import type { RequestEstimate } from "./prechecks.js";

export type HopAdmission =
  | { kind: "go"; ticket: Ticket | undefined }
  | { kind: "defer"; until: number; detail: string }
  | { kind: "skip"; reason: Reason; message: string; waitMs?: number };

/**
 * Asks the shared limits whether a hop may call now. A hop without tokens waits in the delayed
 * set while the job's deadline allows; otherwise it is skipped, as is a hop whose breaker is open
 * or whose budget is spent.
 */
export async function admitHop(
  context: ChainContext,
  hop: HopConfig,
  model: ModelConfig,
  estimate: RequestEstimate,
  timeoutMs: number,
): Promise<HopAdmission> {
  if (!context.resilience) return { kind: "go", ticket: undefined };
  const { data, clock } = context;
  const admission = await context.resilience.admit({
    providerId: primaryProvider(model),
    modelId: hop.model,
    model,
    tenant: data.tenant,
    user: data.user,
    route: data.route,
    tokens: estimate.promptTokens + estimate.maxTokens,
    costUsd: costUsd(model, estimate.promptTokens, estimate.maxTokens),
    timeoutMs,
  });
  if (admission.admitted) return { kind: "go", ticket: admission.ticket };
  const now = clock.now();
  if (
    admission.reason === "rate_limited" &&
    admission.waitMs !== undefined &&
    now + admission.waitMs <= data.deadline_at
  ) {
    // A little jitter keeps jobs waiting on one bucket from all waking at the same instant.
    const jitter = Math.floor(context.random() * Math.min(100, admission.waitMs * 0.1));
    return { kind: "defer", until: now + admission.waitMs + jitter, detail: admission.detail };
  }
  const messages: Record<string, string> = {
    circuit_open: `circuit breaker is open (${admission.detail})`,
    rate_limited:
      admission.waitMs === undefined
        ? `no ${admission.detail} capacity`
        : `no ${admission.detail} capacity for ${admission.waitMs} ms, past the job's deadline`,
    over_budget: `budget exhausted (${admission.detail} USD)`,
  };
  return {
    kind: "skip",
    reason: admission.reason,
    message: messages[admission.reason] ?? admission.detail,
    // When capacity returns: a gateway caller's Retry-After comes from the earliest of these.
    ...(admission.reason === "rate_limited" && admission.waitMs !== undefined
      ? { waitMs: admission.waitMs }
      : {}),
  };
}
