/**
 * The OpenAI provider client alone, AI SDK path against the lean client (ADR 0022): non-streamed
 * `generate` calls from this process to the gateway bench's fake upstream (its own process, no
 * delay), `--concurrency` in flight, alternating rounds of each path. Prints CPU µs per call of
 * this process (user + system, so GC included) and GC pause time per call. Uses the engine's dist
 * (run `pnpm build` first).
 *
 *   node --import tsx bench/io/client-micro.ts [--calls 20000] [--concurrency 100] [--rounds 3]
 */
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { spawnNode, waitForLine } from "../gateway/processes.js";
import { repoRoot } from "../support/modules.js";
import { formatNumber, median } from "../support/stats.js";

type Adapter = { generate(call: unknown): Promise<{ content: string | null }> };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "100" },
      rounds: { type: "string", default: "3" },
    },
  });
  const calls = Number(values.calls);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const dist = join(repoRoot, "packages", "engine", "dist", "providers");
  const { createOpenAIAdapter } = (await import(join(dist, "openai.js"))) as {
    createOpenAIAdapter: (...args: unknown[]) => Adapter;
  };
  const { createProviderHttp } = (await import(join(dist, "http.js"))) as {
    createProviderHttp: (options: { connections: number }) => { dispatcher: unknown; fetch: unknown };
  };
  const upstream = spawnNode(
    "fake upstream",
    ["--import", "tsx", join(repoRoot, "bench", "gateway", "fake-upstream.ts"), "0", "0"],
    { cwd: repoRoot },
  );
  try {
    const port = Number((await waitForLine(upstream, /listening (\d+)/, 20_000))[1]);
    const provider = { type: "openai", base_url: `http://127.0.0.1:${port}/v1` };
    const http = createProviderHttp({ connections: concurrency });
    const adapters: Record<string, Adapter> = {
      sdk: createOpenAIAdapter("bench", provider, "sk-bench", http.fetch),
      lean: createOpenAIAdapter("bench", provider, "sk-bench", http.fetch, undefined, {
        dispatcher: http.dispatcher,
      }),
    };
    let gcMs = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) gcMs += entry.duration;
    });
    observer.observe({ entryTypes: ["gc"] });
    const request = {
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Summarise the weather report in one line." },
      ],
      max_tokens: 64,
    };
    const round = async (name: string, count: number) => {
      const adapter = adapters[name] as Adapter;
      let next = 0;
      const worker = async () => {
        while (next < count) {
          next += 1;
          const controller = new AbortController();
          const completion = await adapter.generate({
            request,
            modelId: "m",
            model: { provider: "bench", name: "gpt-4o-mini" },
            upstreamName: "gpt-4o-mini",
            signal: controller.signal,
          });
          if (!completion.content) throw new Error("empty completion");
        }
      };
      const gcBefore = gcMs;
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      await Promise.all(Array.from({ length: concurrency }, worker));
      const elapsed = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      return {
        cpuUs: (cpu.user + cpu.system) / count,
        gcUs: ((gcMs - gcBefore) * 1000) / count,
        perSecond: count / elapsed,
      };
    };
    // Warm-up (JIT, connections), not counted.
    for (const name of Object.keys(adapters)) await round(name, Math.min(calls, 5000));
    const results: Record<string, Array<Awaited<ReturnType<typeof round>>>> = { sdk: [], lean: [] };
    for (let index = 0; index < rounds; index += 1) {
      for (const name of Object.keys(adapters)) {
        const result = await round(name, calls);
        results[name]?.push(result);
        console.log(
          `round ${index + 1} ${name.padEnd(4)}  ${formatNumber(result.cpuUs)} µs cpu/call (gc ${formatNumber(result.gcUs)})  ${formatNumber(result.perSecond)} calls/s`,
        );
      }
    }
    observer.disconnect();
    for (const name of Object.keys(results)) {
      const rows = results[name] ?? [];
      console.log(
        `${name}: median ${formatNumber(median(rows.map((row) => row.cpuUs)))} µs cpu/call, gc ${formatNumber(median(rows.map((row) => row.gcUs)))} µs/call, ${formatNumber(median(rows.map((row) => row.perSecond)))} calls/s`,
      );
    }
  } finally {
    await upstream.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
