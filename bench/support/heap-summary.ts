/**
 * Summarises a .heapprofile written with --heap-profile (sampled allocations of a timed interval,
 * collected objects included): bytes allocated by package / Cascade file, by function, and the
 * callers of the largest allocators. Usage:
 *   node --import tsx bench/support/heap-summary.ts <file.heapprofile> --jobs N [--top 30]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { bucketOf } from "./profile-summary.js";

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

export function summarizeHeapProfile(head: HeapNode) {
  const byBucket = new Map<string, number>();
  const byFunction = new Map<string, number>();
  /** Per function: its callers (up to three frames), by bytes. */
  const callers = new Map<string, Map<string, number>>();
  let total = 0;
  const add = (map: Map<string, number>, key: string, bytes: number) =>
    map.set(key, (map.get(key) ?? 0) + bytes);
  const walk = (node: HeapNode, stack: string[]) => {
    const { url, functionName, lineNumber } = node.callFrame;
    const bucket = bucketOf(url, functionName);
    const fn = `${functionName || "anonymous"} ${bucket}:${lineNumber + 1}`;
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(byBucket, bucket, node.selfSize);
      add(byFunction, fn, node.selfSize);
      const mine = callers.get(fn) ?? new Map<string, number>();
      callers.set(fn, mine);
      add(mine, stack.slice(-3).reverse().join(" < ") || "(root)", node.selfSize);
    }
    stack.push(fn);
    for (const child of node.children) walk(child, stack);
    stack.pop();
  };
  walk(head, []);
  return { total, byBucket, byFunction, callers };
}

function main() {
  const { values, positionals } = parseArgs({
    options: { jobs: { type: "string" }, top: { type: "string" } },
    allowPositionals: true,
  });
  const [file] = positionals;
  const jobs = Number(values.jobs);
  if (!file || !Number.isInteger(jobs) || jobs < 1) {
    console.error(
      "usage: node --import tsx bench/support/heap-summary.ts <file.heapprofile> --jobs N [--top 30]",
    );
    process.exit(2);
  }
  const top = Number(values.top ?? 30);
  const { head } = JSON.parse(readFileSync(file, "utf8")) as { head: HeapNode };
  const summary = summarizeHeapProfile(head);
  const kib = (bytes: number) => `${(bytes / jobs / 1024).toFixed(2).padStart(7)} KiB/job`;
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`${file}: ${kib(summary.total).trim()} allocated (sampled)`);
  console.log("allocated by package / file:");
  for (const [bucket, bytes] of sorted(summary.byBucket)) console.log(`  ${kib(bytes)}  ${bucket}`);
  console.log("allocated by function:");
  for (const [fn, bytes] of sorted(summary.byFunction)) console.log(`  ${kib(bytes)}  ${fn}`);
  console.log("callers of the ten largest:");
  for (const [fn] of sorted(summary.byFunction).slice(0, 10)) {
    console.log(`  ${fn}`);
    for (const [stack, bytes] of sorted(summary.callers.get(fn) ?? new Map()).slice(0, 3))
      console.log(`    ${kib(bytes)}  < ${stack}`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, "/"))) main();
