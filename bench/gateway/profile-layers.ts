/**
 * "Where the time goes" in a gateway process's CPU profile, by layer: each sample is charged to
 * the innermost frame on its stack that belongs to a known layer (so a socket write issued by
 * undici is undici's, the same write issued by ioredis is Redis's, a zod parse inside the AI SDK
 * says so). Samples with no such frame are charged by their leaf (GC, idle, promise plumbing).
 * Usage:
 *   node --import tsx bench/gateway/profile-layers.ts <file.cpuprofile> [--requests N]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { bucketOf } from "../support/profile-summary.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const PROFILER = "(the profiler starting and stopping)";

/** The layer a frame belongs to, or undefined for Node internals and natives. */
export function layerOf(url: string, functionName: string): string | undefined {
  const bucket = bucketOf(url, functionName);
  if (url.endsWith("/profile-preload.mjs")) return PROFILER;
  if (url.endsWith("/portkey-preload.mjs")) return "(the bench's Response shim in Portkey)";
  // llhttp, the HTTP parser of undici (npm, and the one inside Node's fetch).
  if (url.startsWith("wasm://")) return "undici (upstream HTTP client)";
  if (!url) {
    if (functionName === "parse" || functionName === "stringify") return "JSON.parse/stringify";
    return undefined;
  }
  if (bucket === "ioredis" || bucket === "@ioredis/commands" || bucket === "redis-parser")
    return "Redis client (ioredis)";
  if (bucket.startsWith("cascade engine/resilience/"))
    return "engine: admission, leases, settle (resilience)";
  if (bucket.startsWith("cascade engine/providers/")) return "engine: provider adapter";
  if (bucket.startsWith("cascade engine/")) return "engine: chain and hop runner";
  if (
    bucket.startsWith("@ai-sdk/") ||
    bucket === "secure-json-parse" ||
    bucket === "eventsource-parser" ||
    bucket === "ai"
  )
    return "AI SDK provider client";
  if (bucket === "undici") return "undici (upstream HTTP client)";
  if (bucket === "zod" || bucket === "fastify-type-provider-zod") return "zod";
  if (bucket === "cascade api/gateway/chunk-stream.js") return "gateway: SSE chunk writing";
  if (bucket.startsWith("cascade api/gateway/") || bucket === "cascade api/routes/gateway.js")
    return "gateway route";
  if (bucket === "cascade api/plugins/auth.js") return "auth plugin";
  if (bucket.startsWith("cascade api/")) return "API plugins and hooks";
  if (bucket.startsWith("cascade shared/")) return "shared (config, schemas, ids)";
  if (
    bucket === "fastify" ||
    bucket.startsWith("@fastify/") ||
    bucket === "find-my-way" ||
    bucket === "avvio" ||
    bucket === "fast-json-stringify" ||
    bucket === "light-my-request" ||
    bucket === "fast-querystring" ||
    bucket === "secure-json-parse-fastify"
  )
    return "fastify";
  if (bucket === "async-retry" || bucket === "retry") return "@portkey-ai/gateway";
  if (bucket === "pino" || bucket === "sonic-boom" || bucket === "pino-std-serializers")
    return "logging (pino)";
  if (bucket.startsWith("node:_http_") || bucket === "node:http") return "node:http server";
  if (bucket === "node:internal/webstreams" || bucket === "node:internal/worker") return undefined;
  if (bucket.startsWith("node:") || bucket.startsWith("(")) return undefined;
  return bucket;
}

/** Leaves with no layer above them: grouped so the table stays short. */
function leafGroup(url: string, functionName: string): string {
  const bucket = bucketOf(url, functionName);
  if (bucket === "(garbage collector)") return "GC";
  if (bucket === "(idle)") return "idle";
  if (bucket === "(program)") return "(program: V8/native, unattributed)";
  if (bucket === "node:internal/webstreams" || bucket === "node:internal/worker")
    return "web streams (no layer above)";
  if (
    bucket === "(native) writev" ||
    bucket === "(native) writeUtf8String" ||
    bucket === "(native) writeBuffer"
  )
    return "socket writes (no layer above)";
  return "Node internals: event loop, promises, streams";
}

export function layerSummary(profile: CpuProfile): { totalUs: number; layers: [string, number][] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const cache = new Map<number, string>();
  const layerOfNode = (id: number): string => {
    const cached = cache.get(id);
    if (cached) return cached;
    let result: string | undefined;
    let zodSeen = false;
    let jsonSeen = false;
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const frame = byId.get(current)?.callFrame;
      if (!frame) break;
      const layer = layerOf(frame.url, frame.functionName);
      if (!layer) continue;
      if (layer === "zod") {
        zodSeen = true;
        continue;
      }
      if (layer === "JSON.parse/stringify") {
        if (!zodSeen) jsonSeen = true;
        continue;
      }
      result = layer;
      break;
    }
    const leaf = byId.get(id)?.callFrame;
    let name: string;
    if (zodSeen) name = `zod (in ${result ?? "?"})`;
    else if (jsonSeen) name = `JSON (in ${result ?? "?"})`;
    else name = result ?? leafGroup(leaf?.url ?? "", leaf?.functionName ?? "");
    cache.set(id, name);
    return name;
  };
  const totals = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((sample, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    totalUs += delta;
    const layer = layerOfNode(sample);
    totals.set(layer, (totals.get(layer) ?? 0) + delta);
  });
  return { totalUs, layers: [...totals.entries()].sort((a, b) => b[1] - a[1]) };
}

/** Lines of the table: share of the sampled time and µs per request (idle left out of the latter). */
export function layerLines(profile: CpuProfile, requests: number, top = 18): string[] {
  const { totalUs, layers } = layerSummary(profile);
  const idle = layers
    .filter(([name]) => name === "idle" || name === PROFILER)
    .reduce((sum, [, us]) => sum + us, 0);
  const lines = [
    `${(totalUs / 1000).toFixed(0)} ms sampled, ${((totalUs - idle) / Math.max(1, requests)).toFixed(0)} µs busy per request ` +
      `(${requests} requests; idle and the profiler's own start/stop left out)`,
  ];
  for (const [name, us] of layers.slice(0, top)) {
    lines.push(
      `${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${(us / Math.max(1, requests)).toFixed(1).padStart(6)} µs/req  ${name}`,
    );
  }
  return lines;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { requests: { type: "string" }, top: { type: "string" } },
  });
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    console.log(`\n${file}:`);
    for (const line of layerLines(profile, Number(values.requests ?? 1), Number(values.top ?? 25))) {
      console.log(`  ${line}`);
    }
  }
}

if (process.argv[1]?.endsWith("profile-layers.ts")) main();
