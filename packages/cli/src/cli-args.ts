import { parseArgs } from "node:util";
import { DEFAULT_URL } from "./api-client.js";

/** A mistake on the command line: one line saying what, then the command's usage; exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

export const GLOBAL_OPTIONS_HELP = `Global options:
  --url <url>        API base URL (env CASCADE_URL; default ${DEFAULT_URL})
  --api-key <key>    API key, sent as "Authorization: Bearer <key>" (env CASCADE_API_KEY)
  -h, --help         Show help`;

export const MAIN_USAGE = `Usage: cascade <command> [options]

Commands:
  submit <requests.jsonl> --out <results.jsonl>
                     Submit every line as a job and collect the results (resumable)
  jobs get <id>      Show a job; --watch follows its events as they happen
  providers          Breakers, cooldowns, limit headroom and recent error rates per provider
  help [command]     Show help for a command

${GLOBAL_OPTIONS_HELP}
  -v, --version      Print the CLI's version

Exit status: 0 done, 1 an error (the API's, the network's, a file's), 2 a usage error,
130 interrupted (submit resumes where it stopped when run again).
See docs/cli.md.`;

export const SUBMIT_USAGE = `Usage: cascade submit <requests.jsonl> --out <results.jsonl> [options]

Submits each line as a job (POST /v1/jobs) and writes one JSONL line per finished job to --out:
{"custom_id", "job_id", "status", "model", "cost_usd", "result", "error", "attempts"}.
A line is an OpenAI chat-completions body ({"messages": [...], ...}; its id is its line number)
or an OpenAI Batch line ({"custom_id": "...", "body": {...}}). Interrupted runs resume: run the
same command again; finished lines are skipped, submitted ones are polled, never resubmitted.

Options:
  --out <file>          Results file (JSONL, appended in completion order); required
  --route <route>       The route (fallback chain) every job runs on
  --model <model>       Set every line's request.model (a model, then its fallbacks, or a route)
  --webhook <url>       Also POST each job's result to this URL when it ends
  --concurrency <n>     Jobs in flight at most (default 32)

${GLOBAL_OPTIONS_HELP}

Progress goes to stderr: a live bar on a terminal, else a line every few seconds
(CASCADE_PROGRESS_INTERVAL seconds, default 5). A summary line ends every run.`;

export const JOBS_USAGE = `Usage: cascade jobs get <id> [--watch] [--json]

Commands:
  get <id>           Show a job: status, model and provider, cost, attempts, the answer

Options:
  --watch            Follow the job's events (GET /v1/jobs/:id/events) until it ends: status
                     changes, attempts, and streamed tokens as they arrive
  --json             Print the raw job object (with --watch: one JSON line per event)

${GLOBAL_OPTIONS_HELP}`;

export const PROVIDERS_USAGE = `Usage: cascade providers [--json]

Per provider: type, breaker state, 429 cooldown, headroom of each rate limit (available/capacity),
and over the last minutes: calls, error rate, fallback rate; then its models, indented.

Options:
  --json             Print the raw GET /v1/providers answer

${GLOBAL_OPTIONS_HELP}`;

export const GLOBAL_OPTIONS = {
  url: { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

/**
 * Finds the command word (the first positional, past global options and their values) and
 * returns it with the other arguments, in order, for the command's own parser. Lenient, because
 * the command's options are not known yet: its own strict parse refuses what is wrong.
 */
export function splitCommand(argv: string[]): { word: string | undefined; rest: string[] } {
  const { tokens } = parseArgs({
    args: argv,
    options: GLOBAL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === "option-terminator") break;
    if (token.kind === "positional") return { word: token.value, rest: argv.toSpliced(token.index, 1) };
  }
  return { word: undefined, rest: [...argv] };
}

/** What the command line itself says of the API (before env and defaults apply). */
export interface GlobalOptionValues {
  url: string | undefined;
  apiKey: string | undefined;
}

/**
 * `--url` and `--api-key`, read before the command's strict parse because the API client is built
 * first. Lenient for the same reason as splitCommand; a flag without its value reads as not given.
 */
export function globalOptionValues(args: string[]): GlobalOptionValues {
  const { values } = parseArgs({ args, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true });
  const text = (value: unknown) => (typeof value === "string" ? value : undefined);
  return { url: text(values.url), apiKey: text(values["api-key"]) };
}

type Options = Record<string, { type: "string" | "boolean"; short?: string }>;
type OptionValues<CommandOptions extends Options> = {
  [Name in keyof CommandOptions]?: CommandOptions[Name]["type"] extends "boolean" ? boolean : string;
};

/** parseArgs, strict, with the global options added and its errors turned into one clear line. */
export function parseCommand<CommandOptions extends Options>(
  command: string,
  args: string[],
  options: CommandOptions,
  usage: string,
  allowPositionals = true,
): { values: OptionValues<CommandOptions & typeof GLOBAL_OPTIONS>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args,
      options: { ...GLOBAL_OPTIONS, ...options },
      strict: true,
      allowPositionals,
    });
    return {
      values: parsed.values as OptionValues<CommandOptions & typeof GLOBAL_OPTIONS>,
      positionals: parsed.positionals,
    };
  } catch (error) {
    const where = command ? `cascade ${command}` : "cascade";
    throw new UsageError(`${where}: ${describeParseError(error as Error & { code?: string })}`, usage);
  }
}

function describeParseError(error: Error & { code?: string }): string {
  const quoted = /'([^']+)'/.exec(error.message)?.[1];
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${quoted ?? ""}`.trim();
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return /argument missing/.test(error.message)
        ? `option ${quoted?.replace(/ <value>$/, "") ?? ""} needs a value`
        : error.message;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${quoted ?? ""}`.trim();
    default:
      return error.message;
  }
}
