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
  ctx: Context,
): Promise<number> {
  if (subcommand === undefined) {
    const { values } = parseCommand("jobs", args, {}, JOBS_USAGE, false);
    if (values.help) {
      ctx.stdout.write(`${JOBS_USAGE}\n`);
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
    ctx.stdout.write(`${JOBS_USAGE}\n`);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError("cascade jobs get: missing the job id", JOBS_USAGE);
  if (positionals.length > 1) {
    throw new UsageError(`cascade jobs get: unexpected argument ${positionals[1]}`, JOBS_USAGE);
  }
  const id = positionals[0] as string;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  if (values.watch) return watchJob(ctx, path, Boolean(values.json));
  const { body: job } = await ctx.client.request<Job>("GET", path);
  ctx.stdout.write(values.json ? `${JSON.stringify(job, null, 2)}\n` : describeJob(job, ctx.colors));
  return 0;
}

function statusText(status: string, c: Colors): string {
  if (status === "succeeded") return c.green(status);
  if (status === "failed") return c.red(status);
  if (status === "cancelled") return c.yellow(status);
  return c.cyan(status);
}

function outcomeText(attempt: Attempt, c: Colors): string {
  if (attempt.outcome === "success") return c.green("success");
  if (attempt.outcome === "error") return c.red("error");
  return c.yellow("skipped");
}

export function attemptsTable(attempts: Attempt[], c: Colors): string {
  return renderTable(
    ["#", "MODEL", "PROVIDER", "OUTCOME", "REASON", "HTTP", "DURATION", "MESSAGE"].map((title) =>
      c.dim(title),
    ),
    attempts.map((attempt, index) => [
      String(index + 1),
      attempt.model,
      attempt.provider,
      outcomeText(attempt, c),
      attempt.reason ?? "-",
      attempt.http_status === undefined ? "-" : String(attempt.http_status),
      formatDuration(attempt.duration_ms),
      (attempt.message ?? "").replace(/\s+/g, " ").slice(0, 100),
    ]),
    { align: ["right", "left", "left", "left", "left", "right", "right", "left"], indent: "  " },
  );
}

/** The answer's text and tool calls, as printed after a job. */
function describeResult(job: Job, c: Colors): string {
  const choice = job.result?.choices?.[0];
  if (!choice) return "";
  const usage = job.result?.usage;
  const details = [
    choice.finish_reason ? `finish_reason ${choice.finish_reason}` : undefined,
    usage
      ? `${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens`
      : undefined,
  ].filter(Boolean);
  let text = `\n${c.bold("Result")}${details.length ? c.dim(` (${details.join("; ")})`) : ""}\n`;
  const content = resultContent(job.result);
  if (content !== null) text += `${content}\n`;
  for (const call of choice.message?.tool_calls ?? []) {
    text += `${c.cyan("tool call")} ${call.function?.name ?? "?"}(${call.function?.arguments ?? ""})\n`;
  }
  if (choice.message?.refusal) text += `${c.yellow("refusal")} ${choice.message.refusal}\n`;
  return text;
}

/** The human view of a job for `cascade jobs get`. */
export function describeJob(job: Job, c: Colors): string {
  const rows: Array<[string, string]> = [];
  const chain = job.models?.length ? c.dim(` (chain ${job.models.join(" → ")})`) : "";
  rows.push(["route", `${job.route ?? "-"}${chain}`]);
  if (job.model) {
    const first = job.models?.[0];
    const failed = job.attempts.filter((attempt) => attempt.outcome !== "success").length;
    const note =
      first && job.model !== first
        ? c.yellow(` (fell back from ${first})`)
        : failed > 0
          ? c.yellow(` (after ${plural(failed, "failed attempt")})`)
          : "";
    rows.push(["model", `${job.model} ${c.dim("via")} ${job.provider ?? "?"}${note}`]);
  }
  rows.push(["cost", formatUsd(job.cost_usd)]);
  const ran =
    job.started_at && job.finished_at
      ? `, ran ${formatDuration((job.finished_at - job.started_at) * 1000)}`
      : "";
  rows.push(["created", `${formatUnixSeconds(job.created_at)}${ran}`]);
  const metadata = Object.entries(job.metadata ?? {});
  if (metadata.length) rows.push(["metadata", metadata.map(([key, value]) => `${key}=${value}`).join(" ")]);
  if (job.error) rows.push(["error", c.red(`${job.error.type}: ${job.error.message}`)]);

  let text = `${c.bold(job.id)}  ${statusText(job.status, c)}\n`;
  const keyWidth = Math.max(...rows.map(([key]) => key.length));
  for (const [key, value] of rows) text += `  ${c.dim(key.padEnd(keyWidth))}  ${value}\n`;
  text += `\n${c.bold("Attempts")}${job.attempts.length ? "" : c.dim(" none yet")}\n`;
  if (job.attempts.length) text += `${attemptsTable(job.attempts, c)}\n`;
  return text + describeResult(job, c);
}

function attemptLine(attempt: Attempt, number: number, c: Colors): string {
  const parts = [
    `${c.dim(`attempt ${number}`)} ${attempt.model} ${c.dim(`(${attempt.provider})`)}`,
    outcomeText(attempt, c),
    attempt.reason,
    attempt.http_status !== undefined ? `HTTP ${attempt.http_status}` : undefined,
    formatDuration(attempt.duration_ms),
    attempt.message ? c.dim(`— ${attempt.message.replace(/\s+/g, " ").slice(0, 120)}`) : undefined,
  ];
  return parts.filter(Boolean).join(" ");
}

/**
 * `jobs get --watch`: prints status changes and attempts as lines, streamed tokens inline, a
 * marker where the answer restarts, and ends at `done`. Reconnects with Last-Event-ID.
 */
async function watchJob(ctx: Context, path: string, json: boolean): Promise<number> {
  const c = ctx.colors;
  const e = ctx.errColors;
  const out = ctx.stdout;
  let midLine = false; // streamed text not yet ended by a newline
  let streamed = false;
  let attempts = 0;
  let lastStatus: string | undefined;
  const line = (text: string) => {
    if (midLine) out.write("\n");
    midLine = false;
    out.write(`${text}\n`);
  };
  await followSse(ctx.client, `${path}/events`, {
    onReconnect(lastEventId, reason) {
      // On a terminal the notice should not land mid-answer; piped output stays exactly the answer.
      if (midLine && out.isTTY && ctx.stderr.isTTY) {
        out.write("\n");
        midLine = false;
      }
      ctx.stderr.write(
        `${e.yellow("reconnecting")} ${e.dim(`(${reason}; resuming after event ${lastEventId ?? "none"})`)}\n`,
      );
    },
    onEvent(event) {
      let data: unknown = event.data;
      try {
        data = JSON.parse(event.data);
      } catch {}
      if (json) {
        out.write(`${JSON.stringify({ id: event.id ?? null, event: event.event, data })}\n`);
        return event.event === "done";
      }
      const payload = (data ?? {}) as Record<string, unknown>;
      switch (event.event) {
        case "status":
          // A job that waits between tries reports "running" again: print changes only.
          if (payload.status !== lastStatus)
            line(`${c.dim("status")} ${statusText(String(payload.status), c)}`);
          lastStatus = String(payload.status);
          break;
        case "attempt":
          attempts += 1;
          line(attemptLine(payload as unknown as Attempt, attempts, c));
          break;
        case "delta":
          if (typeof payload.content === "string" && payload.content) {
            out.write(payload.content);
            midLine = !payload.content.endsWith("\n");
            streamed = true;
          }
          break;
        case "restart":
          line(
            c.yellow(
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
            `${c.bold("done")} ${statusText(job.status, c)}`,
            job.model ? `${job.model} ${c.dim("via")} ${job.provider ?? "?"}` : undefined,
            plural(job.attempts?.length ?? 0, "attempt"),
            formatUsd(job.cost_usd),
            job.error ? c.red(`${job.error.type}: ${job.error.message}`) : undefined,
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
