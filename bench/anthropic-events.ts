/**
 * `node --import tsx bench/anthropic-events.ts [--rounds 5]`: how the filter of Anthropic's stream
 * events (KnownEventsFilter, providers/anthropic-events.ts) scales with one big event, against a
 * TransformStream that only decodes and encodes again (the least a text filter does) over the same
 * 64 KiB pieces in the same run. A filter that searched its
 * whole pending text at each piece grew with the square of the event's size (12 MB: 6.9 s,
 * failure-injection probe of stop 47); a linear one keeps its ratio to the baseline flat from 1 MB
 * to 12 MB. Asserts nothing; prints the medians and the ratios.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { KnownEventsFilter } from "../packages/engine/src/providers/anthropic-events.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`--rounds must be a whole number ≥ 1 (got "${values.rounds}")`);
const PIECE = 64 * 1024;

function body(textBytes: number): Uint8Array {
  const delta = JSON.stringify({
    type: "content_block_delta",
    index: 0,
    delta: { type: "text_delta", text: "a".repeat(textBytes) },
  });
  return new TextEncoder().encode(
    `event: content_block_delta\ndata: ${delta}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n`,
  );
}

/** Milliseconds to push `bytes` through `transform` in 64 KiB pieces and read it all. */
async function timeThrough(
  bytes: Uint8Array,
  transform: TransformStream<Uint8Array, Uint8Array>,
): Promise<number> {
  const started = performance.now();
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.length; at += PIECE) controller.enqueue(bytes.subarray(at, at + PIECE));
      controller.close();
    },
  });
  let read = 0;
  for await (const chunk of source.pipeThrough(transform)) read += chunk.length;
  if (read !== bytes.length) throw new Error(`read ${read} of ${bytes.length} bytes`);
  return performance.now() - started;
}

/** The baseline: each piece decoded as text and encoded back, nothing searched. */
function recoding(): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  return new TransformStream({
    transform(chunk, controller) {
      const text = decoder.decode(chunk, { stream: true });
      if (text) controller.enqueue(encoder.encode(text));
    },
    flush(controller) {
      const text = decoder.decode();
      if (text) controller.enqueue(encoder.encode(text));
    },
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const rows: string[] = [];
for (const megabytes of [1, 3, 6, 12]) {
  const bytes = body(megabytes * 1e6);
  const filter: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // Interleaved, so a noisy moment weighs on both.
    baseline.push(await timeThrough(bytes, recoding()));
    filter.push(await timeThrough(bytes, new KnownEventsFilter()));
  }
  const [filterMs, baselineMs] = [median(filter), median(baseline)];
  rows.push(
    `${String(megabytes).padStart(3)} MB event: filter ${filterMs.toFixed(0).padStart(5)} ms, recoding ${baselineMs.toFixed(0).padStart(4)} ms, ` +
      `ratio ${(filterMs / baselineMs).toFixed(2)}, filter ${(filterMs / megabytes).toFixed(1)} ms/MB`,
  );
}
console.log(`KnownEventsFilter against a decode-and-encode TransformStream, medians of ${rounds} rounds:`);
for (const row of rows) console.log(row);
