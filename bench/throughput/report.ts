/** Per-round lines, the summary (medians, ratio, spread, target) and the JSON shape. */
import { formatNumber, median, spread } from "../support/stats.js";
import type { RoundResult, Side } from "./drain.js";
import type { ThroughputOptions } from "./options.js";

export const TARGET_RATIO = 0.6;
export const TARGET_CONCURRENCY = 50;

const sideNames: Record<string, string> = { raw: "raw BullMQ", cascade: "Cascade" };
const sideName = (side: Side) => sideNames[side] ?? side;

export function roundLine(result: RoundResult): string {
  const head = `round ${result.round}  ${sideName(result.side).padEnd(10)}`;
  if (!result.ok) return `${head}  FAILED: ${result.error}`;
  const parts = [
    `${result.jobs} jobs in ${(result.seconds as number).toFixed(3)} s`,
    `${Math.round(result.jobs_per_second as number)} jobs/s`.padStart(12),
    `node cpu ${result.node_cpu_seconds.toFixed(2)} s`,
  ];
  if (result.redis) {
    parts.push(
      `redis cpu ${result.redis.cpuSeconds.toFixed(2)} s`,
      `redis cmds/job ${result.redis.commands_per_job.toFixed(1)}`,
    );
  }
  return `${head}  ${parts.join("  ")}`;
}

export interface SideSummary {
  rounds_ok: number;
  median_jobs_per_second: number | null;
  min_jobs_per_second: number | null;
  max_jobs_per_second: number | null;
  median_node_cpu_us_per_job: number | null;
  median_redis_cpu_us_per_job: number | null;
  median_redis_commands_per_job: number | null;
  /** Per-job Redis command counts of the side's median round (by jobs/s). */
  redis_commands_per_job_by_name: Record<string, number> | null;
}

export interface Summary {
  raw: SideSummary | null;
  cascade: SideSummary | null;
  ratio_of_medians: number | null;
  pair_ratios: number[];
  pair_ratio_min: number | null;
  pair_ratio_max: number | null;
  target: { ratio: number; concurrency: number; verdict: "PASS" | "BELOW" | "n/a" };
}

function summarizeSide(results: RoundResult[]): SideSummary | null {
  if (results.length === 0) return null;
  const ok = results.filter((result) => result.ok);
  const rates = ok.map((result) => result.jobs_per_second as number);
  const perJob = (values: number[]) => (values.length ? median(values) : null);
  const withRedis = ok.filter((result) => result.redis);
  const middle = [...ok].sort((a, b) => (a.jobs_per_second as number) - (b.jobs_per_second as number))[
    Math.floor(ok.length / 2)
  ];
  return {
    rounds_ok: ok.length,
    median_jobs_per_second: rates.length ? median(rates) : null,
    min_jobs_per_second: rates.length ? spread(rates).min : null,
    max_jobs_per_second: rates.length ? spread(rates).max : null,
    median_node_cpu_us_per_job: perJob(ok.map((result) => (result.node_cpu_seconds * 1e6) / result.jobs)),
    median_redis_cpu_us_per_job: perJob(
      withRedis.map((result) => ((result.redis?.cpuSeconds ?? 0) * 1e6) / result.jobs),
    ),
    median_redis_commands_per_job: perJob(withRedis.map((result) => result.redis?.commands_per_job ?? 0)),
    redis_commands_per_job_by_name: middle?.redis
      ? Object.fromEntries(
          Object.entries(middle.redis.byCommand).map(([name, calls]) => [
            name,
            Number((calls / middle.jobs).toFixed(3)),
          ]),
        )
      : null,
  };
}

export function summarize(results: RoundResult[], options: ThroughputOptions): Summary {
  const raw = summarizeSide(results.filter((result) => result.side === "raw"));
  const cascade = summarizeSide(results.filter((result) => result.side === "cascade"));
  const pairRatios: number[] = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    const pair = results.filter((result) => result.round === round && result.ok);
    const rawRate = pair.find((result) => result.side === "raw")?.jobs_per_second;
    const cascadeRate = pair.find((result) => result.side === "cascade")?.jobs_per_second;
    if (rawRate && cascadeRate) pairRatios.push(cascadeRate / rawRate);
  }
  const ratio =
    raw?.median_jobs_per_second && cascade?.median_jobs_per_second
      ? cascade.median_jobs_per_second / raw.median_jobs_per_second
      : null;
  return {
    raw,
    cascade,
    ratio_of_medians: ratio,
    pair_ratios: pairRatios,
    pair_ratio_min: pairRatios.length ? spread(pairRatios).min : null,
    pair_ratio_max: pairRatios.length ? spread(pairRatios).max : null,
    target: {
      ratio: TARGET_RATIO,
      concurrency: TARGET_CONCURRENCY,
      verdict: ratio === null ? "n/a" : ratio >= TARGET_RATIO ? "PASS" : "BELOW",
    },
  };
}

function sideLine(side: Side, summary: SideSummary | null): string | undefined {
  if (!summary) return undefined;
  const name = `${sideName(side)}:`.padEnd(12);
  if (summary.median_jobs_per_second === null) return `${name}no successful round`;
  const range = `${Math.round(summary.min_jobs_per_second as number)}..${Math.round(summary.max_jobs_per_second as number)}`;
  const costs = [`node cpu ${formatNumber(summary.median_node_cpu_us_per_job as number)} µs/job`];
  if (summary.median_redis_cpu_us_per_job !== null) {
    costs.push(
      `redis cpu ${formatNumber(summary.median_redis_cpu_us_per_job)} µs/job`,
      `redis cmds ${formatNumber(summary.median_redis_commands_per_job as number)}/job`,
    );
  }
  return `${name}median ${Math.round(summary.median_jobs_per_second)} jobs/s (rounds ${range}; ${summary.rounds_ok} ok)  ${costs.join(", ")}`;
}

/** Commands whose per-job count differs between the sides (scripts' inner commands included). */
function commandDifferences(summary: Summary): string | undefined {
  const raw = summary.raw?.redis_commands_per_job_by_name;
  const cascade = summary.cascade?.redis_commands_per_job_by_name;
  if (!raw || !cascade) return undefined;
  const names = new Set([...Object.keys(raw), ...Object.keys(cascade)]);
  const differences = [...names]
    .map((name) => ({ name, raw: raw[name] ?? 0, cascade: cascade[name] ?? 0 }))
    .filter((entry) => Math.abs(entry.cascade - entry.raw) >= 0.05)
    .sort((a, b) => Math.abs(b.cascade - b.raw) - Math.abs(a.cascade - a.raw))
    .map((entry) => `${entry.name} ${formatNumber(entry.raw)}→${formatNumber(entry.cascade)}`);
  return `redis commands per job that differ (raw→cascade): ${differences.length ? differences.join(", ") : "none"}`;
}

export function summaryLines(summary: Summary, options: ThroughputOptions): string[] {
  const lines = [sideLine("raw", summary.raw), sideLine("cascade", summary.cascade)].filter(
    (line): line is string => line !== undefined,
  );
  const differences = commandDifferences(summary);
  if (differences) lines.push(differences);
  if (summary.ratio_of_medians !== null) {
    const pairs = summary.pair_ratios.map((ratio) => ratio.toFixed(2)).join(", ");
    lines.push(
      `ratio cascade/raw: ${summary.ratio_of_medians.toFixed(2)} (of the medians); per pair ${(summary.pair_ratio_min as number).toFixed(2)}..${(summary.pair_ratio_max as number).toFixed(2)} [${pairs}]`,
    );
  }
  const caveats: string[] = [];
  if (options.concurrency !== TARGET_CONCURRENCY)
    caveats.push(`measured at concurrency ${options.concurrency}`);
  if (options.logLevel !== "info") caveats.push(`diagnostic run with LOG_LEVEL=${options.logLevel}`);
  const caveat = caveats.length ? ` (${caveats.join("; ")})` : "";
  lines.push(
    `target: ratio >= ${TARGET_RATIO} at concurrency ${TARGET_CONCURRENCY}: ${summary.target.verdict}${caveat}`,
  );
  return lines;
}
