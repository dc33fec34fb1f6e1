/** Round lines, per-variant medians, ratios against "off", the target line, and the JSON summary. */
import { formatNumber, median, spread } from "../support/stats.js";
import type { ResilienceRoundResult } from "./round.js";

export const TARGET_RATIO = 0.85;
export const TARGET_TEXT = `target: ratio >= ${TARGET_RATIO} (at most one extra Redis round trip per hop)`;

export function roundLine(result: ResilienceRoundResult, note = ""): string {
  const head = `round ${result.round}  ${result.variant.padEnd(13)}`;
  if (!result.ok) return `${head}  FAILED: ${result.error}`;
  const perJob = (seconds: number) => `${formatNumber((seconds * 1e6) / result.jobs)} µs/job`;
  const parts = [
    `${result.jobs} jobs in ${(result.seconds as number).toFixed(3)} s`,
    `${Math.round(result.jobs_per_second as number)} jobs/s`.padStart(12),
    `node cpu ${perJob(result.node_cpu_seconds)}`,
  ];
  if (result.redis) {
    parts.push(
      `redis cpu ${perJob(result.redis.cpuSeconds)}`,
      `redis cmds/job ${result.redis.commands_per_job.toFixed(1)}`,
    );
  }
  const problems = result.checks?.problems ?? [];
  if (problems.length) parts.push(`CHECK: ${problems.join("; ")}`);
  return `${head}  ${parts.join("  ")}${note}`;
}

export interface VariantSummary {
  variant: string;
  rounds_ok: number;
  median_jobs_per_second: number | null;
  min_jobs_per_second: number | null;
  max_jobs_per_second: number | null;
  /** 1e6 / median jobs/s: wall time per job at this concurrency. */
  wall_us_per_job: number | null;
  median_node_cpu_us_per_job: number | null;
  median_redis_cpu_us_per_job: number | null;
  median_redis_commands_per_job: number | null;
  /** Per job, from the variant's median round (by jobs/s); scripts' inner commands included. */
  redis_commands_per_job_by_name: Record<string, number> | null;
  redis_net_in_bytes_per_job: number | null;
  /** Against "off" (absent for off itself, or when off did not run). */
  ratio_of_medians?: number | null;
  pair_ratios?: number[];
  pair_ratio_min?: number | null;
  pair_ratio_max?: number | null;
  /**
   * (Node + Redis CPU µs/job of off) / (the same of this variant): the ratio to expect when the
   * Node process and Redis share the machine's cores and both are busy, as on a 2-core box
   * under load. Steadier than jobs/s when other work competes for the cores.
   */
  cpu_ratio?: number | null;
}

export interface Summary {
  variants: VariantSummary[];
  /** The target applies to the full configuration ("on", or "all" in the ablation). */
  target: { ratio: number; variant: string | null; verdict: "PASS" | "BELOW" | "n/a" };
}

function summarizeVariant(variant: string, results: ResilienceRoundResult[]): VariantSummary {
  const ok = results.filter((result) => result.ok);
  const rates = ok.map((result) => result.jobs_per_second as number);
  const medianOf = (values: number[]) => (values.length ? median(values) : null);
  const withRedis = ok.filter((result) => result.redis);
  const middle = [...ok].sort((a, b) => (a.jobs_per_second as number) - (b.jobs_per_second as number))[
    Math.floor(ok.length / 2)
  ];
  const rate = medianOf(rates);
  return {
    variant,
    rounds_ok: ok.length,
    median_jobs_per_second: rate,
    min_jobs_per_second: rates.length ? spread(rates).min : null,
    max_jobs_per_second: rates.length ? spread(rates).max : null,
    wall_us_per_job: rate ? 1e6 / rate : null,
    median_node_cpu_us_per_job: medianOf(ok.map((result) => (result.node_cpu_seconds * 1e6) / result.jobs)),
    median_redis_cpu_us_per_job: medianOf(
      withRedis.map((result) => ((result.redis?.cpuSeconds ?? 0) * 1e6) / result.jobs),
    ),
    median_redis_commands_per_job: medianOf(withRedis.map((result) => result.redis?.commands_per_job ?? 0)),
    redis_commands_per_job_by_name: middle?.redis
      ? Object.fromEntries(
          Object.entries(middle.redis.byCommand).map(([name, calls]) => [
            name,
            Number((calls / middle.jobs).toFixed(3)),
          ]),
        )
      : null,
    redis_net_in_bytes_per_job: medianOf(
      withRedis.map((result) => (result.redis?.netInputBytes ?? 0) / result.jobs),
    ),
  };
}

export function summarize(results: ResilienceRoundResult[], variants: string[]): Summary {
  const timed = results.filter((result) => result.round > 0);
  const summaries = variants.map((variant) =>
    summarizeVariant(
      variant,
      timed.filter((result) => result.variant === variant),
    ),
  );
  const off = summaries.find((summary) => summary.variant === "off");
  for (const summary of summaries) {
    if (!off || summary === off) continue;
    const pairs: number[] = [];
    for (const round of new Set(timed.map((result) => result.round))) {
      const inRound = timed.filter((result) => result.round === round && result.ok);
      const offRate = inRound.find((result) => result.variant === "off")?.jobs_per_second;
      const rate = inRound.find((result) => result.variant === summary.variant)?.jobs_per_second;
      if (offRate && rate) pairs.push(rate / offRate);
    }
    const cpu = (entry: VariantSummary) =>
      entry.median_redis_cpu_us_per_job !== null && entry.median_node_cpu_us_per_job !== null
        ? entry.median_node_cpu_us_per_job + entry.median_redis_cpu_us_per_job
        : null;
    const offCpu = cpu(off);
    const variantCpu = cpu(summary);
    summary.cpu_ratio = offCpu && variantCpu ? offCpu / variantCpu : null;
    summary.ratio_of_medians =
      off.median_jobs_per_second && summary.median_jobs_per_second
        ? summary.median_jobs_per_second / off.median_jobs_per_second
        : null;
    summary.pair_ratios = pairs;
    summary.pair_ratio_min = pairs.length ? spread(pairs).min : null;
    summary.pair_ratio_max = pairs.length ? spread(pairs).max : null;
  }
  const full = summaries.find((summary) => summary.variant === "on" || summary.variant === "all");
  const ratio = full?.ratio_of_medians ?? null;
  return {
    variants: summaries,
    target: {
      ratio: TARGET_RATIO,
      variant: full?.variant ?? null,
      verdict: ratio === null || ratio === undefined ? "n/a" : ratio >= TARGET_RATIO ? "PASS" : "BELOW",
    },
  };
}

const us = (value: number | null | undefined) =>
  value === null || value === undefined ? "-" : formatNumber(value);

/** Commands per job that differ from "off" (scripts' inner commands included). */
function commandDifferences(off: VariantSummary, other: VariantSummary): string {
  const before = off.redis_commands_per_job_by_name ?? {};
  const after = other.redis_commands_per_job_by_name ?? {};
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  const differences = [...names]
    .map((name) => ({ name, before: before[name] ?? 0, after: after[name] ?? 0 }))
    .filter((entry) => Math.abs(entry.after - entry.before) >= 0.05)
    .sort((a, b) => Math.abs(b.after - b.before) - Math.abs(a.after - a.before))
    .map((entry) => `${entry.name} ${formatNumber(entry.before)}→${formatNumber(entry.after)}`);
  return differences.length ? differences.join(", ") : "none";
}

export function summaryLines(summary: Summary): string[] {
  const lines: string[] = [];
  const off = summary.variants.find((variant) => variant.variant === "off");
  const header =
    "variant        median jobs/s (range)      wall µs/job  node cpu µs/job  redis cpu µs/job  redis cmds/job  cpu ratio  ratio vs off (per pair)";
  lines.push(header);
  for (const variant of summary.variants) {
    if (variant.median_jobs_per_second === null) {
      lines.push(`${variant.variant.padEnd(14)} no successful round`);
      continue;
    }
    const range = `(${Math.round(variant.min_jobs_per_second as number)}..${Math.round(variant.max_jobs_per_second as number)})`;
    const ratio =
      variant.ratio_of_medians !== undefined && variant.ratio_of_medians !== null
        ? `${variant.ratio_of_medians.toFixed(2)} (${(variant.pair_ratio_min as number).toFixed(2)}..${(variant.pair_ratio_max as number).toFixed(2)} [${(variant.pair_ratios ?? []).map((r) => r.toFixed(2)).join(", ")}])`
        : "";
    lines.push(
      [
        variant.variant.padEnd(14),
        `${Math.round(variant.median_jobs_per_second)} ${range}`.padEnd(26),
        us(variant.wall_us_per_job).padStart(11),
        us(variant.median_node_cpu_us_per_job).padStart(16),
        us(variant.median_redis_cpu_us_per_job).padStart(17),
        us(variant.median_redis_commands_per_job).padStart(15),
        (variant.cpu_ratio ? variant.cpu_ratio.toFixed(2) : "").padStart(10),
        ` ${ratio}`,
      ].join(" "),
    );
  }
  if (off) {
    for (const variant of summary.variants) {
      if (variant === off || !variant.redis_commands_per_job_by_name || !off.redis_commands_per_job_by_name)
        continue;
      lines.push(
        `redis commands per job that differ (off→${variant.variant}): ${commandDifferences(off, variant)}`,
      );
    }
  }
  const full = summary.variants.find((variant) => variant.variant === summary.target.variant);
  if (full?.ratio_of_medians) {
    lines.push(
      `ratio ${full.variant}/off: ${full.ratio_of_medians.toFixed(2)} (of the medians); per pair ${(full.pair_ratio_min as number).toFixed(2)}..${(full.pair_ratio_max as number).toFixed(2)}`,
    );
  }
  lines.push(`${TARGET_TEXT}: ${summary.target.verdict}`);
  if (summary.variants.some((variant) => variant.cpu_ratio))
    lines.push(
      "(cpu ratio = (node + redis cpu µs/job of off) / (the same of the variant): what jobs/s follow when both share busy cores)",
    );
  return lines;
}
