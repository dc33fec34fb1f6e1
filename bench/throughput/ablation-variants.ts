/**
 * The ablation ladder: raw BullMQ plus Cascade's per-job work added one piece at a time, each
 * step keeping the previous ones, ending at the real worker. The difference in µs/job between
 * neighbouring steps is what that piece costs at this concurrency.
 */
import type { BenchModules } from "../support/modules.js";
import type { RawVariant } from "./sides.js";
import { BENCH_MODEL, benchConfigFile, buildJobData } from "./workload.js";

type Config = import("../../packages/shared/dist/index.js").Config;
type JobOutcome = import("../../packages/shared/dist/index.js").JobOutcome;
type Logger = import("../../packages/shared/dist/index.js").Logger;
type BullJob = { id?: string; data: unknown };

export interface Ladder {
  steps: Array<
    | { kind: "raw"; variant: RawVariant; note: string }
    | { kind: "cascade"; label: string; logLevel: string; note: string }
  >;
  close(): void;
}

/** One real outcome of the bench job, from the chain runner itself, for the raw steps to return. */
async function sampleOutcome(modules: BenchModules, config: Config): Promise<JobOutcome> {
  const { shared, engine } = modules;
  const result = await engine.runChain({
    jobId: shared.newId("job"),
    data: buildJobData(modules, config, Date.now()),
    config,
    providers: engine.createProviderRegistry(config),
    clock: shared.systemClock,
    logger: shared.createLogger("silent"),
    random: Math.random,
    signal: new AbortController().signal,
    saveProgress: async () => {},
  });
  if (result.kind !== "finished") throw new Error("the bench job did not finish in one go");
  return result.outcome;
}

export async function buildLadder(modules: BenchModules): Promise<Ladder> {
  const { shared, pino } = modules;
  const config = shared.loadConfig(
    { CASCADE_REDIS_PREFIX: "bench", LOG_LEVEL: "info" },
    { raw: benchConfigFile() },
  );
  const outcome = await sampleOutcome(modules, config);
  const destinations = [
    pino.destination({ dest: "/dev/null", sync: false }),
    pino.destination({ dest: "/dev/null", sync: false }),
  ];
  const [redactedDestination, plainDestination] = destinations as [
    (typeof destinations)[0],
    (typeof destinations)[0],
  ];
  const logger = shared.createLogger("info", { name: "cascade-worker" }, redactedDestination);
  const unredactedLogger = shared.createLogger(
    "info",
    { name: "cascade-worker", redact: undefined },
    plainDestination,
  );
  const hopTimeoutMs = config.file.routes.default?.chain[0]?.timeout_ms ?? 60_000;
  const inflight = new Map<string, AbortController>();

  const apiOptions = (data: { priority: number }) => ({
    jobId: shared.newId("job"),
    priority: data.priority,
  });
  // As createCompletionWorker sets them (packages/worker/src/completion/completion-worker.ts).
  const workerOptions = {
    lockDuration: config.settings.WORKER_LOCK_DURATION_MS,
    stalledInterval: config.settings.WORKER_LOCK_DURATION_MS,
    maxStalledCount: 5,
    removeOnComplete: { age: config.settings.JOB_RETENTION_S },
    removeOnFail: { age: config.settings.JOB_RETENTION_S },
  };
  const validate = (job: BullJob) => {
    const parsed = shared.jobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new Error("invalid job data");
    return parsed.data;
  };
  const withSignals = async <T>(job: BullJob, work: () => T): Promise<T> => {
    const controller = new AbortController();
    inflight.set(job.id as string, controller);
    try {
      const timeout = AbortSignal.timeout(hopTimeoutMs);
      const signal = AbortSignal.any([controller.signal, timeout]);
      await Promise.resolve(signal);
      return work();
    } finally {
      inflight.delete(job.id as string);
    }
  };
  const logHop = (target: Logger, job: BullJob, data: { tenant: string; route: string | null }) =>
    target.info(
      {
        job_id: job.id,
        tenant: data.tenant,
        route: data.route,
        hop: 0,
        current_model: BENCH_MODEL,
        provider: "bench-sim",
        outcome: "success",
        fallback_reason: undefined,
        http_status: undefined,
        duration_ms: 0,
      },
      "hop succeeded",
    );

  return {
    steps: [
      { kind: "raw", variant: { label: "raw" }, note: "no-op processor, plain addBulk" },
      {
        kind: "raw",
        variant: { label: "+api-opts", jobOptions: apiOptions },
        note: "jobId + priority 5, as JobStore.add",
      },
      {
        kind: "raw",
        variant: { label: "+worker-opts", jobOptions: apiOptions, workerOptions },
        note: "removeOnComplete/Fail {age}, lock/stalled settings",
      },
      {
        kind: "raw",
        variant: { label: "+outcome", jobOptions: apiOptions, workerOptions, processor: async () => outcome },
        note: "returns a real JobOutcome (stored as returnvalue)",
      },
      {
        kind: "raw",
        variant: {
          label: "+zod",
          jobOptions: apiOptions,
          workerOptions,
          processor: async (job) => {
            validate(job);
            return outcome;
          },
        },
        note: "jobDataSchema.safeParse(job.data)",
      },
      {
        kind: "raw",
        variant: {
          label: "+signals",
          jobOptions: apiOptions,
          workerOptions,
          processor: async (job) => {
            validate(job);
            return withSignals(job, () => outcome);
          },
        },
        note: "AbortController + AbortSignal.timeout + AbortSignal.any per job",
      },
      {
        kind: "raw",
        variant: {
          label: "+log-noredact",
          jobOptions: apiOptions,
          workerOptions,
          processor: async (job) => {
            const data = validate(job);
            return withSignals(job, () => {
              logHop(unredactedLogger, job, data);
              return outcome;
            });
          },
        },
        note: "the hop's info line, pino without redact",
      },
      {
        kind: "raw",
        variant: {
          label: "+log",
          jobOptions: apiOptions,
          workerOptions,
          processor: async (job) => {
            const data = validate(job);
            return withSignals(job, () => {
              logHop(logger, job, data);
              return outcome;
            });
          },
        },
        note: "the hop's info line through createLogger (redact paths on)",
      },
      { kind: "cascade", label: "cascade-silent", logLevel: "silent", note: "real worker, LOG_LEVEL=silent" },
      { kind: "cascade", label: "cascade", logLevel: "info", note: "real worker, LOG_LEVEL=info" },
    ],
    close() {
      for (const destination of destinations) destination.end();
    },
  };
}
