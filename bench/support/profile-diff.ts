/**
 * Compares two .cpuprofile files per job: self time by package / file, and by function, sorted
 * by the difference. Usage:
 *   node --import tsx bench/support/profile-diff.ts <base.cpuprofile> <other.cpuprofile> --jobs N[,M] [--top 30]
 * (both profiles of rounds of N jobs, e.g. bench:resilience --only off / --only on --profile; or N
 * for the base and M for the other, e.g. bench:enqueue's bare and Cascade rounds).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { summarizeProfile } from "./profile-summary.js";

type Profile = Parameters<typeof summarizeProfile>[0];

export function diffEntries(
  base: Array<[string, number]>,
  other: Array<[string, number]>,
  jobs: number,
  otherJobs = jobs,
): Array<{ name: string; base: number; other: number; delta: number }> {
  const before = new Map(base);
  const after = new Map(other);
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names]
    .map((name) => {
      const b = (before.get(name) ?? 0) / jobs;
      const o = (after.get(name) ?? 0) / otherJobs;
      return { name, base: b, other: o, delta: o - b };
    })
    .sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta));
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { jobs: { type: "string" }, top: { type: "string" } },
  });
  const [baseFile, otherFile] = positionals;
  if (!baseFile || !otherFile || !values.jobs) {
    console.error("usage: profile-diff.ts <base.cpuprofile> <other.cpuprofile> --jobs N[,M] [--top 30]");
    process.exit(2);
  }
  const [jobs, otherJobs = jobs] = values.jobs.split(",").map(Number) as [number, number?];
  const top = Number(values.top ?? 30);
  const load = (file: string) => summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const base = load(baseFile);
  const other = load(otherFile);
  const row = (entry: { name: string; base: number; other: number; delta: number }) =>
    `  ${entry.base.toFixed(1).padStart(7)} ${entry.other.toFixed(1).padStart(7)} ${(entry.delta >= 0 ? "+" : "") + entry.delta.toFixed(1).padStart(6)}  ${entry.name}`;
  console.log(
    `µs/job: base ${(base.totalUs / jobs).toFixed(1)}, other ${(other.totalUs / otherJobs).toFixed(1)}`,
  );
  console.log("    base   other   delta  self time by package / file");
  for (const entry of diffEntries(base.self, other.self, jobs, otherJobs).slice(0, top))
    console.log(row(entry));
  console.log("    base   other   delta  self time by function");
  for (const entry of diffEntries(base.selfFunctions, other.selfFunctions, jobs, otherJobs).slice(0, top))
    console.log(row(entry));
  console.log("    base   other   delta  inclusive time");
  for (const entry of diffEntries(base.inclusive, other.inclusive, jobs, otherJobs).slice(0, top))
    console.log(row(entry));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() as string)) main();
