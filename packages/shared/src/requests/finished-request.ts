import type { Attempt, JobData, JobOutcome } from "../schemas/job.js";

/**
 * One request that reached its end, from either door: a job, or a gateway call. What metrics,
 * usage counts and alerts count ("a request is a job or a gateway call, never an attempt").
 */
export interface FinishedRequest {
  door: "job" | "gateway";
  tenant: string;
  /** The route the chain came from; null for a `models` list or a model's fallbacks. */
  route: string | null;
  /** The chain's first model: a request answered by another model fell back. */
  firstModel: string;
  status: JobOutcome["status"];
  /** The model (config id) and provider that answered, when one did. */
  model?: string;
  provider?: string;
  /** Everything the request cost, failed attempts included. */
  costUsd: number;
  attempts: readonly Attempt[];
  /** Unix ms: when the request was made, when it first started running, when it ended. */
  createdAtMs: number;
  startedAtMs?: number;
  finishedAtMs: number;
}

/**
 * Money a run spent that no finished request's cost carries: what a job's run was charged after
 * its last saved progress when the run could not end the job (it lost the job's lock, or BullMQ
 * refused its result). The run that ends the job counts the job and the saved cost; this is
 * counted only here. Budgets and `by_*` spend already hold it (settled with each call).
 */
export interface StrayCharge {
  tenant: string;
  route: string | null;
  /** The chain's first model, as a finished request's cost is counted under it in usage rows. */
  firstModel: string;
  /** The model whose calls cost it, where known (the metric's `model` label; else the first). */
  model?: string;
  costUsd: number;
  atMs: number;
}

/** Told of every finished request; must not throw or block (record and return). */
export interface RequestObserver {
  finished(request: FinishedRequest): void;
  /** Told of money spent outside any finished request (StrayCharge); cost counters add it. */
  charged?(charge: StrayCharge): void;
  /** Writes what it gathered in memory now (tests, and readers that must see the latest). */
  flush?(): Promise<void>;
  /** Writes what is left and stops its timers: on shutdown, after the last request ended. */
  close?(): Promise<void>;
}

/** Whether a request was answered by a model other than its chain's first (the fallback rate's numerator). */
export function fellBack(request: Pick<FinishedRequest, "status" | "model" | "firstModel">): boolean {
  return (
    request.status === "succeeded" && request.model !== undefined && request.model !== request.firstModel
  );
}

export function finishedRequestOf(
  door: FinishedRequest["door"],
  data: JobData,
  outcome: JobOutcome,
  times: { createdAtMs: number; startedAtMs?: number; finishedAtMs: number },
): FinishedRequest {
  return {
    door,
    tenant: data.tenant,
    route: data.route,
    firstModel: data.chain[0]?.model ?? "",
    status: outcome.status,
    ...(outcome.model !== undefined ? { model: outcome.model } : {}),
    ...(outcome.provider !== undefined ? { provider: outcome.provider } : {}),
    costUsd: outcome.cost_usd,
    attempts: outcome.attempts,
    ...times,
  };
}

/**
 * Several observers as one; one that throws is logged by `onError` and does not stop the others.
 * `flush` and `close` reach every observer that has them.
 */
export function observeAll(
  observers: readonly RequestObserver[],
  onError: (error: unknown) => void,
): RequestObserver {
  const each = async (step: (observer: RequestObserver) => Promise<void> | undefined) => {
    await Promise.all(
      observers.map(async (observer) => {
        try {
          await step(observer);
        } catch (error) {
          onError(error);
        }
      }),
    );
  };
  return {
    finished(request) {
      for (const observer of observers) {
        try {
          observer.finished(request);
        } catch (error) {
          onError(error);
        }
      }
    },
    charged(charge) {
      for (const observer of observers) {
        try {
          observer.charged?.(charge);
        } catch (error) {
          onError(error);
        }
      }
    },
    flush: () => each((observer) => observer.flush?.()),
    close: () => each((observer) => observer.close?.()),
  };
}
