import {
  InvalidResponseDataError,
  type LanguageModelV3,
  type LanguageModelV3CallOptions,
} from "@ai-sdk/provider";
import type { Dispatcher } from "undici";
import type { GenerateCall } from "../ai-sdk/adapter.js";
import type { ProviderError } from "../provider-error.js";
import { firstByteWatcher } from "../response-watch.js";
import type { Completion } from "../types.js";
import { completionFromBody, isChatCompletionBody } from "./chat-response.js";
import { failedResponseError, invalidJsonError, transportError } from "./failures.js";
import { bodyText, parseJsonSecurely } from "./json-body.js";
import { type PostTarget, postJson, type RawAnswer } from "./post-json.js";

/**
 * The parts of @ai-sdk/openai's chat model (`OpenAIChatLanguageModel`, 3.0.x) the lean client
 * reuses: `getArgs` builds the request body from the call options (messages, tools, response
 * formats, the per-model rules for reasoning models), so both paths send the same body, and
 * `config` holds the URL and headers the SDK would use. Not in the SDK's types; checked at run
 * time, and a model without them is called through `doGenerate`.
 */
interface ChatModelInternals {
  modelId: string;
  getArgs(options: LanguageModelV3CallOptions): Promise<{ args: Record<string, unknown> }>;
  config: {
    url(options: { path: string; modelId: string }): string;
    headers(): Record<string, string | undefined>;
  };
}

function internalsOf(model: LanguageModelV3): ChatModelInternals | undefined {
  const candidate = model as unknown as Partial<ChatModelInternals>;
  if (
    typeof candidate.getArgs !== "function" ||
    typeof candidate.config?.url !== "function" ||
    typeof candidate.config?.headers !== "function"
  ) {
    return undefined;
  }
  return candidate as ChatModelInternals;
}

interface LeanTarget extends PostTarget {
  url: string;
  headers: Record<string, string>;
}

/**
 * Where and with which headers a model's calls go: the SDK's URL and headers (key, extra
 * headers, its user-agent), plus what its `postJsonToApi` adds (content-type, the runtime in the
 * user-agent). Undefined when fetch would refuse the URL (credentials in it): the SDK path then.
 */
function leanTarget(model: ChatModelInternals): LeanTarget | undefined {
  const url = model.config.url({ path: "/chat/completions", modelId: model.modelId });
  const parsed = new URL(url);
  if (parsed.username || parsed.password) return undefined;
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const [name, value] of Object.entries(model.config.headers())) {
    if (value !== undefined && value !== null) headers[name.toLowerCase()] = value;
  }
  headers["user-agent"] = [headers["user-agent"], `runtime/node.js/${process.version}`]
    .filter(Boolean)
    .join(" ");
  return { url, origin: parsed.origin, path: `${parsed.pathname}${parsed.search}`, headers };
}

/** A 2xx or failed answer as the Completion or error the SDK path makes of it. */
function readAnswer(answer: RawAnswer, url: string, requestBody: unknown): Completion {
  const text = bodyText(answer.body);
  if (answer.status < 200 || answer.status > 299) throw failedResponseError(answer, text, url, requestBody);
  const parsed = parseJsonSecurely(text);
  if (!parsed.ok) throw invalidJsonError(answer, text, url, requestBody, parsed.error);
  const body = parsed.value;
  if (!isChatCompletionBody(body)) {
    throw invalidJsonError(
      answer,
      text,
      url,
      requestBody,
      new TypeError("the body is not a chat.completion"),
    );
  }
  if (body.choices.length === 0) {
    throw new InvalidResponseDataError({ data: body, message: "Response did not contain any choices." });
  }
  return completionFromBody(body);
}

/**
 * Non-streamed chat completions over `dispatcher` (the provider's Agent): the SDK's request body,
 * one `dispatch` whose answer is collected into one Buffer, one `JSON.parse`, a hand-written check
 * of the SDK's response schema, no fetch, web streams or zod on the success path. Failures are
 * built as the SDK builds them and classified by the provider's classifier; an abort rethrows the
 * signal's reason. See ADR 0022.
 */
export function createLeanChatGenerate(
  dispatcher: Dispatcher,
  classify: (error: unknown) => ProviderError,
  sdkGenerate: GenerateCall,
): GenerateCall {
  const targets = new WeakMap<LanguageModelV3, LeanTarget | null>();
  const targetOf = (model: LanguageModelV3) => {
    let target = targets.get(model);
    if (target === undefined) {
      const internals = internalsOf(model);
      target = (internals && leanTarget(internals)) ?? null;
      targets.set(model, target);
    }
    return target;
  };

  return async (model, options, call) => {
    const target = targetOf(model);
    if (!target) return sdkGenerate(model, options, call);
    const { signal } = call;
    let requestBody: Record<string, unknown> | undefined;
    try {
      requestBody = (await (model as unknown as ChatModelInternals).getArgs(options)).args;
      let answer: RawAnswer;
      try {
        answer = await postJson(
          dispatcher,
          target,
          target.headers,
          JSON.stringify(requestBody),
          signal,
          firstByteWatcher(signal),
        );
      } catch (error) {
        throw transportError(error, target.url, requestBody);
      }
      return readAnswer(answer, target.url, requestBody);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw classify(error);
    }
  };
}
