/**
 * Bodies for POST /v1/jobs, POST /v1/batches and the batch input lines: built valid, then
 * sometimes broken a little (mutations.ts), so most reach the handler and what lies behind it;
 * and raw texts (broken JSON, deep nesting, prototype keys, oversize) that attack the parser.
 */
import fc from "fast-check";
import { mutated } from "./mutations.js";

/**
 * The deepest nesting sent where a schema lets any JSON through: well past the API's limit of 100
 * levels (a 400) and past the ~4,000 where JSON.stringify would overflow the stack (once a 500).
 */
export const DEEPEST_GENERATED_NESTING = 6_000;

/** Field names of job bodies and chat requests: where mutations are worth aiming. */
const JOB_KEYS = [
  "request",
  "route",
  "models",
  "webhook",
  "url",
  "metadata",
  "priority",
  "max_cost_usd",
  "user",
  "deadline_ms",
  "model",
  "messages",
  "role",
  "content",
  "max_tokens",
  "stream",
  "tools",
  "response_format",
  "type",
  "image_url",
];

const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
);

const contentPart = fc.oneof(
  fc.record({ type: fc.constant("text"), text }),
  fc.record({
    type: fc.constant("image_url"),
    image_url: fc.record(
      {
        url: fc.constantFrom("https://example.com/cat.png", "data:image/png;base64,AAAA"),
        detail: fc.constantFrom("auto", "low", "high"),
      },
      { requiredKeys: ["url"] },
    ),
  }),
);

const message = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      role: fc.constant("user"),
      content: fc.oneof(text, fc.array(contentPart, { minLength: 1, maxLength: 2 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ role: fc.constantFrom("system", "developer", "assistant"), content: text }),
  },
);

const tool = fc.record({
  type: fc.constant("function"),
  function: fc.record({
    name: fc.constantFrom("lookup", "get_weather"),
    parameters: fc.object({ maxDepth: 2 }),
  }),
});

function chatRequest(models: readonly string[]) {
  return fc.record(
    {
      model: fc.constantFrom(...models),
      messages: fc.array(message, { minLength: 1, maxLength: 3 }),
      max_tokens: fc.integer({ min: 1, max: 4096 }),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      top_p: fc.double({ min: 0, max: 1, noNaN: true }),
      stop: fc.oneof(text, fc.array(text, { maxLength: 4 })),
      seed: fc.integer(),
      stream: fc.boolean(),
      tools: fc.array(tool, { maxLength: 2 }),
      response_format: fc.constantFrom({ type: "json_object" }, { type: "text" }),
    },
    { requiredKeys: ["messages"] },
  );
}

/** The job body of the contract: valid, then sometimes mutated anywhere. */
export function jobBodyArbitrary(webhookUrls: readonly string[]): fc.Arbitrary<unknown> {
  const valid = fc.record(
    {
      request: chatRequest(["fast", "flaky", "default", "strict"]),
      route: fc.constantFrom("default", "strict"),
      models: fc.array(fc.constantFrom("fast", "flaky"), { minLength: 1, maxLength: 3 }),
      webhook: fc.record({ url: fc.constantFrom(...webhookUrls) }),
      metadata: fc.dictionary(fc.string({ maxLength: 64 }), fc.string({ maxLength: 64 }), { maxKeys: 16 }),
      priority: fc.integer({ min: 1, max: 10 }),
      max_cost_usd: fc.double({ min: 0.0001, max: 1, noNaN: true }),
      user: fc.string({ minLength: 1, maxLength: 256 }),
      deadline_ms: fc.integer({ min: 1, max: 7 * 24 * 3600 * 1000 }),
    },
    { requiredKeys: ["request"] },
  );
  return mutated(valid, JOB_KEYS);
}

/** One line of a batch input file: mostly valid (so batches get created), sometimes not. */
export const batchLineArbitrary: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 12,
    arbitrary: mutated(
      fc.record({
        custom_id: fc.stringMatching(/^[a-z0-9-]{1,16}$/),
        method: fc.constant("POST"),
        url: fc.constant("/v1/chat/completions"),
        // Batch lines cannot stream (a 400 for the whole file): stream is left to the mutations.
        body: chatRequest(["fast", "default"]).map(({ stream: _stream, ...request }) => ({
          model: "fast",
          ...request,
        })),
      }),
      ["custom_id", "method", "url", "body", ...JOB_KEYS],
      { intactWeight: 8, mutatedWeight: 1 },
    ).map((line) => JSON.stringify(line)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  {
    // Batch validation refuses lines nested past MAX_JSON_DEPTH (100): both sides of that line.
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 20_000 })
      .map(
        (depth) =>
          `{"custom_id": "deep-${depth}", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "fast", "messages": [{"role": "user", "content": "deep"}], "tools": [{"type": "function", "function": {"name": "deep", "parameters": {"p": ${nestedText(depth)}}}}]}}`,
      ),
  },
);

/** `{"a":{"a":...1...}}`, `depth` levels, as text: JSON.stringify would overflow on deep values. */
function nestedText(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

export const batchFileArbitrary: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(batchLineArbitrary, { minLength: 0, maxLength: 4 }),
    fc.constantFrom("\n", "", "\n\n", "\r\n"),
  )
  .map(([lines, ending]) => lines.join("\n") + ending);

/** The POST /v1/batches body; `input_file_id` is chosen (and filled in) when the request is sent. */
export const batchBodyArbitrary: fc.Arbitrary<unknown> = mutated(
  fc.record(
    {
      endpoint: fc.constant("/v1/chat/completions"),
      completion_window: fc.constant("24h"),
      metadata: fc.dictionary(fc.string({ maxLength: 64 }), fc.string({ maxLength: 512 }), { maxKeys: 16 }),
      output_expires_after: fc.record({
        anchor: fc.constant("created_at"),
        seconds: fc.integer({ min: 3600, max: 30 * 24 * 3600 }),
      }),
      priority: fc.integer({ min: 1, max: 10 }),
    },
    { requiredKeys: ["endpoint", "completion_window"] },
  ),
  [
    "endpoint",
    "completion_window",
    "metadata",
    "output_expires_after",
    "anchor",
    "seconds",
    "priority",
    "input_file_id",
  ],
);

/** Texts sent as a JSON body that are not a well-formed small JSON document. */
export const hostileJsonTextArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "",
    "{",
    "null",
    "[]",
    '"request"',
    "{}",
    '{"request": {"messages": [{"role": "user", "content": "x"}]}, "request": 1}',
    '{"__proto__": {"admin": true}, "request": {"messages": [{"role": "user", "content": "x"}]}}',
    '{"constructor": {"prototype": {"polluted": 1}}, "request": {"messages": [{"role":"user","content":"x"}]}}',
    "\ufeff{}",
    '{"request": 1e999}',
    '{"a": "\\ud800"}',
  ),
  fc.integer({ min: 1, max: 20_000 }).map((depth) => `${"[".repeat(depth)}${"]".repeat(depth)}`),
  fc.integer({ min: 1, max: 20_000 }).map((depth) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`),
  // Deep nesting where the schema lets anything through (tool parameters), so it reaches the
  // body depth limit, and below it the handler and the queue (see DEEPEST_GENERATED_NESTING).
  fc
    .integer({ min: 1, max: DEEPEST_GENERATED_NESTING })
    .map(
      (depth) =>
        `{"request": {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "deep", "parameters": {"p": ${nestedText(depth)}}}}]}}`,
    ),
  fc.constant(`{"request": {"messages": [{"role": "user", "content": "${"x".repeat(1024 * 1024)}"}]}}`),
  fc.string({ unit: "binary", maxLength: 60 }),
);
