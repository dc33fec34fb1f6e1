import { describe, expect, it } from "vitest";
import { chatRequestSchema, openAIChatBodySchema } from "./chat-request.js";
import { jobDataSchema, storedJobDataSchema } from "./job.js";

/** Requests as clients send them, with what the door's parse drops or normalises. */
const requests: unknown[] = [
  { messages: [{ role: "user", content: "hi" }] },
  {
    messages: [
      { role: "system", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "text", text: "what is this?" },
          { type: "image_url", image_url: { url: "https://example.com/a.png", detail: "low" } },
        ],
      },
      {
        role: "assistant",
        content: [{ type: "refusal", refusal: "no" }],
        tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
        refusal: null,
      },
      { role: "tool", tool_call_id: "c1", content: "42" },
    ],
    max_tokens: 64,
    temperature: null,
    tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
    tool_choice: { type: "function", function: { name: "f" } },
    response_format: { type: "json_object" },
    stop: ["\n"],
    user: "u-1",
  },
];

function storedData(request: unknown) {
  return jobDataSchema.parse({
    v: 1,
    tenant: "default",
    request: chatRequestSchema.parse(request),
    route: "default",
    chain: [{ model: "m", timeout_ms: 1000, max_retries: 0 }],
    policy: { on_content_filter: "fallback", on_bad_request: "fail" },
    priority: 5,
    created_at: 1,
    deadline_at: 2,
  });
}

describe("job data read back from Redis", () => {
  it("the door's request parse changes nothing when run again on its own output (why reads skip it)", () => {
    for (const request of requests) {
      const once = chatRequestSchema.parse(request);
      expect(chatRequestSchema.parse(structuredClone(once))).toEqual(once);
      // What POST /v1/jobs and a batch line store: OpenAI's body, parsed.
      const door = openAIChatBodySchema.parse({
        ...(request as object),
        modalities: ["text"],
        metadata: { a: "b" },
      });
      expect(chatRequestSchema.parse(structuredClone(door))).toEqual(door);
      expect(openAIChatBodySchema.parse(structuredClone(door))).toEqual(door);
    }
  });

  it("reads stored job data as the full parse does", () => {
    for (const request of requests) {
      const stored = JSON.parse(JSON.stringify(storedData(request)));
      expect(storedJobDataSchema.parse(stored)).toEqual(jobDataSchema.parse(structuredClone(stored)));
    }
  });

  it("still refuses data without the envelope or without messages", () => {
    const stored = JSON.parse(JSON.stringify(storedData(requests[0])));
    expect(storedJobDataSchema.safeParse({ tenant: "default", request: { messages: "hi" } }).success).toBe(
      false,
    );
    expect(storedJobDataSchema.safeParse({ ...stored, request: { messages: [] } }).success).toBe(false);
    expect(storedJobDataSchema.safeParse({ ...stored, request: null }).success).toBe(false);
    expect(storedJobDataSchema.safeParse({ ...stored, chain: [] }).success).toBe(false);
    const failure = storedJobDataSchema.safeParse({ ...stored, request: "hi" });
    expect(failure.success).toBe(false);
    expect(failure.error?.issues[0]?.path).toEqual(["request"]);
  });
});
