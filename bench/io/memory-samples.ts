/**
 * DIAGNOSTIC (`pnpm bench:io --gc-samples`): memory of a worker process read after a forced full
 * GC, through bench/io/memory-preload.mjs. RSS deltas over a window hold garbage not yet
 * collected (V8 collects lazily and shrinks its heap lazily), which is most of the "RSS per
 * in-flight job" of a plain run; after a full GC what is left is what the process retains.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot } from "../support/modules.js";

export const MEMORY_PRELOAD = join(repoRoot, "bench", "io", "memory-preload.mjs");

/** Bytes, after a full GC. */
export interface MemorySample {
  seq: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** Node arguments that load the preload (GC on SIGWINCH, heap snapshots on SIGPWR). */
export function memoryPreloadArguments(): string[] {
  return ["--expose-gc", "--import", MEMORY_PRELOAD];
}

function lastSample(file: string): MemorySample | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, "utf8").trim().split("\n");
  const last = lines.at(-1);
  return last ? (JSON.parse(last) as MemorySample) : undefined;
}

/** Asks the process for a full GC and its memory after it; waits up to `timeoutMs` for the answer. */
export async function sampleAfterGc(pid: number, file: string, timeoutMs = 10_000): Promise<MemorySample> {
  const before = lastSample(file)?.seq ?? 0;
  process.kill(pid, "SIGWINCH");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sample = lastSample(file);
    if (sample && sample.seq > before) return sample;
    if (Date.now() > deadline) throw new Error(`no memory sample from ${pid} within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Asks the process for a heap snapshot (after a full GC); resolves with its path once written. */
export async function heapSnapshot(pid: number, directory: string, prefix: string, count: number) {
  const path = join(directory, `${prefix}-${count}.heapsnapshot`);
  process.kill(pid, "SIGPWR");
  const deadline = Date.now() + 120_000;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`no heap snapshot ${path} within 120 s`);
    await sleep(100);
  }
  return path;
}
