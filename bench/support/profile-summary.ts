/**
 * Summarises a .cpuprofile: self time by package / Cascade file / Node internal, and inclusive
 * time of the functions that matter. Usage:
 *   node --import tsx bench/support/profile-summary.ts <file.cpuprofile> [--jobs N] [--top 30]
 * With --jobs, times are also shown per job (µs/job).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package, a Cascade file, a Node internal module, or a V8 pseudo-frame. */
export function bucketOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : `(native) ${functionName || "anonymous"}`;
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pnpm) return pnpm[1] as string;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (modules) return modules[1] as string;
  const cascade = /packages\/([^/]+)\/(?:dist|src)\/(.+)$/.exec(url);
  if (cascade) return `cascade ${cascade[1]}/${cascade[2]}`;
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return url.replace(/^file:\/\/.*\/bench\//, "bench/");
}

export function summarizeProfile(profile: Profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const selfFunctions = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((sample, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    total += delta;
    const node = byId.get(sample);
    if (!node) return;
    const { url, functionName, lineNumber } = node.callFrame;
    const bucket = bucketOf(url, functionName);
    self.set(bucket, (self.get(bucket) ?? 0) + delta);
    const fn = `${functionName || "anonymous"} ${bucket}:${lineNumber + 1}`;
    selfFunctions.set(fn, (selfFunctions.get(fn) ?? 0) + delta);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame) break;
      const key = `${frame.functionName || "anonymous"} ${bucketOf(frame.url, frame.functionName)}:${frame.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + delta);
    }
  });
  const sorted = (map: Map<string, number>) => [...map.entries()].sort((a, b) => b[1] - a[1]);
  return {
    totalUs: total,
    self: sorted(self),
    selfFunctions: sorted(selfFunctions),
    inclusive: sorted(inclusive),
  };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { jobs: { type: "string" }, top: { type: "string" } },
  });
  const top = Number(values.top ?? 30);
  const jobs = values.jobs ? Number(values.jobs) : undefined;
  for (const file of positionals) {
    const summary = summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as Profile);
    const show = (us: number) => {
      const share = `${((100 * us) / summary.totalUs).toFixed(1)}%`.padStart(6);
      const perJob = jobs ? `  ${(us / jobs).toFixed(1).padStart(6)} µs/job` : "";
      return `${share}${perJob}`;
    };
    console.log(
      `\n${file}: ${(summary.totalUs / 1000).toFixed(0)} ms sampled${jobs ? `, ${(summary.totalUs / jobs).toFixed(1)} µs/job` : ""}`,
    );
    console.log("self time by package / file:");
    for (const [bucket, us] of summary.self.slice(0, top)) console.log(`  ${show(us)}  ${bucket}`);
    console.log("self time by function:");
    for (const [name, us] of summary.selfFunctions.slice(0, top)) console.log(`  ${show(us)}  ${name}`);
    console.log("inclusive time:");
    for (const [name, us] of summary.inclusive.slice(0, top)) console.log(`  ${show(us)}  ${name}`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() as string)) main();
