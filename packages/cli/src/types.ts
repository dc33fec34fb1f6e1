/** The API's objects as the CLI reads them (see CONTRACT.md); only what the CLI uses is typed. */

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

export interface Attempt {
  model: string;
  provider: string;
  outcome: "success" | "error" | "skipped";
  reason?: string;
  http_status?: number;
  message?: string;
  duration_ms: number;
  started_at?: number;
  retry_after_ms?: number;
}

export interface ToolCall {
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletion {
  id?: string;
  model?: string;
  choices?: Array<{
    index?: number;
    message?: { role?: string; content?: string | null; tool_calls?: ToolCall[]; refusal?: string | null };
    finish_reason?: string | null;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number };
}

export interface Job {
  id: string;
  object: "job";
  status: JobStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  route: string | null;
  models?: string[];
  priority?: number;
  metadata?: Record<string, string>;
  user?: string | null;
  result: ChatCompletion | null;
  model: string | null;
  provider: string | null;
  cost_usd: number;
  attempts: Attempt[];
  error: { type: string; message: string } | null;
  webhook?: { url: string } | null;
}

export interface LimitView {
  scope: string;
  kind: string;
  limit: number;
  capacity: number;
  available: number;
}

export interface RecentStats {
  window_s?: number;
  calls: number;
  errors: number;
  skips: number;
  /** Finished requests that tried it, and those answered by another model or provider. */
  requests?: number;
  fallbacks?: number;
  error_rate: number | null;
  fallback_rate: number | null;
}

export interface BreakerView {
  id: string;
  state?: string;
  forced?: "open" | "closed" | null;
  open_until?: number | null;
  shared_with_provider?: boolean;
}

export interface ModelStatus {
  id: string;
  name?: string;
  capabilities?: string[];
  context_window?: number | null;
  breaker?: BreakerView | null;
  /** A model's own 429 cooldown (models with limits of their own; a pool's deployments). */
  cooldown_until?: number | null;
  limits?: LimitView[];
  recent?: RecentStats;
}

export interface ProviderStatus {
  id: string;
  type: string;
  breaker?: BreakerView;
  cooldown_until: number | null;
  limits: LimitView[];
  recent?: RecentStats;
  models: ModelStatus[];
}

export function isTerminal(job: { status: string }): boolean {
  return TERMINAL_STATUSES.has(job.status);
}

/**
 * A job "fell back" when it ended on a model other than its chain's first, or any hop did not
 * succeed. A call stopped by the job's own interruption or its worker's end (an error with no
 * reason: a cancel, a lost lock, a call a dead worker left in flight) is no failure of a hop.
 */
export function fellBack(job: { model: string | null; models?: string[]; attempts?: Attempt[] }): boolean {
  const failed = (attempt: Attempt) =>
    attempt.outcome !== "success" && !(attempt.outcome === "error" && attempt.reason === undefined);
  if (job.attempts?.some(failed)) return true;
  const first = job.models?.[0];
  return job.model !== null && first !== undefined && job.model !== first;
}

/** The first choice's text, if any. */
export function resultContent(result: ChatCompletion | null | undefined): string | null {
  const content = result?.choices?.[0]?.message?.content;
  return typeof content === "string" ? content : null;
}
