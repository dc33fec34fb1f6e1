#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { ApiClient, ApiError, DEFAULT_URL, NetworkError } from "./api-client.js";
import {
  globalOptionValues,
  JOBS_USAGE,
  MAIN_USAGE,
  PROVIDERS_USAGE,
  parseCommand,
  SUBMIT_USAGE,
  splitCommand,
  UsageError,
} from "./cli-args.js";
import { colorsFor } from "./colors.js";
import { jobsCommand } from "./commands/jobs.js";
import { providersCommand } from "./commands/providers.js";
import { submitCommand } from "./commands/submit.js";
import type { Context } from "./context.js";
import { CliError } from "./errors.js";

const USAGES: Record<string, string> = {
  submit: SUBMIT_USAGE,
  jobs: JOBS_USAGE,
  providers: PROVIDERS_USAGE,
};

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return manifest.version;
}

/** Runs the CLI; resolves to the exit status. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { word: command, rest: afterCommand } = splitCommand(argv);
  // `jobs` and `help` take a subcommand (`jobs get`, `help submit`); the others take arguments.
  const { word: subcommand, rest } =
    command === "jobs" || command === "help"
      ? splitCommand(afterCommand)
      : { word: undefined, rest: afterCommand };
  const stdout = process.stdout;
  const stderr = process.stderr;
  const errorColors = colorsFor(stderr, env);
  /** An API key was given (--api-key or CASCADE_API_KEY): a 401 then means it was refused. */
  let keyGiven = false;
  try {
    if (command === undefined || command === "help") {
      // `cascade`, `cascade --help`, `cascade help [command]`.
      const { values } = parseCommand(
        "",
        rest,
        { version: { type: "boolean", short: "v" } },
        MAIN_USAGE,
        false,
      );
      if (values.version) {
        stdout.write(`${version()}\n`);
        return 0;
      }
      if (command === "help") {
        if (subcommand && !USAGES[subcommand])
          throw new UsageError(`cascade help: unknown command ${subcommand}`, MAIN_USAGE);
        stdout.write(`${(subcommand && USAGES[subcommand]) || MAIN_USAGE}\n`);
        return 0;
      }
      if (values.help) {
        stdout.write(`${MAIN_USAGE}\n`);
        return 0;
      }
      throw new UsageError("cascade: missing command", MAIN_USAGE);
    }
    if (!USAGES[command]) throw new UsageError(`cascade: unknown command ${command}`, MAIN_USAGE);
    const args = rest;
    const globalOptions = globalOptionValues(args);
    const url = globalOptions.url ?? env.CASCADE_URL ?? DEFAULT_URL;
    const apiKey = globalOptions.apiKey ?? env.CASCADE_API_KEY;
    keyGiven = Boolean(apiKey);
    if (!/^https?:\/\/\S+$/i.test(url)) {
      throw new UsageError(`cascade ${command}: --url must be an http(s) URL, not ${url}`, USAGES[command]);
    }
    const context: Context = {
      client: new ApiClient(url, apiKey || undefined),
      stdout,
      stderr,
      colors: colorsFor(stdout, env),
      errorColors,
      env,
      globalOptions,
    };
    if (command === "submit") return await submitCommand(args, context);
    if (command === "jobs") return await jobsCommand(subcommand, args, context);
    return await providersCommand(args, context);
  } catch (error) {
    if (error instanceof UsageError) {
      // One line saying what is wrong, then the usage synopsis and where the rest is.
      const synopsis = error.usage.split("\n\n")[0];
      const helpFor = command && USAGES[command] ? `cascade ${command} --help` : "cascade --help";
      stderr.write(`${error.message}\n${synopsis}\nRun \`${helpFor}\` for details.\n`);
      return 2;
    }
    if (error instanceof ApiError) {
      stderr.write(
        `cascade: ${errorColors.red(error.type)}: ${error.message} ${errorColors.dim(`(HTTP ${error.status})`)}\n`,
      );
      if (error.status === 401) {
        stderr.write(
          keyGiven
            ? "cascade: the API key given (--api-key or CASCADE_API_KEY) was refused\n"
            : "cascade: give the API key with --api-key <key> or CASCADE_API_KEY\n",
        );
      }
      return 1;
    }
    if (error instanceof NetworkError || error instanceof CliError) {
      stderr.write(`cascade: ${error.message}\n`);
      return 1;
    }
    // A file the system refused (a path that is not what it was taken for): one line, no stack.
    const system = error as NodeJS.ErrnoException;
    if (typeof system?.code === "string" && typeof system.syscall === "string") {
      stderr.write(`cascade: ${system.message}\n`);
      return 1;
    }
    stderr.write(`cascade: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}

process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  // `cascade ... | head`: the reader left; that is not an error.
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then((code) => process.exit(code));
