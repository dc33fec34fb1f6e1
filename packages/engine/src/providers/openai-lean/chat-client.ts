import { InvalidResponseDataError, type LanguageModelV3CallOptions } from "@ai-sdk/provider";
import type { Dispatcher } from "undici";
import type { GenerateCall } from "../ai-sdk/adapter.js";
import { restoreUnsentFields } from "../openai-names.js";
import type { ProviderError } from "../provider-error.js";
import { firstByteWatcher } from "../response-watch.js";
import type { Completion, SentSink } from "../types.js";
import { completionFromBody, isChatCompletionBody } from "./chat-response.js";
import { failedResponseError, invalidJsonError, transportError } from "./failures.js";
import { bodyText, parseJsonSecurely } from "./json-body.js";
import { postJson, type RawAnswer } from "./post-json.js";
import { type ChatModelInternals, type LeanTarget, leanTargets } from "./target.js";

/** A 2xx or failed answer as the Completion or error the SDK path makes of it. */
function readAnswer(answer: RawAnswer, url: string, requestJson: string): Completion {
  const text = bodyText(answer.body);
  // The SDK's errors carry the request body as an object: parsed again here, on failures only.
  const requestBody = () => JSON.parse(requestJson) as unknown;
  if (answer.status < 200 || answer.status > 299) throw failedResponseError(answer, text, url, requestBody());
  const parsed = parseJsonSecurely(text);
  if (!parsed.ok) throw invalidJsonError(answer, text, url, requestBody(), parsed.error);
  const body = parsed.value;
  if (!isChatCompletionBody(body)) {
    const cause = new TypeError("the body is not a chat.completion");
    throw invalidJsonError(answer, text, url, requestBody(), cause);
  }
  if (body.choices.length === 0) {
    throw new InvalidResponseDataError({ data: body, message: "Response did not contain any choices." });
  }
  return completionFromBody(body);
}

/** The SDK's request body for these options, as the JSON it would send. */
async function requestJsonOf(
  model: ChatModelInternals,
  options: LanguageModelV3CallOptions,
): Promise<string> {
  const { args } = await model.getArgs(options);
  restoreUnsentFields(options.abortSignal, args);
  return JSON.stringify(args);
}

/**
 * One call: only the request's JSON is kept while it is in flight (undici holds it until the
 * answer anyway), not the call options or the body's object graph.
 */
async function send(
  dispatcher: Dispatcher,
  target: LeanTarget,
  pendingJson: Promise<string>,
  signal: AbortSignal,
  classify: (error: unknown) => ProviderError,
  sentTo: SentSink | undefined,
): Promise<Completion> {
  let requestJson: string | undefined;
  try {
    requestJson = await pendingJson;
    let answer: RawAnswer;
    try {
      answer = await postJson(
        dispatcher,
        target,
        target.headers,
        requestJson,
        signal,
        firstByteWatcher(signal),
        sentTo,
      );
    } catch (error) {
      throw transportError(error, target.url, JSON.parse(requestJson));
    }
    return readAnswer(answer, target.url, requestJson);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw classify(error);
  }
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
  const targetOf = leanTargets();

  return (model, options, call) => {
    const target = targetOf(model);
    if (!target) return sdkGenerate(model, options, call);
    const pendingJson = requestJsonOf(model as unknown as ChatModelInternals, options);
    return send(dispatcher, target, pendingJson, call.signal, classify, call.sentTo);
  };
}
