import { realpathSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { ApiError, backoffMs, isAbortError, NetworkError, sleep } from "../api-client.js";
import { parseCommand, SUBMIT_USAGE, UsageError } from "../cli-args.js";
import type { Context } from "../context.js";
import { CliError } from "../errors.js";
import { formatDuration, formatPercent, formatUsd, plural, shellQuote } from "../format.js";
import {
  type InputEntry,
  idempotencyKey,
  interpretLine,
  type JobOptions,
  jobBody,
  readLines,
  scanInput,
} from "../submit/input.js";
import { figures, newTally, ProgressReporter } from "../submit/progress.js";
import { type ResultRecord, ResultsFile, type StateHeader, SubmitState } from "../submit/state.js";
import { fellBack, isTerminal, type Job } from "../types.js";

const DEFAULT_CONCURRENCY = 32;
const MAX_CONCURRENCY = 1000;
/** Seconds each GET /v1/jobs/:id?wait= holds (the API allows up to 60). */
const WAIT_SECONDS = 30;
/** Tries of one request through network errors, 5xx, 429 and 409 before the run gives up. */
const MAX_TRIES = 8;
/** After Ctrl+C, how long submissions already sent may take to answer (so their job ids are kept). */
const SUBMIT_GRACE_MS = 3000;

export interface SubmitOptions extends JobOptions {
  input: string;
  out: string;
  concurrency: number;
  progressIntervalMs: number;
}

/** `cascade submit <requests.jsonl> --out <results.jsonl> ...`. */
export async function submitCommand(args: string[], context: Context): Promise<number> {
  const { values, positionals } = parseCommand(
    "submit",
    args,
    {
      out: { type: "string", short: "o" },
      route: { type: "string" },
      model: { type: "string" },
      webhook: { type: "string" },
      concurrency: { type: "string", short: "c" },
    },
    SUBMIT_USAGE,
  );
  if (values.help) {
    context.stdout.write(`${SUBMIT_USAGE}\n`);
    return 0;
  }
  if (positionals.length === 0)
    throw new UsageError("cascade submit: missing the input file (requests.jsonl)", SUBMIT_USAGE);
  if (positionals.length > 1) {
    throw new UsageError(`cascade submit: unexpected argument ${positionals[1]}`, SUBMIT_USAGE);
  }
  if (!values.out) throw new UsageError("cascade submit: --out <results.jsonl> is required", SUBMIT_USAGE);
  let concurrency = DEFAULT_CONCURRENCY;
  if (values.concurrency !== undefined) {
    concurrency = Number(values.concurrency);
    if (!/^\d+$/.test(values.concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw new UsageError(
        `cascade submit: --concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}`,
        SUBMIT_USAGE,
      );
    }
  }
  if (values.webhook !== undefined && !/^https?:\/\/[^\s]+$/i.test(values.webhook)) {
    throw new UsageError("cascade submit: --webhook must be an http(s) URL", SUBMIT_USAGE);
  }
  for (const name of ["route", "model"] as const) {
    if (values[name] === "") throw new UsageError(`cascade submit: --${name} needs a value`, SUBMIT_USAGE);
  }
  const interval = Number(context.env.CASCADE_PROGRESS_INTERVAL ?? 5);
  return runSubmit(
    {
      input: positionals[0] as string,
      out: values.out,
      route: values.route,
      model: values.model,
      webhook: values.webhook,
      concurrency,
      progressIntervalMs: Number.isFinite(interval) && interval > 0 ? interval * 1000 : 5000,
    },
    context,
  );
}

/** A line still to finish: to submit (no job id yet) or to collect. */
interface Task {
  line: number;
  customId: string;
  jobId?: string;
  body?: Record<string, unknown>;
  key?: string;
}

/** The command that picks an interrupted run up again (no API key in it: it may be secret). */
function resumeCommand(options: SubmitOptions, context: Context): string {
  const words = ["cascade", "submit", options.input, "--out", options.out];
  if (options.route) words.push("--route", options.route);
  if (options.model) words.push("--model", options.model);
  if (options.webhook) words.push("--webhook", options.webhook);
  if (options.concurrency !== DEFAULT_CONCURRENCY) words.push("--concurrency", String(options.concurrency));
  if (context.globalOptions.url !== undefined) words.push("--url", context.client.baseUrl);
  const withKey = context.globalOptions.apiKey !== undefined;
  return `${words.map(shellQuote).join(" ")}${withKey ? " (plus your --api-key)" : ""}`;
}

/** A 400 that every line would get (a wrong --route, --model or --webhook): the run stops. */
function isRunWide(error: ApiError, options: SubmitOptions): boolean {
  if (error.status !== 400 || !error.param) return false;
  if (error.param === "route" || error.param === "models") return true;
  if (error.param.startsWith("webhook") && options.webhook) return true;
  return error.param === "request.model" && Boolean(options.model);
}

/** `--out` must be a file the run may write: not a directory, not the input it reads. */
function checkOutPath(given: string, outPath: string, input: string): void {
  let existing: string;
  try {
    existing = realpathSync(outPath);
  } catch {
    return; // not there yet (or a folder on its path is not one: the mkdir says so)
  }
  if (existing === input)
    throw new CliError(`--out ${given} is the input file itself; choose another path for the results`);
  if (statSync(existing).isDirectory())
    throw new CliError(
      `--out ${given} is a directory; give a file path, such as ${join(given, "results.jsonl")}`,
    );
}

export async function runSubmit(options: SubmitOptions, context: Context): Promise<number> {
  const { client } = context;
  const errorColors = context.errorColors;
  const inputPath = resolve(options.input);
  const outPath = resolve(options.out);
  const statePath = `${outPath}.state.jsonl`;
  const displayOut = relative(process.cwd(), outPath) || outPath;

  let identity: string;
  try {
    identity = realpathSync(inputPath);
  } catch (error) {
    throw new CliError(
      `cannot read ${options.input}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (statSync(identity).isDirectory())
    throw new CliError(`cannot read ${options.input}: it is a directory, not a JSONL file`);
  checkOutPath(options.out, outPath, identity);
  const scan = await scanInput(identity);
  if (scan.errors.length) {
    for (const { line, message } of scan.errors.slice(0, 10))
      context.stderr.write(`${options.input}:${line}: ${message}\n`);
    if (scan.errors.length > 10) context.stderr.write(`... and ${scan.errors.length - 10} more\n`);
    context.stderr.write(
      `cascade: ${plural(scan.errors.length, "invalid line")} in ${options.input}; nothing was submitted\n`,
    );
    return 1;
  }
  if (scan.entries.length === 0) throw new CliError(`${options.input} has no request lines`);

  try {
    await mkdir(dirname(outPath), { recursive: true });
  } catch (error) {
    throw new CliError(
      `cannot create the folder of --out ${options.out}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const header: StateHeader = {
    v: 1,
    kind: "cascade-submit-state",
    input: identity,
    input_sha256: scan.sha256,
    requests: scan.entries.length,
    url: client.baseUrl,
    route: options.route ?? null,
    model: options.model ?? null,
    webhook: options.webhook ?? null,
    created_at: new Date().toISOString(),
  };
  const state = SubmitState.open(statePath, outPath, header);
  const results = new ResultsFile(outPath);
  try {
    return await run(options, context, scan.entries, identity, state, results, displayOut, errorColors);
  } finally {
    state.close();
    results.close();
  }
}

async function run(
  options: SubmitOptions,
  context: Context,
  entries: InputEntry[],
  identity: string,
  state: SubmitState,
  results: ResultsFile,
  displayOut: string,
  errorColors: Context["errorColors"],
): Promise<number> {
  const { client } = context;
  const lineOf = new Map(entries.map((entry) => [entry.customId, entry.line]));
  const customIdOf = new Map(entries.map((entry) => [entry.line, entry.customId]));
  const tally = newTally(entries.length, Date.now());

  // What earlier runs finished: the results file is the record of it.
  const done = new Set<number>();
  const count = (record: ResultRecord, thisRun: boolean) => {
    if (record.status === "succeeded") tally.succeeded += 1;
    else tally.failed += 1;
    if (record.job_id === null) tally.rejected += 1;
    else {
      tally.jobs += 1;
      if (fellBack({ model: record.model, attempts: record.attempts ?? [] })) tally.fellBack += 1;
    }
    tally.spendUsd += record.cost_usd ?? 0;
    if (thisRun) tally.finishedThisRun += 1;
  };
  for (const record of await results.readExisting()) {
    const line = lineOf.get(record.custom_id);
    if (line === undefined || done.has(line)) continue;
    done.add(line);
    count(record, false);
  }

  const toCollect: Task[] = [];
  for (const [line, jobId] of state.submitted) {
    if (!done.has(line)) toCollect.push({ line, customId: customIdOf.get(line) ?? String(line), jobId });
  }
  const toSubmit = entries.filter(
    (entry) => !done.has(entry.line) && !state.submitted.has(entry.line),
  ).length;

  if (state.resumed) {
    const changed = (["route", "model", "webhook"] as const).filter(
      (name) => (state.header[name] ?? null) !== (options[name] ?? null),
    );
    if (changed.length && toSubmit > 0) {
      context.stderr.write(
        `${errorColors.yellow("note:")} ${changed.map((name) => `--${name}`).join(", ")} ${changed.length === 1 ? "differs" : "differ"} from the interrupted run's; ` +
          "lines it already submitted keep theirs\n",
      );
    }
    if (state.header.url !== client.baseUrl && toCollect.length > 0) {
      context.stderr.write(
        `${errorColors.yellow("note:")} the interrupted run used ${state.header.url}; its jobs are looked up at ${client.baseUrl}\n`,
      );
    }
    if (toCollect.length + toSubmit > 0) {
      context.stderr.write(
        `Resuming: ${done.size} of ${entries.length} lines done, ${plural(toCollect.length, "submitted job")} to collect, ${toSubmit} to submit\n`,
      );
    }
  }
  if (toCollect.length + toSubmit === 0) {
    context.stdout.write(
      `Nothing to do: all ${entries.length} lines are in ${displayOut} (${tally.succeeded} succeeded, ${tally.failed} failed; spend ${formatUsd(tally.spendUsd)})\n`,
    );
    return 0;
  }

  const pollAbort = new AbortController();
  const submitAbort = new AbortController();
  const control: { stopping: boolean; signal?: NodeJS.Signals; fatal?: unknown } = { stopping: false };
  /** Whether the API has answered once: until it has, a network error ends the run at once. */
  let reachable = false;
  const progress = new ProgressReporter(context.stderr, tally, {
    tty: Boolean(context.stderr.isTTY),
    intervalMs: options.progressIntervalMs,
    colors: errorColors,
  });

  const stop = (why: { signal?: NodeJS.Signals; fatal?: unknown }) => {
    if (control.stopping) return;
    control.stopping = true;
    Object.assign(control, why);
    pollAbort.abort();
    if (why.fatal) submitAbort.abort();
    else setTimeout(() => submitAbort.abort(), SUBMIT_GRACE_MS).unref();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (control.stopping) {
      // A second Ctrl+C: leave now. Everything finished is already on disk.
      progress.stop();
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    progress.log(
      errorColors.yellow(`Interrupted: no more submissions; saving state (Ctrl+C again to quit at once)`),
    );
    stop({ signal });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const finish = (task: Task, record: ResultRecord) => {
    results.append(record);
    done.add(task.line);
    count(record, true);
  };

  /** POST /v1/jobs with the line's Idempotency-Key, through transient errors. */
  const submit = async (task: Task): Promise<Job | ApiError> => {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const response = await client.request<Job>("POST", "/v1/jobs", {
          body: task.body,
          headers: { "idempotency-key": task.key as string },
          signal: submitAbort.signal,
        });
        reachable = true;
        return response.body;
      } catch (error) {
        if (isAbortError(error)) throw error;
        if (error instanceof ApiError && !error.retryable) {
          if ([400, 413, 422].includes(error.status) && !isRunWide(error, options)) return error;
          throw error;
        }
        if (!(error instanceof ApiError || error instanceof NetworkError)) throw error;
        if (attempt + 1 >= MAX_TRIES || control.stopping || (error instanceof NetworkError && !reachable))
          throw error;
        if (error instanceof ApiError) reachable = true;
        await sleep(
          backoffMs(attempt, error instanceof ApiError ? error.retryAfterMs : 0),
          submitAbort.signal,
        );
      }
    }
  };

  /** Long-polls the job until it ends. */
  const collect = async (task: Task): Promise<Job> => {
    let failures = 0;
    for (;;) {
      try {
        const { body } = await client.request<Job>(
          "GET",
          `/v1/jobs/${encodeURIComponent(task.jobId as string)}?wait=${WAIT_SECONDS}`,
          { signal: pollAbort.signal },
        );
        reachable = true;
        failures = 0;
        if (isTerminal(body)) return body;
      } catch (error) {
        if (isAbortError(error)) throw error;
        if (error instanceof ApiError && error.status === 404) {
          throw new CliError(
            `job ${task.jobId} (line ${task.line}) is not known to ${client.baseUrl}: ${error.message}. ` +
              "Is this the API (and API key) the run started with?",
          );
        }
        if (error instanceof ApiError && !error.retryable) throw error;
        if (!(error instanceof ApiError || error instanceof NetworkError)) throw error;
        failures += 1;
        if (failures >= MAX_TRIES || (error instanceof NetworkError && !reachable)) throw error;
        await sleep(
          backoffMs(failures - 1, error instanceof ApiError ? error.retryAfterMs : 0),
          pollAbort.signal,
        );
      }
    }
  };

  const runTask = async (task: Task) => {
    tally.inFlight += 1;
    try {
      let job: Job | undefined;
      if (!task.jobId) {
        const answer = await submit(task);
        if (answer instanceof ApiError) {
          finish(task, {
            custom_id: task.customId,
            job_id: null,
            status: "failed",
            model: null,
            cost_usd: 0,
            result: null,
            error: {
              type: answer.type,
              message: answer.message,
              ...(answer.param ? { param: answer.param } : {}),
            },
            attempts: [],
          });
          return;
        }
        job = answer;
        task.jobId = job.id;
        state.recordSubmitted(task.line, task.customId, job.id);
        if (control.stopping && !isTerminal(job)) return;
      }
      if (!job || !isTerminal(job)) job = await collect(task);
      finish(task, {
        custom_id: task.customId,
        job_id: job.id,
        status: job.status,
        model: job.model,
        cost_usd: job.cost_usd ?? 0,
        result: job.result,
        error: job.error,
        attempts: job.attempts ?? [],
      });
    } catch (error) {
      if (isAbortError(error) && control.stopping) return;
      stop({ fatal: error });
    } finally {
      tally.inFlight -= 1;
    }
  };

  /** Submitted-but-unfinished lines first (collected, never resubmitted), then the rest of the file. */
  async function* tasks(): AsyncGenerator<Task> {
    yield* toCollect;
    for await (const { line, text } of readLines(identity)) {
      if (done.has(line) || state.submitted.has(line)) continue;
      const interpreted = interpretLine(text, line);
      if ("error" in interpreted) continue; // validated before; the file changed under us
      const body = jobBody(interpreted, line, options);
      yield { line, customId: interpreted.customId, body, key: idempotencyKey(identity, line, body) };
    }
  }
  const source = tasks();
  const workerLoop = async () => {
    while (!control.stopping) {
      const next = await source.next();
      if (next.done || control.stopping) {
        // A task taken while stopping is simply left for the next run.
        return;
      }
      await runTask(next.value);
    }
  };

  progress.start();
  try {
    await Promise.all(Array.from({ length: options.concurrency }, workerLoop));
  } finally {
    await source.return(undefined);
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const figuresNow = figures(tally, Date.now());
  const pending = tally.total - figuresNow.done;
  const failedText =
    tally.rejected > 0
      ? `${tally.failed} failed (${tally.rejected} refused by the API)`
      : `${tally.failed} failed`;
  const parts = [
    `${figuresNow.done}/${tally.total} lines done: ${tally.succeeded} succeeded, ${failedText}`,
    `fallback ${formatPercent(figuresNow.fallbackRate)}${tally.jobs ? ` (${tally.fellBack} of ${plural(tally.jobs, "job")})` : ""}`,
    `spend ${formatUsd(tally.spendUsd)}`,
    `this run ${tally.finishedThisRun} in ${formatDuration(figuresNow.elapsedMs)}${figuresNow.ratePerSecond ? ` (${figuresNow.ratePerSecond.toFixed(1)} jobs/s)` : ""}`,
    `results in ${displayOut}`,
  ];
  context.stdout.write(`${parts.join("; ")}\n`);

  if (control.fatal !== undefined) {
    context.stderr.write(`cascade: ${describeFatal(control.fatal)}\n`);
    if (pending > 0) {
      const fixCommand = control.fatal instanceof ApiError && control.fatal.status === 400;
      context.stderr.write(
        fixCommand
          ? `Stopped with ${pending} lines left; fix the command and run it again (finished lines are kept)\n`
          : `Stopped with ${pending} lines left; once that is fixed, resume with: ${resumeCommand(options, context)}\n`,
      );
    }
    return 1;
  }
  if (control.signal) {
    const running = [...state.submitted.keys()].filter((line) => !done.has(line)).length;
    context.stderr.write(
      `Interrupted with ${pending} of ${tally.total} lines left (${plural(running, "job")} still running on the server; ` +
        `state in ${displayOut}.state.jsonl). Resume with: ${resumeCommand(options, context)}\n`,
    );
    return control.signal === "SIGINT" ? 130 : 143;
  }
  return 0;
}

function describeFatal(error: unknown): string {
  if (error instanceof ApiError) {
    return `${error.type}: ${error.message} (HTTP ${error.status})`;
  }
  return (error as Error).message ?? String(error);
}
