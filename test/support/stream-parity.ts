import type { ChatRequest, ModelConfig, ProviderConfig } from "@cascade/shared";
import { createProviderHttp } from "../../packages/engine/src/providers/http.js";
import { createOpenAIAdapter } from "../../packages/engine/src/providers/openai.js";
import { ProviderError } from "../../packages/engine/src/providers/provider-error.js";
import {
  unwatchResponse,
  watchChunks,
  watchedFetch,
} from "../../packages/engine/src/providers/response-watch.js";
import type {
  Completion,
  ProviderAdapter,
  ProviderCall,
  StreamDelta,
} from "../../packages/engine/src/providers/types.js";
import { type FakeHttpServer, type FakeRequestContext, startFakeHttpServer } from "./fake-upstream-common.js";

/**
 * The harness of the lean stream client's parity tests (ADR 0031): one real local server, and the
 * `openai` adapter twice over it, on the AI SDK's `doStream` over fetch and on the lean client
 * (given the provider's dispatcher); what a streamed call came to, in comparable form.
 */

export interface StreamParity {
  sdk: ProviderAdapter;
  lean: ProviderAdapter;
  /** The request bodies the server received, in order. */
  bodies: string[];
  /** How many calls went through fetch (the lean client makes none). */
  fetches(): number;
  /** How the server answers the next requests. */
  answer(handler: (context: FakeRequestContext) => void | Promise<void>): void;
  close(): Promise<void>;
}

export async function startStreamParity(key: string): Promise<StreamParity> {
  let handler: (context: FakeRequestContext) => void | Promise<void> = () => {};
  const bodies: string[] = [];
  let fetches = 0;
  const server: FakeHttpServer = await startFakeHttpServer(async (context) => {
    bodies.push(context.rawBody);
    await handler(context);
  });
  const provider = { type: "openai", base_url: `${server.origin}/v1` } as ProviderConfig;
  const http = createProviderHttp({ connections: 8 });
  const watched = watchedFetch(http.fetch);
  const fetch: typeof globalThis.fetch = (input, init) => {
    fetches += 1;
    return watched(input, init);
  };
  const headers = { "X-Title": "parity" };
  return {
    sdk: createOpenAIAdapter("p", provider, key, fetch, headers),
    lean: createOpenAIAdapter("p", provider, key, fetch, headers, { dispatcher: http.dispatcher }),
    bodies,
    fetches: () => fetches,
    answer: (next) => {
      handler = next;
    },
    close: () => server.close(),
  };
}

/** A streamed call of model "m" (the request's fields on top of a short question). */
export function streamCall(request: Partial<ChatRequest> = {}, signal?: AbortSignal): ProviderCall {
  return {
    request: {
      messages: [{ role: "user", content: "What is 2+2?" }],
      max_tokens: 50,
      stream: true,
      ...request,
    } as ChatRequest,
    modelId: "m",
    model: { provider: "p", name: "m" } as ModelConfig,
    upstreamName: "m",
    signal: signal ?? AbortSignal.timeout(10_000),
  };
}

/** Generated tool-call ids differ from run to run: their length is what both paths share. */
const maskId = (id: string) => (/^call_/.test(id) ? id : `generated:${id.length}`);

function masked(deltas: StreamDelta[]) {
  return deltas.map((delta) => ({
    ...delta,
    ...(delta.toolCalls
      ? { toolCalls: delta.toolCalls.map((call) => (call.id ? { ...call, id: maskId(call.id) } : call)) }
      : {}),
  }));
}

export interface Failure {
  reason: string;
  message: string;
  httpStatus: number | undefined;
  retryAfterMs: number | undefined;
  providerSpecific: unknown;
  usage: unknown;
}

export type StreamOutcome =
  | { completion: Completion; deltas: StreamDelta[]; heartbeats: boolean[]; watched: boolean | undefined }
  | { error: Failure; deltas: StreamDelta[]; heartbeats: boolean[] }
  | { thrown: string };

/** What a streamed call came to: its answer or error, every delta, the heartbeats, the chunks watched. */
export async function streamOutcome(adapter: ProviderAdapter, call: ProviderCall): Promise<StreamOutcome> {
  const deltas: StreamDelta[] = [];
  const heartbeats: boolean[] = [];
  let chunks = 0;
  watchChunks(call.signal, () => {
    chunks += 1;
  });
  const sink = {
    delta: (part: StreamDelta) => void deltas.push(structuredClone(part)),
    heartbeat: (output: boolean) => void heartbeats.push(output),
  };
  try {
    const completion = await adapter.stream(call, sink);
    const toolCalls = completion.toolCalls.map((toolCall) => ({ ...toolCall, id: maskId(toolCall.id) }));
    return {
      completion: { ...completion, toolCalls },
      deltas: masked(deltas),
      heartbeats,
      watched: chunks > 0,
    };
  } catch (error) {
    if (!(error instanceof ProviderError)) return { thrown: String(error) };
    return {
      error: {
        reason: error.reason,
        // A chunk the schema refuses: zod's list of issues is not reproduced, the rest is.
        message: error.message.replace(/Error message: [\s\S]*$/, "Error message: …"),
        httpStatus: error.httpStatus,
        retryAfterMs: error.retryAfterMs,
        providerSpecific: error.providerSpecific,
        usage: error.usage,
      },
      deltas: masked(deltas),
      heartbeats,
    };
  } finally {
    unwatchResponse(call.signal);
  }
}
