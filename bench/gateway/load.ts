/**
 * The two kinds of run:
 *
 * - throughput: autocannon, N connections each sending its next request as soon as the previous
 *   answer ended (closed loop), for a fixed time. Latencies are taken from autocannon's per-response
 *   event (hrtime, in ms with decimals) rather than its histogram, which records whole milliseconds.
 * - paced (fixed rate): requests sent on a fixed schedule, one every 1/rate s, whatever the answers
 *   do (open loop), over keep-alive sockets of one node:http Agent. autocannon's own `overallRate`
 *   is not used: it lets each connection send its quota for the second back to back at the start
 *   of every second, so the "fixed rate" latencies would measure the queue of those bursts.
 *
 * Both count only 2xx answers as done; other statuses and socket errors are counted apart, and a
 * run with any is flagged. Every run has a hard time limit.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import type { Mode } from "./options.js";
import { requestBody, type Target } from "./targets.js";

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

export interface RunResult {
  kind: "throughput" | "paced";
  target: string;
  mode: Mode;
  round: number;
  /** Wall time of the run, s. */
  seconds: number;
  /** 2xx answers completed in it. */
  ok: number;
  /** ok / seconds. */
  rps: number;
  /** Of the 2xx answers, ms: from the request's first byte written to the answer's last byte read. */
  latency: LatencySummary;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Paced runs: how late the generator sent, ms (its own timer lag); large values void the run. */
  sendLag?: { p99: number; max: number };
  /** Requests sent, warm-up included (paced runs: the warm-up requests are not in `ok`). */
  sent: number;
  /** Calls the fake upstream answered during the run (a gateway should make one per request). */
  upstreamCalls?: number;
  /** Set when the run is not clean (errors, non-2xx, a time limit hit): left out of the medians. */
  flag?: string;
  /** Said about a run that still counts: the generator sent late, the target fell behind the rate. */
  note?: string;
}

export function summarizeLatencies(values: Float64Array | number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0)
    return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, mean: Number.NaN, max: Number.NaN };
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: sum / sorted.length,
    max: sorted[sorted.length - 1] as number,
  };
}

function flagOf(result: Omit<RunResult, "flag">, extra: string[] = []): string | undefined {
  const problems = [...extra];
  if (result.non2xx > 0) {
    const codes = Object.entries(result.statusCodes)
      .filter(([code]) => !code.startsWith("2"))
      .map(([code, count]) => `${count}×${code}`)
      .join(" ");
    problems.push(`non-2xx ${codes}`);
  }
  if (result.errors > 0)
    problems.push(`${result.errors} errors${result.timeouts ? ` (${result.timeouts} timeouts)` : ""}`);
  if (result.ok === 0) problems.push("no 2xx answer");
  return problems.length ? problems.join(", ") : undefined;
}

export interface ThroughputOptions {
  target: Target;
  mode: Mode;
  round: number;
  seconds: number;
  connections: number;
}

/** A closed-loop autocannon run; never rejects. */
export function throughputRun(options: ThroughputOptions): Promise<RunResult> {
  const { target, mode, round, seconds, connections } = options;
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  return new Promise((resolve) => {
    const limitMs = (seconds + 20) * 1000;
    let limitHit = false;
    const started = performance.now();
    const instance = autocannon(
      {
        url: target.url,
        method: "POST",
        headers: target.headers,
        body: requestBody(target.model, mode),
        connections,
        duration: seconds,
        timeout: 10,
      },
      (error: unknown, result: autocannon.Result) => {
        clearTimeout(limit);
        const wall = (performance.now() - started) / 1000;
        const elapsed = result?.duration && result.duration > 0 ? result.duration : wall;
        let non2xx = 0;
        for (const [code, count] of Object.entries(statusCodes)) if (!code.startsWith("2")) non2xx += count;
        const base = {
          kind: "throughput" as const,
          target: target.name,
          mode,
          round,
          seconds: elapsed,
          ok: latencies.length,
          sent: result?.requests?.sent ?? latencies.length,
          rps: latencies.length / elapsed,
          latency: summarizeLatencies(latencies),
          non2xx,
          errors: result?.errors ?? 0,
          timeouts: result?.timeouts ?? 0,
          statusCodes,
        };
        const extra = [
          ...(error ? [`autocannon: ${(error as Error).message ?? error}`] : []),
          ...(limitHit ? [`stopped at the ${limitMs / 1000} s time limit`] : []),
        ];
        resolve({ ...base, flag: flagOf(base, extra) });
      },
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
    const limit = setTimeout(() => {
      limitHit = true;
      instance.stop();
    }, limitMs);
  });
}

export interface PacedOptions {
  target: Target;
  mode: Mode;
  round: number;
  rate: number;
  seconds: number;
  /** Requests sent first at the same rate and left out of every figure (new sockets, warm-up). */
  warmupRequests: number;
}

/** An open-loop run at a fixed rate; never rejects. */
export function pacedRun(options: PacedOptions): Promise<RunResult> {
  const { target, mode, round, rate, seconds, warmupRequests } = options;
  const url = new URL(target.url);
  const body = Buffer.from(requestBody(target.model, mode));
  const headers = { ...target.headers, "content-length": String(body.length) };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const total = warmupRequests + Math.round(rate * seconds);
  const intervalMs = 1000 / rate;
  const latencies = new Float64Array(total);
  const measured = new Uint8Array(total);
  const lags: number[] = [];
  const statusCodes: Record<string, number> = {};
  let errors = 0;
  let timeouts = 0;
  let finished = 0;
  let measuredStart = 0;
  let measuredEnd = 0;

  return new Promise((resolve) => {
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const start = performance.now();
    const finish = (limitHit: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(limit);
      agent.destroy();
      const values: number[] = [];
      for (let index = warmupRequests; index < total; index += 1) {
        if (measured[index]) values.push(latencies[index] as number);
      }
      let non2xx = 0;
      for (const [code, count] of Object.entries(statusCodes)) if (!code.startsWith("2")) non2xx += count;
      const elapsed = ((measuredEnd || performance.now()) - measuredStart) / 1000;
      const lag = summarizeLatencies(lags);
      const unanswered = total - finished;
      const base = {
        kind: "paced" as const,
        target: target.name,
        mode,
        round,
        seconds: elapsed,
        ok: values.length,
        sent: total,
        rps: values.length / elapsed,
        latency: summarizeLatencies(values),
        non2xx,
        errors: errors + unanswered,
        timeouts: timeouts + unanswered,
        statusCodes,
        sendLag: { p99: lag.p99, max: lag.max },
      };
      const extra = limitHit ? [`stopped at the time limit with ${unanswered} unanswered`] : [];
      const notes = [
        ...(lag.p99 > 10 ? [`generator late: send lag p99 ${lag.p99.toFixed(1)} ms (busy machine)`] : []),
        ...(base.rps < 0.95 * rate
          ? [`fell behind the rate: answered ${Math.round(base.rps)} req/s (saturated)`]
          : []),
      ];
      resolve({ ...base, flag: flagOf(base, extra), ...(notes.length ? { note: notes.join("; ") } : {}) });
    };
    const onDone = () => {
      finished += 1;
      if (finished === total) {
        measuredEnd = performance.now();
        finish(false);
      }
    };
    const send = (index: number, scheduled: number) => {
      const sentAt = performance.now();
      if (index === warmupRequests) measuredStart = sentAt;
      if (index >= warmupRequests) lags.push(sentAt - scheduled);
      let settled = false;
      const settle = (failed: boolean) => {
        if (settled) return;
        settled = true;
        if (failed) errors += 1;
        onDone();
      };
      const request = http.request(
        { agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers },
        (response) => {
          const code = String(response.statusCode);
          response.on("data", () => {});
          response.on("end", () => {
            statusCodes[code] = (statusCodes[code] ?? 0) + 1;
            if (code.startsWith("2")) {
              latencies[index] = performance.now() - sentAt;
              measured[index] = 1;
            }
            settle(false);
          });
          response.on("error", () => settle(true));
        },
      );
      request.setTimeout(10_000, () => {
        timeouts += 1;
        request.destroy(new Error("timeout"));
      });
      request.on("error", () => settle(true));
      request.end(body);
    };
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
      while (sent < due) {
        send(sent, start + sent * intervalMs);
        sent += 1;
      }
      if (sent < total) timer = setTimeout(tick, Math.max(0, start + sent * intervalMs - performance.now()));
    };
    const limit = setTimeout(() => finish(true), (total / rate + 20) * 1000);
    tick();
  });
}
