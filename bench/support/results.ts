/** Machine facts and the JSON result file every bench writes to bench/results/ (gitignored). */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { repoRoot } from "./modules.js";

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? "unknown",
    total_memory_gb: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
  };
}

/** Writes `bench/results/<name>-<timestamp>.json` and returns its path. */
export function writeResults(name: string, results: unknown, now = new Date()): string {
  const directory = join(repoRoot, "bench", "results");
  mkdirSync(directory, { recursive: true });
  const stamp = now.toISOString().replace(/[:.]/g, "-");
  const path = join(directory, `${name}-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  return path;
}
