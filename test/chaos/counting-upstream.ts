/**
 * A lean OpenAI-compatible upstream for chaos runs (thousands of calls): answers each chat
 * completion with `Echo: <last user message>`, counts calls per message (so a job called twice
 * shows up), and records, per call, when it arrived, whether it was answered and whether the client
 * went away first (an aborted call). Built on the fakes' HTTP server (test/support).
 */
import {
  echoLastUser,
  hang,
  parseJson,
  sendJson,
  sleep,
  startFakeHttpServer,
} from "../support/fake-upstream-common.js";

/** One call as the upstream saw it. */
export interface UpstreamCall {
  /** The upstream model name asked for. */
  model: string;
  /** The last user message (the jobs' unique key). */
  message: string;
  receivedAt: number;
  /** Set when the answer was sent. */
  answeredAt?: number;
  /** Set when the client closed the request before the answer. */
  abortedAt?: number;
}

/**
 * What the upstream does with one call: answer after `delayMs` (with OpenAI's 500 error body when
 * `status` is 500), or hang until the client aborts.
 */
export type UpstreamPlan = { delayMs: number; status?: 200 | 500 } | "hang";

export interface CountingUpstream {
  /** Base URL for the provider's `base_url`, e.g. http://127.0.0.1:PORT/v1 */
  url: string;
  calls: UpstreamCall[];
  /** Calls per message. */
  countsByMessage(): Map<string, number>;
  /** Calls beyond the first, summed over messages. */
  duplicateCalls(): number;
  close(): Promise<void>;
}

export async function startCountingUpstream(
  plan: (call: UpstreamCall, index: number) => UpstreamPlan = () => ({ delayMs: 0 }),
): Promise<CountingUpstream> {
  const calls: UpstreamCall[] = [];
  const server = await startFakeHttpServer(async (context) => {
    const body = parseJson(context.rawBody) as { model?: string; messages?: unknown } | undefined;
    const content = echoLastUser(body?.messages);
    const call: UpstreamCall = {
      model: body?.model ?? "",
      message: content.replace(/^Echo: /, ""),
      receivedAt: context.receivedAt,
    };
    const index = calls.push(call) - 1;
    context.signal.addEventListener("abort", () => {
      if (call.answeredAt === undefined) call.abortedAt = Date.now();
    });
    const what = plan(call, index);
    if (what === "hang") return hang(context.signal);
    if (what.delayMs > 0 && !(await sleep(what.delayMs, context.signal))) return;
    call.answeredAt = Date.now();
    if (what.status === 500) {
      const error = { message: "The server had an error processing your request.", type: "server_error" };
      return sendJson(context.response, 500, { error: { ...error, param: null, code: null } });
    }
    sendJson(context.response, 200, {
      id: `chatcmpl-chaos${index}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body?.model ?? "",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  });
  const countsByMessage = () => {
    const counts = new Map<string, number>();
    for (const call of calls) counts.set(call.message, (counts.get(call.message) ?? 0) + 1);
    return counts;
  };
  return {
    url: `${server.origin}/v1`,
    calls,
    countsByMessage,
    duplicateCalls: () => [...countsByMessage().values()].reduce((sum, count) => sum + count - 1, 0),
    close: () => server.close(),
  };
}
