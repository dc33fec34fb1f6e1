import type { ChatMessage } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import type { HostResolver } from "../outbound/url-guard.js";
import { withImageUrlCheck } from "./image-url-check.js";
import { ProviderError } from "./provider-error.js";
import type { Completion, ProviderAdapter, ProviderCall } from "./types.js";

const completion: Completion = {
  content: "a cat",
  toolCalls: [],
  finishReason: "stop",
  usage: { promptTokens: 1, completionTokens: 1 },
};

/** An adapter that answers every call and counts them. */
function countingAdapter(): ProviderAdapter & { calls: number } {
  const adapter = {
    providerId: "up",
    type: "openai",
    calls: 0,
    defaultMaxTokens: 4096,
    async generate() {
      adapter.calls += 1;
      return completion;
    },
    async stream() {
      adapter.calls += 1;
      return completion;
    },
  };
  return adapter;
}

const callWith = (messages: ChatMessage[]): ProviderCall => ({
  request: { messages },
  modelId: "seer",
  model: { provider: "up", name: "up-seer" } as ProviderCall["model"],
  upstreamName: "up-seer",
  signal: new AbortController().signal,
  sentTo: undefined,
});

const image = (url: string): ChatMessage[] => [
  { role: "user", content: [{ type: "image_url", image_url: { url } }] },
];

describe("withImageUrlCheck", () => {
  const lookups: string[] = [];
  const resolve: HostResolver = async (hostname) => {
    lookups.push(hostname);
    return [{ address: hostname === "intranet.example" ? "10.0.0.9" : "93.184.215.14", family: 4 }];
  };

  it("fails a call whose image host resolves to a private address as bad_request naming the field, before the call", async () => {
    const adapter = countingAdapter();
    const checked = withImageUrlCheck(adapter, { resolve });
    const error = await checked
      .generate(callWith(image("https://intranet.example/x.png")))
      .catch((caught) => caught);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({
      reason: "bad_request",
      providerSpecific: false,
      param: "messages[0].content[0].image_url.url",
    });
    expect(error.message).toMatch(/host "intranet\.example" resolves to a private address/);
    await expect(
      checked.stream(callWith(image("http://127.0.0.1/x.png")), { delta() {} }),
    ).rejects.toMatchObject({
      reason: "bad_request",
    });
    expect(adapter.calls).toBe(0);
    expect(checked.defaultMaxTokens).toBe(4096);
  });

  it("calls through for public hosts, resolving a request's names once for its retries", async () => {
    const adapter = countingAdapter();
    const checked = withImageUrlCheck(adapter, { resolve });
    lookups.length = 0;
    const call = callWith(image("https://cdn.example.com/x.png"));
    await expect(checked.generate(call)).resolves.toBe(completion);
    await expect(checked.stream(call, { delta() {} })).resolves.toBe(completion);
    expect(adapter.calls).toBe(2);
    expect(lookups).toEqual(["cdn.example.com"]);
  });

  it("resolves nothing for a request without image URLs", async () => {
    const adapter = countingAdapter();
    const checked = withImageUrlCheck(adapter, { resolve });
    lookups.length = 0;
    await checked.generate(callWith([{ role: "user", content: "Hi" }]));
    await checked.generate(callWith(image("data:image/png;base64,AAAA")));
    expect(lookups).toEqual([]);
    expect(adapter.calls).toBe(2);
  });
});
