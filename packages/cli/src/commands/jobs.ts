import { JOBS_USAGE, parseCommand, UsageError } from "../cli-args.js";
import type { Colors } from "../colors.js";
import type { Context } from "../context.js";
import { formatDuration, formatUnixSeconds, formatUsd, plural } from "../format.js";
import { followSse } from "../sse.js";
import { renderTable } from "../table.js";
import { type Attempt, type Job, resultContent } from "../types.js";

/** `cascade jobs <subcommand>`. */
export async function jobsCommand(
  subcommand: string | undefined,
  args: string[],
  context: Context,
): Promise<number> {
  if (subcommand === undefined) {
    const { values } = parseCommand("jobs", args, {}, JOBS_USAGE, false);
    if (values.help) {
      context.stdout.write(`${JOBS_USAGE}\n`);
      return 0;
    }
    throw new UsageError("cascade jobs: missing subcommand (get)", JOBS_USAGE);
  }
  if (subcommand !== "get")
    throw new UsageError(`cascade jobs: unknown subcommand ${subcommand}`, JOBS_USAGE);
  const { values, positionals } = parseCommand(
    "jobs get",
    args,
    { watch: { type: "boolean" }, json: { type: "boolean" } },
    JOBS_USAGE,
  );
  if (values.help) {
    context.stdout.write(`${JOBS_USAGE}\n`);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError("cascade jobs get: missing the job id", JOBS_USAGE);
  if (positionals.length > 1) {
    throw new UsageError(`cascade jobs get: unexpected argument ${positionals[1]}`, JOBS_USAGE);
  }
  const id = positionals[0] as string;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  if (values.watch) return watchJob(context, path, Boolean(values.json));
  const { body: job } = await context.client.request<Job>("GET", path);
  context.stdout.write(values.json ? `${JSON.stringify(job, null, 2)}\n` : describeJob(job, context.colors));
  return 0;
}

function statusText(status: string, colors: Colors): string {
  if (status === "succeeded") return colors.green(status);
  if (status === "failed") return colors.red(status);
  if (status === "cancelled") return colors.yellow(status);
  return colors.cyan(status);
}

function outcomeText(attempt: Attempt, colors: Colors): string {
  if (attempt.outcome === "success") return colors.green("success");
  if (attempt.outcome === "error") return colors.red("error");
  return colors.yellow("skipped");
}

export function attemptsTable(attempts: Attempt[], colors: Colors): string {
  return renderTable(
    ["#", "MODEL", "PROVIDER", "OUTCOME", "REASON", "HTTP", "DURATION", "MESSAGE"].map((title) =>
      colors.dim(title),
    ),
    attempts.map((attempt, index) => [
      String(index + 1),
      attempt.model,
      attempt.provider,
      outcomeText(attempt, colors),
      attempt.reason ?? "-",
      attempt.http_status === undefined ? "-" : String(attempt.http_status),
      formatDuration(attempt.duration_ms),
      (attempt.message ?? "").replace(/\s+/g, " ").slice(0, 100),
    ]),
    { align: ["right", "left", "left", "left", "left", "right", "right", "left"], indent: "  " },
  );
}

/** The answer's text and tool calls, as printed after a job. */
function describeResult(job: Job, colors: Colors): string {
  const choice = job.result?.choices?.[0];
  if (!choice) return "";
  const usage = job.result?.usage;
  const details = [
    choice.finish_reason ? `finish_reason ${choice.finish_reason}` : undefined,
    usage
      ? `${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens`
      : undefined,
  ].filter(Boolean);
  let text = `\n${colors.bold("Result")}${details.length ? colors.dim(` (${details.join("; ")})`) : ""}\n`;
  const content = resultContent(job.result);
  if (content !== null) text += `${content}\n`;
  for (const call of choice.message?.tool_calls ?? []) {
    text += `${colors.cyan("tool call")} ${call.function?.name ?? "?"}(${call.function?.arguments ?? ""})\n`;
  }
  if (choice.message?.refusal) text += `${colors.yellow("refusal")} ${choice.message.refusal}\n`;
  return text;
}

/** The human view of a job for `cascade jobs get`. */
export function describeJob(job: Job, colors: Colors): string {
  const rows: Array<[string, string]> = [];
  const chain = job.models?.length ? colors.dim(` (chain ${job.models.join(" → ")})`) : "";
  rows.push(["route", `${job.route ?? "-"}${chain}`]);
  if (job.model) {
    const first = job.models?.[0];
    const failed = job.attempts.filter((attempt) => attempt.outcome !== "success").length;
    const note =
      first && job.model !== first
        ? colors.yellow(` (fell back from ${first})`)
        : failed > 0
          ? colors.yellow(` (after ${plural(failed, "failed attempt")})`)
          : "";
    rows.push(["model", `${job.model} ${colors.dim("via")} ${job.provider ?? "?"}${note}`]);
  }
  rows.push(["cost", formatUsd(job.cost_usd)]);
  // Both are whole seconds: a job that started and ended within one ran for less than a second.
  const ranS = job.started_at && job.finished_at ? job.finished_at - job.started_at : undefined;
  const ran = ranS === undefined ? "" : `, ran ${ranS < 1 ? "< 1 s" : formatDuration(ranS * 1000)}`;
  rows.push(["created", `${formatUnixSeconds(job.created_at)}${ran}`]);
  const metadata = Object.entries(job.metadata ?? {});
  if (metadata.length) rows.push(["metadata", metadata.map(([key, value]) => `${key}=${value}`).join(" ")]);
  if (job.error) rows.push(["error", colors.red(`${job.error.type}: ${job.error.message}`)]);

  let text = `${colors.bold(job.id)}  ${statusText(job.status, colors)}\n`;
  const keyWidth = Math.max(...rows.map(([key]) => key.length));
  for (const [key, value] of rows) text += `  ${colors.dim(key.padEnd(keyWidth))}  ${value}\n`;
  text += `\n${colors.bold("Attempts")}${job.attempts.length ? "" : colors.dim(" none yet")}\n`;
  if (job.attempts.length) text += `${attemptsTable(job.attempts, colors)}\n`;
  return text + describeResult(job, colors);
}

function attemptLine(attempt: Attempt, number: number, colors: Colors): string {
  const parts = [
    `${colors.dim(`attempt ${number}`)} ${attempt.model} ${colors.dim(`(${attempt.provider})`)}`,
    outcomeText(attempt, colors),
    attempt.reason,
    attempt.http_status !== undefined ? `HTTP ${attempt.http_status}` : undefined,
    formatDuration(attempt.duration_ms),
    attempt.message ? colors.dim(`— ${attempt.message.replace(/\s+/g, " ").slice(0, 120)}`) : undefined,
  ];
  return parts.filter(Boolean).join(" ");
}

/**
 * `jobs get --watch`: prints status changes and attempts as lines, streamed tokens inline, a
 * marker where the answer restarts, and ends at `done`. Reconnects with Last-Event-ID.
 */
async function watchJob(context: Context, path: string, json: boolean): Promise<number> {
  const colors = context.colors;
  const errorColors = context.errorColors;
  const stdout = context.stdout;
  let midLine = false; // streamed text not yet ended by a newline
  let streamed = false;
  let attempts = 0;
  let lastStatus: string | undefined;
  const line = (text: string) => {
    if (midLine) stdout.write("\n");
    midLine = false;
    stdout.write(`${text}\n`);
  };
  await followSse(context.client, `${path}/events`, {
    onReconnect(lastEventId, reason) {
      // On a terminal the notice should not land mid-answer; piped output stays exactly the answer.
      if (midLine && stdout.isTTY && context.stderr.isTTY) {
        stdout.write("\n");
        midLine = false;
      }
      context.stderr.write(
        `${errorColors.yellow("reconnecting")} ${errorColors.dim(`(${reason}; resuming after event ${lastEventId ?? "none"})`)}\n`,
      );
    },
    onEvent(event) {
      let data: unknown = event.data;
      try {
        data = JSON.parse(event.data);
      } catch {}
      if (json) {
        stdout.write(`${JSON.stringify({ id: event.id ?? null, event: event.event, data })}\n`);
        return event.event === "done";
      }
      const payload = (data ?? {}) as Record<string, unknown>;
      switch (event.event) {
        case "status":
          // A job that waits between tries reports "running" again: print changes only.
          if (payload.status !== lastStatus)
            line(`${colors.dim("status")} ${statusText(String(payload.status), colors)}`);
          lastStatus = String(payload.status);
          break;
        case "attempt":
          attempts += 1;
          line(attemptLine(payload as unknown as Attempt, attempts, colors));
          break;
        case "delta":
          if (typeof payload.content === "string" && payload.content) {
            stdout.write(payload.content);
            midLine = !payload.content.endsWith("\n");
            streamed = true;
          }
          break;
        case "restart":
          line(
            colors.yellow(
              `↺ restart: hop ${Number(payload.hop) + 1} stopped (${String(payload.reason ?? "?")}); the answer starts over`,
            ),
          );
          break;
        case "done": {
          const job = payload as unknown as Job;
          if (!streamed) {
            const content = resultContent(job.result);
            if (content !== null) line(content);
          } else if (midLine) line("");
          const summary = [
            `${colors.bold("done")} ${statusText(job.status, colors)}`,
            job.model ? `${job.model} ${colors.dim("via")} ${job.provider ?? "?"}` : undefined,
            plural(job.attempts?.length ?? 0, "attempt"),
            formatUsd(job.cost_usd),
            job.error ? colors.red(`${job.error.type}: ${job.error.message}`) : undefined,
          ];
          line(summary.filter(Boolean).join("  "));
          return true;
        }
        default:
          break;
      }
      return false;
    },
  });
  return 0;
}
