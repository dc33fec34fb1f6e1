/**
 * Differential fuzzing of the lean OpenAI stream client (ADR 0031) against the AI SDK's `doStream`
 * over fetch that it replaces. fast-check draws plausible, and some implausible, SSE bodies: role,
 * content and refusal deltas (empty, unicode, emoji, text holding `data:` or line breaks), tool-call
 * deltas split across chunks (parallel calls, missing or repeated ids, missing names), logprobs,
 * annotations, every finish reason or none, usage chunks, `"error": null` keys, OpenAI error frames
 * anywhere, malformed JSON and chunks the schema refuses, comments, `event:`/`id:`/`retry:` fields,
 * LF/CRLF/CR line ends, multi-line data, a BOM, `[DONE]` or not, and a body cut at a random byte
 * (a clean end or a destroyed connection). A real local server sends each body in pieces of 1-64
 * bytes with a setImmediate between them, once per path; the two outcomes must be equal, as
 * test/integration/openai-lean-stream-parity.test.ts holds them for its examples: the completion or
 * ProviderError, every sink delta in order, the output heartbeats.
 *
 * `npm test` runs BASE_RUNS cases (a few seconds); FUZZ_RUNS multiplies them (fuzz-settings.ts,
 * `pnpm fuzz`), FUZZ_SEED and FUZZ_PATH replay the case fast-check reported.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StreamOutcome,
  type StreamParity,
  startStreamParity,
  streamCall,
  streamOutcome,
} from "../support/stream-parity.js";
import { fuzzParameters, fuzzTimeoutMs, REPLAYING_ONE_CASE } from "./fuzz-settings.js";

const BASE_RUNS = 150;
const KEY = "sk-test-stream-parity-fuzz";

/**
 * A difference this fuzzer found (2026-12-05), tolerated so that it can look further;
 * FUZZ_STRICT_PARITY=1 holds the paths to strict equality again.
 *
 * 1. A tool-call delta the SDK's StreamingToolCallTracker refuses ("Expected 'function.name' to
 *    be a string.", "Expected 'function' type.") in a chunk that is not the first one the SDK's
 *    transform reads: the SDK path hands that chunk's earlier parts (its text, a tool call's
 *    start) to the sink before the error, the lean path none. Whatever the piece sizes:
 *      data: {"choices":[{"index":0,"delta":{"content":"a"}}]}
 *      data: {"choices":[{"index":0,"delta":{"content":"b","tool_calls":[{"index":0,"function":{}}]}}]}
 *    SDK deltas [a, b], lean [a]; both invalid_response "Expected 'function.name' to be a string.".
 *    Tolerated: the lean path's deltas and heartbeats must be a prefix of the SDK's (`both`).
 *
 * A second one it found, an error frame before any output with `"type": "response.failed"` in an
 * answer not typed text/event-stream (the SDK reads it as a Responses API event and says 500), was
 * fixed: the lean client reads such frames as the SDK's parseStreamError does.
 */
const STRICT = process.env.FUZZ_STRICT_PARITY === "1";

/** A call that takes longer than this hung: a failure of its own, not an outcome to compare. */
const CALL_TIMEOUT_MS = 5_000;

/** A streamed call, bounded: one that takes longer hung. */
const callFor = () => streamCall({}, AbortSignal.timeout(CALL_TIMEOUT_MS));

// ---------------------------------------------------------------------------------------------
// What is drawn: a stream's events as plain data (so fast-check can shrink and print them), then
// rendered to the bytes on the wire.

type Json = Record<string, unknown>;

/** Text for content, refusals and error messages: the awkward cases, and any unicode. */
const textArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "Hi",
      "Héllo",
      " wörld",
      "日本語",
      "😀",
      "👩‍👩‍👧‍👦",
      "🇫🇷x",
      "data: x",
      "data:",
      "line\nbreak",
      "a\r\nb\n\nc",
      "\n\ndata: [DONE]\n\n",
      "[DONE]",
      '{"a":1}',
      "\\",
      '"',
      "\u2028\u2029",
      "\ud83d",
      "\u0000",
      ": ping",
      "event: x",
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
);

/** The response metadata a chunk carries (the first chunk holding some is the answer's). */
const META = {
  full: { id: "chatcmpl-s", object: "chat.completion.chunk", created: 1_767_225_600, model: "m" },
  nulls: { id: null, object: "chat.completion.chunk", created: null, model: null },
  none: {},
  zeroCreated: { id: "chatcmpl-z", created: 0, model: "m2" },
  idOnly: { id: "chatcmpl-i" },
} satisfies Record<string, Json>;
type MetaKind = keyof typeof META;

const USAGE: Json[] = [
  { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
  {
    prompt_tokens: 9,
    completion_tokens: 4,
    total_tokens: 13,
    prompt_tokens_details: { cached_tokens: 2 },
  },
  {
    prompt_tokens: 20,
    completion_tokens: 7,
    total_tokens: 27,
    prompt_tokens_details: { cached_tokens: 3, cache_write_tokens: 5, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 2,
      accepted_prediction_tokens: 1,
      rejected_prediction_tokens: 0,
      audio_tokens: null,
    },
    cost: 0.0001,
  },
  { prompt_tokens: null, completion_tokens: null, total_tokens: null },
  { prompt_tokens: 5, prompt_tokens_details: null, completion_tokens_details: null },
  {},
];

interface ToolCallPlan {
  id: string | undefined;
  name: string | undefined;
  type: string | null | undefined;
  args: string;
  cuts: number[];
  repeatId: boolean;
  index: number | undefined;
}

const toolCallArb: fc.Arbitrary<ToolCallPlan> = fc.record({
  id: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("call_A", "call_B", "call_C") },
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "tool_1") },
  ),
  name: fc.oneof(
    { weight: 20, arbitrary: fc.constantFrom("add", "get_weather", "search") },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom("", "  ") },
  ),
  type: fc.constantFrom<string | null | undefined>("function", "function", undefined, null),
  args: fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '{"a":1,"b":2}',
        '{"city":"Paris"}',
        "{}",
        "",
        '{"q":"data: x\\n\\n"}',
        '{"emoji":"😀"}',
        "[1,2]",
        "not json",
        '{"a":',
      ),
    },
    { weight: 2, arbitrary: fc.json({ maxDepth: 2 }) },
  ),
  cuts: fc.array(fc.nat({ max: 40 }), { maxLength: 4 }),
  repeatId: fc.boolean(),
  // Usually the call's position; sometimes another call's index.
  index: fc.oneof(
    { weight: 5, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.nat({ max: 3 }) },
  ),
});

/** Events that carry the model's output (and are sometimes empty). */
type OutputEvent =
  | { t: "role"; content: string | null | undefined }
  | { t: "content"; text: string }
  | { t: "refusal"; text: string }
  | { t: "both"; content: string; refusal: string }
  | { t: "tools"; calls: ToolCallPlan[]; order: number[]; groups: number[]; content: string | undefined }
  | { t: "tool-delta"; delta: Json }
  | { t: "logprobs"; text: string; refusal: boolean }
  | { t: "annotations"; text: string | undefined; count: number }
  | { t: "empty"; delta: "null" | "{}" | "missing" }
  | { t: "second-choice"; text: string };

const outputEventArb: fc.Arbitrary<OutputEvent> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("role" as const), content: fc.constantFrom("", null, undefined) }),
  },
  { weight: 8, arbitrary: fc.record({ t: fc.constant("content" as const), text: textArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("refusal" as const), text: textArb }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("both" as const), content: textArb, refusal: textArb }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("tools" as const),
      calls: fc.array(toolCallArb, { minLength: 1, maxLength: 3 }),
      order: fc.array(fc.nat(), { maxLength: 12 }),
      groups: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
      content: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: textArb }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("tool-delta" as const),
      delta: fc.record(
        {
          index: fc.nat({ max: 2 }),
          id: fc.constantFrom("call_A", "call_B", "", null),
          type: fc.constantFrom("function", null),
          function: fc.record(
            {
              name: fc.constantFrom("add", "search", "", null),
              arguments: fc.constantFrom('{"a":', "1}", "", " ", null),
            },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: ["index", "function"] },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("logprobs" as const), text: textArb, refusal: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("annotations" as const),
      text: fc.option(textArb, { nil: undefined }),
      count: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("empty" as const),
      delta: fc.constantFrom("null", "{}", "missing"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("second-choice" as const), text: textArb }) },
);

const errorFrameArb = fc.record(
  {
    message: fc.oneof(fc.constantFrom("overloaded", "slow down", "Provider disconnected"), textArb),
    type: fc.constantFrom(
      null,
      "server_error",
      "invalid_request_error",
      "rate_limit_error",
      "requests",
      "authentication_error",
      "permission_error",
      "not_found_error",
      "overloaded_error",
      "timeout_error",
      "response.failed",
      "insufficient_quota",
    ),
    code: fc.constantFrom(
      null,
      "rate_limit_exceeded",
      "insufficient_quota",
      "context_length_exceeded",
      "server_error",
      429,
      500,
      503,
      "503",
      "401",
      200,
      600,
      "abc",
    ),
    param: fc.constantFrom(null, "messages", 3),
  },
  { requiredKeys: [] },
);

/** Data fields that are not JSON, or are JSON the SDK's secure parse refuses. */
const MALFORMED = [
  "{not json",
  "",
  "null",
  "[]",
  "42",
  '"x"',
  "{",
  '{"choices":[{"index":0,"delta":{"content":"x"}}],}',
  "NaN",
  '{"id":"x","choices":[],"usage":{"prompt_tokens":1e999}}',
  '{"id":"x","created":1e999,"choices":[]}',
  '{"__proto__":{"polluted":1},"choices":[]}',
  '{"\\u005f_proto__":{},"choices":[]}',
  '{"choices":[],"constructor":{"prototype":{"x":1}}}',
  '{"choices":[],"constructor":{"x":1}}',
  '{"choices":[{"index":0,"delta":{"content":"a","__proto__":null}}]}',
  "data: nested",
  "[DONE] ",
  " [DONE]",
];

/** Chunks that are JSON but that the chunk schema may refuse (or just barely accept). */
const ODD: Json[] = [
  { choices: [{ index: 0, delta: { content: 5 } }] },
  { choices: [{ index: 0, delta: { role: "user", content: "x" } }] },
  { choices: [{ delta: { content: "x" } }] },
  { choices: [{ index: "0", delta: { content: "x" } }] },
  { choices: [{ index: 0, delta: {}, finish_reason: 7 }] },
  { choices: null },
  { id: "no-choices" },
  {
    choices: [
      {
        index: 0,
        delta: {
          content: "t",
          tool_calls: [{ index: 0, id: "call_x", type: "custom", function: { name: "f", arguments: "{}" } }],
        },
      },
    ],
  },
  { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "call_x" }] } }] },
  { choices: [{ index: 0, delta: { tool_calls: {} } }] },
  { choices: [{ index: 0, delta: { tool_calls: [] } }] },
  { choices: [{ index: 0, delta: { tool_calls: [{ index: 1.5, function: { name: "g" } }] } }] },
  { choices: [{ index: 0, delta: { annotations: [{ type: "file_citation", file_citation: {} }] } }] },
  { choices: [{ index: 0, delta: { annotations: [{ type: "url_citation", url_citation: { url: "u" } }] } }] },
  { choices: [{ index: 0, delta: { annotations: [] } }] },
  { choices: [], usage: "lots" },
  { choices: [], usage: { prompt_tokens: "9" } },
  { choices: [{ index: 0, delta: { content: "x" }, logprobs: { content: [{ token: "a" }] } }] },
  { choices: [{ index: 0, delta: { content: "x" }, logprobs: { content: null, refusal: null } }] },
  { choices: [{ index: 0, delta: [] }] },
  { choices: [{ index: 0, delta: { content: null, refusal: null, tool_calls: null } }] },
  { id: 5, choices: [] },
  { created: "now", choices: [] },
  { error: null },
  { error: "overloaded" },
  { error: { message: 5 } },
  { error: { message: "m", code: true } },
  { error: { message: "m", type: 5 } },
  { error: { message: "m" }, choices: [] },
  { error: { code: 500 } },
  { message: "bare", type: "server_error" },
];

/** Events around the output: failures, and what a stream may hold besides chunks. */
type NoiseEvent =
  | { t: "error-frame"; frame: Json }
  | { t: "openrouter"; message: string }
  | { t: "malformed"; text: string }
  | { t: "odd"; value: Json }
  | { t: "comment"; text: string }
  | { t: "field"; text: string }
  | { t: "done" }
  | { t: "blank" }
  | { t: "empty-data" };

const noiseEventArb: fc.Arbitrary<NoiseEvent> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant("error-frame" as const), frame: errorFrameArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("openrouter" as const), message: textArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("malformed" as const), text: fc.constantFrom(...MALFORMED) }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("odd" as const), value: fc.constantFrom(...ODD) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("comment" as const),
      text: fc.constantFrom(": ping", ":", ": OPENROUTER PROCESSING", ":data: {}"),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("field" as const),
      text: fc.constantFrom("event: ping", "id: 7", "retry: 1000", "foo: bar", "data"),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: "done" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "blank" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "empty-data" as const }) },
);

/** How one event is written: fields before its data, the `data:` spelling, line ends, blank lines. */
interface Framing {
  fields: string[];
  data: "data: " | "data:";
  eol: "\n" | "\r\n" | "\r";
  pretty: boolean;
  blank: number;
}

const framingArb: fc.Arbitrary<Framing> = fc.record({
  fields: fc.oneof(
    { weight: 6, arbitrary: fc.constant<string[]>([]) },
    {
      weight: 1,
      arbitrary: fc.subarray<string>(["event: message", "id: 1", "retry: 1000", "event: error", ": inline"]),
    },
  ),
  data: fc.constantFrom<Framing["data"]>("data: ", "data: ", "data:"),
  eol: fc.constantFrom<Framing["eol"]>("\n", "\n", "\n", "\r\n", "\r\n", "\r"),
  // Pretty-printed JSON: one data line per line, joined again by the parser.
  pretty: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  blank: fc.constantFrom(1, 1, 1, 2),
});

type Ending =
  | { kind: "end" }
  | { kind: "end-at"; at: number }
  | { kind: "destroy-at"; at: number }
  | { kind: "destroy-end" };

interface StreamSpec {
  meta: MetaKind;
  errorNull: boolean;
  role: boolean;
  output: OutputEvent[];
  finish:
    | { reason: string; delta: "{}" | "null" | "content" | "missing"; usage: number | undefined }
    | undefined;
  usage: number | undefined;
  done: boolean;
  noise: Array<{ at: number; event: NoiseEvent }>;
  framings: Framing[];
  bom: boolean;
  contentType: string;
  ending: Ending;
  /** Bytes that are not UTF-8 (or a NUL), put in at a byte offset. */
  junk: { at: number; hex: string } | undefined;
  pieces: number[];
}

const specArb: fc.Arbitrary<StreamSpec> = fc.record({
  meta: fc.constantFrom<MetaKind>("full", "full", "full", "nulls", "none", "zeroCreated", "idOnly"),
  errorNull: fc.oneof(
    { weight: 4, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  role: fc.boolean(),
  output: fc.array(outputEventArb, { maxLength: 8 }),
  finish: fc.option(
    fc.record({
      reason: fc.constantFrom(
        "stop",
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
        "error",
        "unknown",
        "",
      ),
      delta: fc.constantFrom<"{}" | "null" | "content" | "missing">("{}", "{}", "null", "content", "missing"),
      usage: fc.oneof(
        { weight: 3, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.nat({ max: USAGE.length - 1 }) },
      ),
    }),
    { nil: undefined, freq: 6 },
  ),
  usage: fc.option(fc.nat({ max: USAGE.length - 1 }), { nil: undefined, freq: 3 }),
  done: fc.boolean(),
  noise: fc.oneof(
    { weight: 1, arbitrary: fc.constant<StreamSpec["noise"]>([]) },
    { weight: 1, arbitrary: fc.array(fc.record({ at: fc.nat(), event: noiseEventArb }), { maxLength: 3 }) },
  ),
  framings: fc.array(framingArb, { minLength: 1, maxLength: 4 }),
  bom: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  contentType: fc.constantFrom(
    "text/event-stream",
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "text/plain",
  ),
  ending: fc.oneof(
    { weight: 12, arbitrary: fc.constant<Ending>({ kind: "end" }) },
    { weight: 1, arbitrary: fc.nat().map((at): Ending => ({ kind: "end-at", at })) },
    { weight: 1, arbitrary: fc.nat().map((at): Ending => ({ kind: "destroy-at", at })) },
    { weight: 1, arbitrary: fc.constant<Ending>({ kind: "destroy-end" }) },
  ),
  junk: fc.oneof(
    { weight: 15, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.record({ at: fc.nat(), hex: fc.constantFrom("ff", "c3", "e282", "f09f98", "80", "00") }),
    },
  ),
  pieces: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
});

/** An event: data that is JSON (a chunk, an error frame) or exact text, or lines written as they are. */
type Item = { json: unknown } | { text: string } | { raw: string };

function toolCallChunks(plan: Extract<OutputEvent, { t: "tools" }>): Json[][] {
  const queues = plan.calls.map((call, position) => {
    const index = call.index ?? position;
    const cuts = [...new Set(call.cuts.map((cut) => cut % (call.args.length + 1)))].sort((a, b) => a - b);
    const bounds = [0, ...cuts.filter((cut) => cut > 0 && cut < call.args.length), call.args.length];
    const pieces: string[] = [];
    for (let at = 0; at + 1 < bounds.length; at += 1)
      pieces.push(call.args.slice(bounds[at], bounds[at + 1]));
    if (pieces.length === 0) pieces.push("");
    return pieces.map((piece, at): Json => {
      if (at === 0) {
        return {
          index,
          ...(call.id === undefined ? {} : { id: call.id }),
          ...(call.type === undefined ? {} : { type: call.type }),
          function: { ...(call.name === undefined ? {} : { name: call.name }), arguments: piece },
        };
      }
      return {
        index,
        ...(call.repeatId && call.id !== undefined ? { id: call.id } : {}),
        function: { arguments: piece },
      };
    });
  });
  const deltas: Json[] = [];
  let step = 0;
  while (queues.some((queue) => queue.length > 0)) {
    const open = queues.filter((queue) => queue.length > 0);
    const queue = open[(plan.order[step] ?? 0) % open.length] as Json[];
    deltas.push(queue.shift() as Json);
    step += 1;
  }
  const chunks: Json[][] = [];
  for (let at = 0, group = 0; at < deltas.length; group += 1) {
    const size = plan.groups[group % plan.groups.length] as number;
    chunks.push(deltas.slice(at, at + size));
    at += size;
  }
  return chunks;
}

/** The body a drawn stream is written as. */
function render(spec: StreamSpec): string {
  const meta: Json = META[spec.meta];
  const chunk = (choices: unknown[], extra: Json = {}): Item => ({
    json: { ...meta, choices, ...extra, ...(spec.errorNull ? { error: null } : {}) },
  });
  const choice = (delta: unknown, more: Json = {}) => ({
    index: 0,
    ...(delta === undefined ? {} : { delta }),
    finish_reason: null,
    ...more,
  });
  const items: Item[] = [];
  if (spec.role) items.push(chunk([choice({ role: "assistant", content: "" })]));
  for (const event of spec.output) {
    switch (event.t) {
      case "role":
        items.push(
          chunk([
            choice({ role: "assistant", ...(event.content === undefined ? {} : { content: event.content }) }),
          ]),
        );
        break;
      case "content":
        items.push(chunk([choice({ content: event.text })]));
        break;
      case "refusal":
        items.push(chunk([choice({ refusal: event.text })]));
        break;
      case "both":
        items.push(chunk([choice({ content: event.content, refusal: event.refusal })]));
        break;
      case "tools":
        toolCallChunks(event).forEach((toolCalls, at) => {
          const content = at === 0 && event.content !== undefined ? { content: event.content } : {};
          items.push(chunk([choice({ ...content, tool_calls: toolCalls })]));
        });
        break;
      case "tool-delta":
        items.push(chunk([choice({ tool_calls: [event.delta] })]));
        break;
      case "logprobs": {
        const logprob = {
          token: event.text,
          logprob: -0.25,
          bytes: [104],
          top_logprobs: [{ token: "x", logprob: -1 }],
        };
        items.push(
          chunk([
            choice(event.refusal ? { refusal: event.text } : { content: event.text }, {
              logprobs: event.refusal ? { content: null, refusal: [logprob] } : { content: [logprob] },
            }),
          ]),
        );
        break;
      }
      case "annotations": {
        const annotations = Array.from({ length: event.count }, (_, at) => ({
          type: "url_citation",
          url_citation: {
            start_index: 0,
            end_index: at + 1,
            url: `https://example.com/${at}`,
            title: `t${at}`,
          },
        }));
        items.push(
          chunk([choice({ ...(event.text === undefined ? {} : { content: event.text }), annotations })]),
        );
        break;
      }
      case "empty":
        items.push(chunk([choice(event.delta === "null" ? null : event.delta === "{}" ? {} : undefined)]));
        break;
      case "second-choice":
        items.push(chunk([choice({}), { index: 1, delta: { content: event.text }, finish_reason: null }]));
        break;
    }
  }
  if (spec.finish) {
    const { reason, delta, usage } = spec.finish;
    const finishDelta =
      delta === "{}" ? {} : delta === "null" ? null : delta === "content" ? { content: "" } : undefined;
    items.push(
      chunk(
        [choice(finishDelta, { finish_reason: reason })],
        usage === undefined ? {} : { usage: USAGE[usage] },
      ),
    );
  }
  if (spec.usage !== undefined) items.push(chunk([], { usage: USAGE[spec.usage] }));
  if (spec.done) items.push({ text: "[DONE]" });
  // The noise, each at its drawn position among the events.
  for (const { at, event } of spec.noise) {
    const item: Item = (() => {
      switch (event.t) {
        case "error-frame":
          return { json: { error: event.frame } };
        case "openrouter":
          return {
            json: {
              ...meta,
              choices: [choice({ content: "" }, { finish_reason: "error" })],
              error: { code: "server_error", message: event.message },
            },
          };
        case "malformed":
          return { text: event.text };
        case "odd":
          return { json: { ...meta, ...event.value } };
        case "comment":
          return { raw: `${event.text}\n\n` };
        case "field":
          return { raw: `${event.text}\n\n` };
        case "done":
          return { text: "[DONE]" };
        case "blank":
          return { raw: "\n" };
        case "empty-data":
          return { raw: "data:\n\n" };
      }
    })();
    items.splice(at % (items.length + 1), 0, item);
  }
  let body = spec.bom ? "\uFEFF" : "";
  items.forEach((item, at) => {
    const framing = spec.framings[at % spec.framings.length] as Framing;
    if ("raw" in item) {
      body += item.raw.replaceAll("\n", framing.eol);
      return;
    }
    const data = "json" in item ? JSON.stringify(item.json, null, framing.pretty ? 1 : undefined) : item.text;
    for (const field of framing.fields) body += field + framing.eol;
    for (const line of data.split(/\r\n|\n|\r/)) body += framing.data + line + framing.eol;
    body += framing.eol.repeat(framing.blank);
  });
  return body;
}

/** A drawn stream as sent: the body, the piece sizes (cycled), where the body stops and how. */
interface WireCase {
  body: string;
  /** Bytes put into the body's UTF-8 at a byte offset (the body stays readable when printed). */
  junk: { at: number; hex: string } | undefined;
  pieces: number[];
  /** Bytes sent before the body ends (`end`) or the connection is destroyed (`destroy`). */
  stop: number;
  close: "end" | "destroy";
  contentType: string;
}

function wireCase(spec: StreamSpec): WireCase {
  const body = render(spec);
  const junk = spec.junk && { at: spec.junk.at % (Buffer.byteLength(body) + 1), hex: spec.junk.hex };
  const length = Buffer.byteLength(body) + (junk ? junk.hex.length / 2 : 0);
  const { ending } = spec;
  const stop = ending.kind === "end-at" || ending.kind === "destroy-at" ? ending.at % (length + 1) : length;
  const close = ending.kind === "destroy-at" || ending.kind === "destroy-end" ? "destroy" : "end";
  return { body, junk, pieces: spec.pieces, stop, close, contentType: spec.contentType };
}

/** The pieces a case is written in. */
function piecesOf(wire: WireCase): Buffer[] {
  let bytes = Buffer.from(wire.body);
  if (wire.junk) {
    const { at, hex } = wire.junk;
    bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(hex, "hex"), bytes.subarray(at)]);
  }
  bytes = bytes.subarray(0, wire.stop);
  const pieces: Buffer[] = [];
  for (let at = 0, next = 0; at < bytes.length; next += 1) {
    const size = wire.pieces[next % wire.pieces.length] as number;
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------------

describe("lean OpenAI streams against the AI SDK's doStream: generated SSE bodies", () => {
  let parity: StreamParity;
  const reached = new Map<string, number>();

  beforeAll(async () => {
    parity = await startStreamParity(KEY);
  });
  afterAll(async () => {
    await parity?.close();
  });

  const serve = (wire: WireCase) => {
    const pieces = piecesOf(wire);
    parity.answer(async ({ response, signal }) => {
      response.writeHead(200, { "content-type": wire.contentType });
      for (const piece of pieces) {
        if (signal.aborted) return;
        response.write(piece);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (wire.close === "destroy") response.socket?.destroy();
      else response.end();
    });
  };

  /** Both paths' outcomes for one case, the parts that are timing rather than behaviour set aside. */
  async function both(wire: WireCase): Promise<{ viaSdk: StreamOutcome; viaLean: StreamOutcome }> {
    serve(wire);
    const { bodies } = parity;
    bodies.length = 0;
    const viaSdk = await streamOutcome(parity.sdk, callFor());
    const before = parity.fetches();
    const viaLean = await streamOutcome(parity.lean, callFor());
    // The lean path makes its call without fetch, and sends the same request.
    expect(parity.fetches()).toBe(before);
    expect(bodies[1]).toBe(bodies[0]);
    for (const [path, result] of [
      ["sdk", viaSdk],
      ["lean", viaLean],
    ] as const) {
      expect("thrown" in result ? result.thrown : "", `the ${path} path threw, or hung`).toBe("");
    }
    // A chunk is watched when it holds "data:": when no piece sent holds it whole, whether one
    // the client reads does depends on how the pieces coalesced on the way.
    if (!piecesOf(wire).some((piece) => piece.includes("data:"))) {
      if ("watched" in viaSdk) viaSdk.watched = undefined;
      if ("watched" in viaLean) viaLean.watched = undefined;
    }
    if ("error" in viaSdk && "error" in viaLean && /^Expected '/.test(viaSdk.error.message)) {
      // A chunk the tool-call tracker refuses (InvalidResponseDataError). ADR 0031: which of its
      // non-output parts the SDK's web stream still hands over before erroring is timing, so only
      // the output beats must agree. Known difference 1 (top of this file): a refused chunk after
      // the first also hands its text and tool-call starts to the sink on the SDK path; tolerated
      // as the lean path's deltas and heartbeats being a prefix of the SDK's.
      if (STRICT) {
        expect(viaLean.heartbeats.filter(Boolean)).toEqual(viaSdk.heartbeats.filter(Boolean));
      } else {
        expect(viaSdk.deltas.slice(0, viaLean.deltas.length)).toEqual(viaLean.deltas);
        expect(viaSdk.heartbeats.slice(0, viaLean.heartbeats.length)).toEqual(viaLean.heartbeats);
        viaLean.deltas = viaSdk.deltas;
      }
      viaLean.heartbeats = viaSdk.heartbeats;
    }
    return { viaSdk, viaLean };
  }

  it(
    "any stream, in any pieces, cut anywhere: the same completion or error, deltas and output heartbeats",
    async () => {
      await fc.assert(
        fc.asyncProperty(specArb.map(wireCase), async (wire) => {
          const { viaSdk, viaLean } = await both(wire);
          expect(viaLean).toEqual(viaSdk);
          const kind =
            "completion" in viaSdk ? "completion" : "error" in viaSdk ? viaSdk.error.reason : "thrown";
          reached.set(kind, (reached.get(kind) ?? 0) + 1);
        }),
        fuzzParameters(BASE_RUNS),
      );
      if (REPLAYING_ONE_CASE) return;
      // The generators reach answers and each kind of failure, not only one of them.
      expect([...reached.keys()], JSON.stringify([...reached])).toEqual(
        expect.arrayContaining(["completion", "network_error", "invalid_response", "server_error"]),
      );
    },
    fuzzTimeoutMs(30_000),
  );
});
