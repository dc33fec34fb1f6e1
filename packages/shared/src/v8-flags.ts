import { setFlagsFromString } from "node:v8";

/**
 * V8 flags every Cascade process (API and worker) sets as it starts, before it reads its config
 * (docs/decisions/0037-no-allocation-site-pretenuring.md).
 *
 * `--no-allocation-site-pretenuring`: V8 may decide that the objects an allocation site makes
 * tend to survive and allocate them in the old generation from then on. In a process whose
 * objects live for one request or one job, a wrong guess is costly and sticky: zod's parse of a
 * request body through `z.preprocess` tipped it (a 1,000,000-parse loop promoted ~300–400 MB
 * instead of ~9 MB, its scavenges 10× longer), and the pretenured objects then kept the young
 * ones they point to alive through every scavenge until a full GC. Measured on the API under
 * `bench:enqueue`: 127 MB promoted in 13 s of load against 37 MB with the flag, scavenges 1.77 →
 * 1.02 ms each; on the worker (`bench:io`, `bench:throughput`) no change either way.
 */
const PROCESS_V8_FLAGS = ["--no-allocation-site-pretenuring"] as const;

/** Sets PROCESS_V8_FLAGS (V8 reads this one at each GC, so it holds from here on; setting it again changes nothing). */
export function applyProcessV8Flags(): void {
  for (const flag of PROCESS_V8_FLAGS) setFlagsFromString(flag);
}
