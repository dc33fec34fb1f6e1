/**
 * DIAGNOSTIC, preloaded (`node --expose-gc --import <this> …`) into the I/O bench's worker
 * processes by `pnpm bench:io --gc-samples`: each SIGWINCH runs a full garbage collection and
 * appends one JSON line `{"seq", "rss", "heapUsed", "heapTotal", "external", "arrayBuffers"}` (bytes,
 * after the collection) to `$BENCH_MEMORY_FILE`; with `$BENCH_HEAP_SNAPSHOT_DIR` set, each SIGPWR
 * writes a heap snapshot there (`<prefix>-<n>.heapsnapshot`, after a full GC). So the bench reads
 * what the process retains, not garbage not yet collected. Production never runs like this: a
 * forced GC stops the process for tens of milliseconds.
 */
import { appendFileSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";

const file = process.env.BENCH_MEMORY_FILE;
const snapshots = process.env.BENCH_HEAP_SNAPSHOT_DIR;
const prefix = process.env.BENCH_PROFILE_PREFIX ?? "heap";
const collect = globalThis.gc;

if (file && typeof collect === "function") {
  let seq = 0;
  process.on("SIGWINCH", () => {
    collect();
    seq += 1;
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    appendFileSync(file, `${JSON.stringify({ seq, rss, heapUsed, heapTotal, external, arrayBuffers })}\n`);
  });
}

if (snapshots && typeof collect === "function") {
  let count = 0;
  process.on("SIGPWR", () => {
    collect();
    count += 1;
    mkdirSync(snapshots, { recursive: true });
    const path = join(snapshots, `${prefix}-${count}.heapsnapshot`);
    writeHeapSnapshot(`${path}.partial`);
    renameSync(`${path}.partial`, path);
  });
}
