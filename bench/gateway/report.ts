/** Lines and summary of the gateway bench: medians over rounds, ratios to direct, targets. */
import { formatNumber, median, spread } from "../support/stats.js";
import type { RunResult } from "./load.js";
import type { Mode, TargetName } from "./options.js";

/** The issue's targets ("Gateway" bench). */
export const TARGET_RPS_RATIO = 4;
export const TARGET_ADDED_P50_MS = 0.5;
export const TARGET_ADDED_P99_MS = 2;

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(value < 10 ? 2 : 1) : "—");
const signedMs = (value: number) =>
  Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(Math.abs(value) < 10 ? 2 : 1)}` : "—";
const range = (values: number[], format: (value: number) => string) => {
  if (values.length < 2) return "";
  const { min, max } = spread(values);
  return ` (${format(min)}..${format(max)})`;
};

export function runLine(result: RunResult, note = ""): string {
  const what = result.kind === "throughput" ? "throughput" : "fixed rate";
  // Exact for paced runs, which wait for every answer; a throughput run ends with requests in flight.
  const upstream =
    result.kind === "paced" &&
    result.upstreamCalls !== undefined &&
    result.target !== "direct" &&
    result.ok > 0
      ? `  upstream calls/request ${(result.upstreamCalls / result.sent).toFixed(2)}`
      : "";
  return (
    `  round ${result.round} ${result.mode.padEnd(6)} ${result.target.padEnd(8)} ${what.padEnd(10)} ` +
    `${formatNumber(result.rps).padStart(6)} req/s  p50 ${ms(result.latency.p50).padStart(6)} ms  ` +
    `p99 ${ms(result.latency.p99).padStart(6)} ms  (${result.ok} ok)${upstream}` +
    `${result.flag ? `  FLAGGED: ${result.flag}` : ""}${result.note ? `  note: ${result.note}` : ""}${note}`
  );
}

export interface TargetSummary {
  target: TargetName;
  rounds: number;
  flagged: number;
  /** Runs that count but carry a note (late generator, saturated target). */
  noted: number;
  throughput?: { rps: number; rpsRange: [number, number]; p50: number; p99: number; ratioToDirect?: number };
  paced?: {
    rps: number;
    p50: number;
    p99: number;
    /** Median over rounds of (this target − direct in the same round), ms. */
    addedP50?: number;
    addedP99?: number;
    addedP50Range?: [number, number];
    addedP99Range?: [number, number];
  };
}

export interface ModeSummary {
  mode: Mode;
  targets: TargetSummary[];
  /** cascade req/s ÷ portkey req/s: of the medians, and per round. */
  cascadeOverPortkey?: { ratio: number; perRound: number[]; met: boolean };
  cascadeAdded?: { p50: number; p99: number; p50Met: boolean; p99Met: boolean };
  /** Targets left out, with why (e.g. "Cascade answered 404: ..."). */
  unavailable: Record<string, string>;
}

function pairedByRound(
  results: RunResult[],
  target: TargetName,
  baseline: TargetName,
  pick: (r: RunResult) => number,
) {
  const values: number[] = [];
  for (const result of results.filter((r) => r.target === target && !r.flag)) {
    const base = results.find((r) => r.target === baseline && r.round === result.round && !r.flag);
    if (base) values.push(pick(result) - pick(base));
  }
  return values;
}

export function summarizeMode(
  mode: Mode,
  targets: TargetName[],
  results: RunResult[],
  unavailable: Record<string, string>,
): ModeSummary {
  const ofMode = results.filter((result) => result.mode === mode);
  const throughput = ofMode.filter((result) => result.kind === "throughput");
  const paced = ofMode.filter((result) => result.kind === "paced");
  const summaries: TargetSummary[] = [];
  for (const target of targets) {
    if (unavailable[target]) continue;
    const mine = ofMode.filter((result) => result.target === target);
    const summary: TargetSummary = {
      target,
      rounds: new Set(mine.map((result) => result.round)).size,
      flagged: mine.filter((result) => result.flag).length,
      noted: mine.filter((result) => result.note && !result.flag).length,
    };
    const runs = throughput.filter((result) => result.target === target && !result.flag);
    if (runs.length) {
      const rps = runs.map((result) => result.rps);
      const { min, max } = spread(rps);
      summary.throughput = {
        rps: median(rps),
        rpsRange: [min, max],
        p50: median(runs.map((result) => result.latency.p50)),
        p99: median(runs.map((result) => result.latency.p99)),
      };
    }
    const pacedRuns = paced.filter((result) => result.target === target && !result.flag);
    if (pacedRuns.length) {
      summary.paced = {
        rps: median(pacedRuns.map((result) => result.rps)),
        p50: median(pacedRuns.map((result) => result.latency.p50)),
        p99: median(pacedRuns.map((result) => result.latency.p99)),
      };
      if (target !== "direct") {
        const added50 = pairedByRound(paced, target, "direct", (result) => result.latency.p50);
        const added99 = pairedByRound(paced, target, "direct", (result) => result.latency.p99);
        if (added50.length) {
          const r50 = spread(added50);
          const r99 = spread(added99);
          Object.assign(summary.paced, {
            addedP50: median(added50),
            addedP99: median(added99),
            addedP50Range: [r50.min, r50.max],
            addedP99Range: [r99.min, r99.max],
          });
        }
      }
    }
    summaries.push(summary);
  }
  const direct = summaries.find((summary) => summary.target === "direct");
  for (const summary of summaries) {
    if (summary.throughput && direct?.throughput) {
      summary.throughput.ratioToDirect = summary.throughput.rps / direct.throughput.rps;
    }
  }
  const modeSummary: ModeSummary = { mode, targets: summaries, unavailable };
  const cascade = summaries.find((summary) => summary.target === "cascade");
  const portkey = summaries.find((summary) => summary.target === "portkey");
  if (cascade?.throughput && portkey?.throughput) {
    const perRound: number[] = [];
    for (const result of throughput.filter((r) => r.target === "cascade" && !r.flag)) {
      const other = throughput.find((r) => r.target === "portkey" && r.round === result.round && !r.flag);
      if (other) perRound.push(result.rps / other.rps);
    }
    const ratio = cascade.throughput.rps / portkey.throughput.rps;
    modeSummary.cascadeOverPortkey = { ratio, perRound, met: ratio >= TARGET_RPS_RATIO };
  }
  if (cascade?.paced?.addedP50 !== undefined && cascade.paced.addedP99 !== undefined) {
    modeSummary.cascadeAdded = {
      p50: cascade.paced.addedP50,
      p99: cascade.paced.addedP99,
      p50Met: cascade.paced.addedP50 <= TARGET_ADDED_P50_MS,
      p99Met: cascade.paced.addedP99 <= TARGET_ADDED_P99_MS,
    };
  }
  return modeSummary;
}

export function summaryLines(summary: ModeSummary, options: { connections: number; rate: number }): string[] {
  const lines: string[] = [];
  const { mode } = summary;
  lines.push(
    `${mode === "json" ? "non-streaming (chat.completion)" : "streaming (SSE chunks)"}: medians over rounds; ` +
      `throughput at ${options.connections} connections${options.rate ? `, latency at a fixed ${options.rate} req/s` : ""}`,
  );
  lines.push(
    `  ${"target".padEnd(8)} ${"req/s (range)".padEnd(22)} ${"×direct".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)}` +
      (options.rate
        ? ` | @${options.rate}/s: ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"added p50".padStart(10)} ${"added p99".padStart(10)}`
        : ""),
  );
  for (const target of summary.targets) {
    const t = target.throughput;
    const p = target.paced;
    const rps = t ? `${formatNumber(t.rps)}${range(t.rpsRange, (v) => formatNumber(v))}` : "—";
    let line =
      `  ${target.target.padEnd(8)} ${rps.padEnd(22)} ${(t?.ratioToDirect !== undefined ? t.ratioToDirect.toFixed(2) : "—").padStart(7)} ` +
      `${ms(t?.p50 ?? Number.NaN).padStart(7)} ${ms(t?.p99 ?? Number.NaN).padStart(7)}`;
    if (options.rate) {
      line +=
        ` |         ${ms(p?.p50 ?? Number.NaN).padStart(7)} ${ms(p?.p99 ?? Number.NaN).padStart(7)} ` +
        `${(target.target === "direct" ? "" : signedMs(p?.addedP50 ?? Number.NaN)).padStart(10)} ` +
        `${(target.target === "direct" ? "" : signedMs(p?.addedP99 ?? Number.NaN)).padStart(10)}`;
    }
    if (target.flagged) line += `  (${target.flagged} flagged run(s) left out)`;
    if (target.noted) line += `  (${target.noted} run(s) with a note)`;
    lines.push(line);
  }
  for (const [target, why] of Object.entries(summary.unavailable))
    lines.push(`  ${target.padEnd(8)} not measured: ${why}`);
  const verdict = (met: boolean) => (met ? "MET" : "NOT MET");
  if (summary.cascadeOverPortkey) {
    const { ratio, perRound, met } = summary.cascadeOverPortkey;
    lines.push(
      `  target ${mode}: cascade req/s ÷ portkey req/s = ${ratio.toFixed(2)}${range(perRound, (v) => v.toFixed(2))} ` +
        `(≥ ${TARGET_RPS_RATIO}): ${verdict(met)}`,
    );
  } else {
    lines.push(`  target ${mode}: cascade req/s ÷ portkey req/s: not measured (both sides needed)`);
  }
  if (summary.cascadeAdded) {
    const { p50, p99, p50Met, p99Met } = summary.cascadeAdded;
    const cascade = summary.targets.find((target) => target.target === "cascade")?.paced;
    lines.push(
      `  target ${mode}: cascade added latency at ${options.rate} req/s: p50 ${signedMs(p50)} ms` +
        `${cascade?.addedP50Range ? range(cascade.addedP50Range, signedMs) : ""} (≤ ${TARGET_ADDED_P50_MS}): ${verdict(p50Met)}; ` +
        `p99 ${signedMs(p99)} ms${cascade?.addedP99Range ? range(cascade.addedP99Range, signedMs) : ""} (≤ ${TARGET_ADDED_P99_MS}): ${verdict(p99Met)}`,
    );
  } else if (options.rate) {
    lines.push(`  target ${mode}: cascade added latency: not measured (cascade and direct needed)`);
  }
  return lines;
}
