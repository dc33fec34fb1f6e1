/**
 * The zero-latency OpenAI-compatible upstream every side of the gateway bench calls: a raw
 * node:http server answering POST /v1/chat/completions with a pre-serialised `chat.completion`
 * (with usage) or, when the body asks for `"stream":true`, a pre-serialised SSE stream of
 * `chat.completion.chunk` events (role, 4 content chunks, finish_reason "stop", the usage chunk when
 * `"include_usage":true`, then `data: [DONE]`). The body is never parsed: the three clients
 * (autocannon's fixed body, Portkey and Cascade's AI SDK client) all serialise with
 * `JSON.stringify`, so a substring check is exact for them. GET /stats answers the counts.
 *
 * Run as its own process (`node --import tsx bench/gateway/fake-upstream.ts [port] [delay-ms]`) so
 * that it does not share an event loop with the load generator; it prints `listening <port>` when
 * ready. With a delay (the I/O bench's slow upstream), every answer is sent that many ms after the
 * request's body ended (one timer per request).
 */
import http from "node:http";

export const FAKE_MODEL = "fake-upstream-1";
export const FAKE_CONTENT_PIECES = ["Hi", " from", " the fake", " upstream."] as const;
export const FAKE_CONTENT = FAKE_CONTENT_PIECES.join("");
export const FAKE_USAGE = { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 } as const;

const CREATED = 1_767_225_600;

function completionBody(): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: "chatcmpl-fake",
      object: "chat.completion",
      created: CREATED,
      model: FAKE_MODEL,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: FAKE_CONTENT, refusal: null },
          logprobs: null,
          finish_reason: "stop",
        },
      ],
      usage: FAKE_USAGE,
      system_fingerprint: "fp_fake",
    }),
  );
}

function streamBody(includeUsage: boolean): Buffer {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({
      id: "chatcmpl-fake",
      object: "chat.completion.chunk",
      created: CREATED,
      model: FAKE_MODEL,
      system_fingerprint: "fp_fake",
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    })}\n\n`;
  const events = [
    chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]),
    ...FAKE_CONTENT_PIECES.map((content) =>
      chunk([{ index: 0, delta: { content }, logprobs: null, finish_reason: null }]),
    ),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]),
    ...(includeUsage ? [chunk([], { usage: FAKE_USAGE })] : []),
    "data: [DONE]\n\n",
  ];
  return Buffer.from(events.join(""));
}

const COMPLETION = completionBody();
const STREAM = streamBody(false);
const STREAM_WITH_USAGE = streamBody(true);
const NOT_FOUND = Buffer.from(
  JSON.stringify({ error: { message: "not found", type: "invalid_request_error", code: null } }),
);

export interface FakeCounts {
  completions: number;
  streams: number;
  other: number;
}

export function createFakeUpstream(options: { delayMs?: number } = {}): {
  server: http.Server;
  counts: FakeCounts;
} {
  const delayMs = options.delayMs ?? 0;
  const counts: FakeCounts = { completions: 0, streams: 0, other: 0 };
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/stats") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(counts));
      return;
    }
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      counts.other += 1;
      req.resume();
      res.writeHead(404, { "content-type": "application/json", "content-length": NOT_FOUND.length });
      res.end(NOT_FOUND);
      return;
    }
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    const answer = () => {
      const body = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      if (body.includes('"stream":true')) {
        counts.streams += 1;
        const payload = body.includes('"include_usage":true') ? STREAM_WITH_USAGE : STREAM;
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-cache",
        });
        res.end(payload);
      } else {
        counts.completions += 1;
        res.writeHead(200, { "content-type": "application/json", "content-length": COMPLETION.length });
        res.end(COMPLETION);
      }
    };
    req.on("end", () => {
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  // Longer than any client's idle keep-alive, so the server never closes a pooled socket first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return { server, counts };
}

if (process.argv[1]?.endsWith("fake-upstream.ts")) {
  const port = Number(process.argv[2] ?? 0);
  const { server } = createFakeUpstream({ delayMs: Number(process.argv[3] ?? 0) });
  server.listen(port, "127.0.0.1", () => {
    const address = server.address() as { port: number };
    process.stdout.write(`listening ${address.port}\n`);
  });
  process.on("SIGTERM", () => process.exit(0));
}
