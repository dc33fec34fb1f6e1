/**
 * "Nothing accepted is lost", the slow half: once a property has run, every job it got a 202
 * for and every batch it created must reach a terminal status. A job or batch that is readable
 * but never ends (an enqueue that died in the background, a worker that cannot read its data)
 * is lost work just the same.
 */
import type { FuzzStack, Resource } from "./fuzz-stack.js";

const TERMINAL: Record<"job" | "batch", ReadonlySet<string>> = {
  job: new Set(["succeeded", "failed", "cancelled"]),
  batch: new Set(["completed", "failed", "cancelled", "expired"]),
};

/** Resources of `kind` still not terminal after `timeoutMs`, with their last status (empty = all ended). */
export async function unsettled(
  fuzz: FuzzStack,
  kind: "job" | "batch",
  timeoutMs: number,
): Promise<Array<Resource & { status: string }>> {
  const path = kind === "job" ? "/v1/jobs/" : "/v1/batches/";
  let pending = fuzz.resources[kind].map((resource) => ({ ...resource, status: "unknown" }));
  const deadline = Date.now() + timeoutMs;
  while (pending.length > 0 && Date.now() < deadline) {
    const still: typeof pending = [];
    // A few at a time: the API shares two cores with the worker and everything else.
    for (let start = 0; start < pending.length; start += 8) {
      const slice = pending.slice(start, start + 8);
      const answers = await Promise.all(
        slice.map((resource) =>
          fuzz.send({
            method: "GET",
            path: `${path}${resource.id}`,
            headers: fuzz.authorization({ kind: "tenant", tenant: resource.tenant }),
          }),
        ),
      );
      answers.forEach((answer, index) => {
        const resource = slice[index] as (typeof pending)[number];
        const status = answer.status === 200 ? String(answer.json?.status) : `HTTP ${answer.status}`;
        if (!TERMINAL[kind].has(status)) still.push({ ...resource, status });
      });
    }
    pending = still;
    if (pending.length) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return pending;
}
