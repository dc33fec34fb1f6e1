import {
  type ChainResult,
  type EngineMetrics,
  failedOutcome,
  interruptionOf,
  type JobEventSink,
  JobInterruption,
  type ProviderRegistry,
  type Resilience,
  type RunSignal,
  runChain,
  type StreamContinuation,
} from "@cascade/engine";
import {
  type Clock,
  type Config,
  endUserOf,
  type JobData,
  type JobOutcome,
  type Logger,
  type ResolvedChain,
  type RouteConfig,
  SHUTTING_DOWN,
  unixSeconds,
} from "@cascade/shared";
import { type GatewayBody, providerRequest } from "./gateway-body.js";

/** How long a gateway request waits for limits when neither header nor route says (contract). */
export const DEFAULT_SYNC_DEADLINE_MS = 30_000;

export interface GatewayRunnerDeps {
  config: Config;
  providers: ProviderRegistry;
  resilience: Resilience;
  clock: Clock;
  logger: Logger;
  random?: () => number;
  /** Where the engine counts attempts and first tokens (the API process's metrics). */
  metrics?: EngineMetrics;
}

/** The route settings of a resolved chain (a model's fallbacks and `models` lists have none). */
export function routeOf(config: Config, resolved: ResolvedChain): RouteConfig | undefined {
  return resolved.route === null ? undefined : config.file.routes[resolved.route];
}

/**
 * Runs gateway requests through the engine, as the worker runs jobs: the same chain runner,
 * breakers, buckets, cooldowns, budgets and usage records. What differs is only where it waits
 * (in this process, within the request's deadline: there is no queue to wait in) and that
 * nothing is saved between tries (a request that dies with its process is retried by its caller).
 */
export class GatewayRunner {
  constructor(private readonly deps: GatewayRunnerDeps) {}

  /** The job-shaped description of one request, as the engine reads it. */
  describe(input: {
    tenant: string;
    body: GatewayBody;
    resolved: ResolvedChain;
    deadlineMs: number;
  }): JobData {
    const { body, resolved } = input;
    const now = this.deps.clock.now();
    return {
      v: 1,
      tenant: input.tenant,
      request: providerRequest(body),
      route: resolved.route,
      chain: resolved.chain,
      policy: resolved.policy,
      ...(body.metadata ? { metadata: body.metadata } : {}),
      priority: 5,
      ...(body.max_cost_usd !== undefined ? { max_cost_usd: body.max_cost_usd } : {}),
      ...endUserOf(undefined, body.user),
      created_at: unixSeconds(now),
      deadline_at: now + input.deadlineMs,
    };
  }

  /**
   * The request's outcome, and for a request the provider found wrong the field it named
   * (`param`, for the 400's error; ChainResult's).
   */
  async run(input: {
    requestId: string;
    data: JobData;
    /**
     * The request's signal, shared by its calls as a worker's run shares its own (ADR 0023): the
     * caller leaving interrupts it; a call's timeout swaps it for a fresh one.
     */
    run: RunSignal;
    events?: JobEventSink;
    continuation?: StreamContinuation;
  }): Promise<{ outcome: JobOutcome; param?: string }> {
    const { deps } = this;
    const { run } = input;
    const result: ChainResult = await runChain({
      jobId: input.requestId,
      data: input.data,
      config: deps.config,
      providers: deps.providers,
      clock: deps.clock,
      logger: deps.logger,
      random: deps.random ?? Math.random,
      get signal() {
        return run.signal;
      },
      runSignal: run,
      resilience: deps.resilience,
      saveProgress: async () => undefined,
      maxInlineWaitMs: Number.POSITIVE_INFINITY,
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
      ...(input.events ? { events: input.events } : {}),
      ...(input.continuation ? { continuation: input.continuation } : {}),
    });
    // With every wait slept in process nothing defers, except a run stopped by the process
    // shutting down (GatewayRuns): it fails, so the caller gets a 503 and asks again elsewhere.
    if (result.kind === "deferred") {
      if (interruptionOf(run.signal)?.kind !== "shutdown") throw new JobInterruption("cancelled");
      return {
        outcome: failedOutcome(
          result.progress,
          { type: SHUTTING_DOWN, message: "this server is shutting down; send the request again" },
          deps.clock.now(),
        ),
      };
    }
    return result;
  }
}
