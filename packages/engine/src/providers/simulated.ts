import {
  estimatePromptTokens,
  type ProviderConfig,
  requestedMaxTokens,
  type SimulateSettings,
} from "@cascade/shared";
import { abortableDelay } from "../timing/abortable-delay.js";
import { ProviderError } from "./provider-error.js";
import type { Completion, ProviderAdapter, ProviderCall, StreamSink } from "./types.js";

function lastUserText(call: ProviderCall): string {
  for (let index = call.request.messages.length - 1; index >= 0; index -= 1) {
    const message = call.request.messages[index];
    if (message?.role !== "user") continue;
    if (typeof message.content === "string") return message.content;
    return message.content.map((part) => (part.type === "text" ? part.text : "[image]")).join(" ");
  }
  return "";
}

/** How much of the prompt a reply quotes, whitespace runs collapsed. */
const QUOTED_CHARS = 120;
/** How much of the prompt is collapsed to find the quote (more only when it is mostly spaces). */
const SCANNED_CHARS = QUOTED_CHARS * 4;

/**
 * `text.replace(/\s+/g, " ").slice(0, QUOTED_CHARS)` without collapsing all of a long prompt: a
 * prefix collapses to a prefix of the whole prompt's collapse, so one that collapses to at least
 * QUOTED_CHARS characters starts with the same quote. (A loop testing each character measured
 * slower than the regular expression on a prompt of a few hundred characters.)
 */
export function quoteOf(text: string): string {
  if (text.length > SCANNED_CHARS) {
    const prefix = text.slice(0, SCANNED_CHARS).replace(/\s+/g, " ");
    if (prefix.length >= QUOTED_CHARS) return prefix.slice(0, QUOTED_CHARS);
  }
  return text.replace(/\s+/g, " ").slice(0, QUOTED_CHARS);
}

function reply(call: ProviderCall, settings: SimulateSettings, random: () => number): Completion {
  const prompt = quoteOf(lastUserText(call));
  const promptTokens = estimatePromptTokens(call.request);
  const maxTokens = requestedMaxTokens(call.request);
  const wanted = settings.output_tokens ?? 24;
  const completionTokens = maxTokens === undefined ? wanted : Math.min(wanted, maxTokens);
  const finishReason = maxTokens !== undefined && maxTokens < wanted ? "length" : "stop";
  const { request } = call;
  const forcedTool =
    request.tools?.length && request.tool_choice !== "none" && request.tool_choice !== "auto"
      ? typeof request.tool_choice === "object"
        ? request.tool_choice.function.name
        : request.tools[0]?.function.name
      : undefined;
  if (forcedTool) {
    return {
      content: null,
      toolCalls: [
        {
          id: `call_sim${Math.floor(random() * 1e9).toString(36)}`,
          type: "function",
          function: { name: forcedTool, arguments: JSON.stringify({ simulated: true }) },
        },
      ],
      finishReason: "tool_calls",
      usage: { promptTokens, completionTokens },
    };
  }
  const text = `Simulated reply from ${call.upstreamName} to: ${prompt}`;
  const content =
    request.response_format && request.response_format.type !== "text"
      ? JSON.stringify({ reply: text })
      : text;
  return { content, toolCalls: [], finishReason, usage: { promptTokens, completionTokens } };
}

/** A completion as the deltas a provider would stream: word-sized content, then each call's arguments in pieces. */
function deltasOf(completion: Completion): Array<Parameters<StreamSink["delta"]>[0]> {
  const deltas: Array<Parameters<StreamSink["delta"]>[0]> = [];
  for (const piece of completion.content?.match(/\s*\S{1,6}|\s+/g) ?? []) deltas.push({ content: piece });
  completion.toolCalls.forEach((call, index) => {
    deltas.push({ toolCalls: [{ index, id: call.id, name: call.function.name }] });
    for (const piece of call.function.arguments.match(/[\s\S]{1,8}/g) ?? []) {
      deltas.push({ toolCalls: [{ index, arguments: piece }] });
    }
  });
  return deltas;
}

function pickLatency(latency: SimulateSettings["latency_ms"], random: () => number): number {
  if (latency === undefined) return 0;
  if (typeof latency === "number") return latency;
  return latency[0] + random() * (latency[1] - latency[0]);
}

/**
 * A provider that answers locally with configurable latency, errors, 429s with Retry-After and
 * hangs: the demo config runs on it, and benchmarks use it with zero latency.
 */
export function createSimulatedAdapter(
  providerId: string,
  provider: ProviderConfig,
  random: () => number = Math.random,
): ProviderAdapter {
  /** Waits `waitMs`, then fails as configured (hang, 429, 500) or answers. */
  const answer = async (call: ProviderCall, settings: SimulateSettings, waitMs: number) => {
    if (waitMs > 0) await abortableDelay(waitMs, call.signal);
    const roll = random();
    const hang = settings.hang_rate ?? 0;
    const limited = settings.rate_limit_rate ?? 0;
    const failing = settings.error_rate ?? 0;
    if (roll < hang) {
      await new Promise((_resolve, reject) => {
        if (call.signal.aborted) reject(call.signal.reason);
        call.signal.addEventListener("abort", () => reject(call.signal.reason), { once: true });
      });
    }
    if (roll < hang + limited) {
      const retryAfterMs = (settings.retry_after_s ?? 1) * 1000;
      throw new ProviderError("rate_limited", `simulated 429 from ${providerId}`, {
        httpStatus: 429,
        retryAfterMs,
      });
    }
    if (roll < hang + limited + failing) {
      throw new ProviderError("server_error", `simulated 500 from ${providerId}`, { httpStatus: 500 });
    }
    return reply(call, settings, random);
  };
  return {
    providerId,
    type: "simulated",
    async generate(call) {
      const settings: SimulateSettings = { ...provider.simulate, ...call.model.simulate };
      return answer(call, settings, pickLatency(settings.latency_ms, random));
    },
    async stream(call, sink) {
      const settings: SimulateSettings = { ...provider.simulate, ...call.model.simulate };
      const latency = pickLatency(settings.latency_ms, random);
      // Half the latency before the first delta (time to first token), the rest between deltas.
      const completion = await answer(call, settings, latency / 2);
      const deltas = deltasOf(completion);
      const cutRate = settings.stream_cut_rate ?? 0;
      const cutAt = cutRate > 0 && random() < cutRate ? Math.floor(deltas.length / 2) : undefined;
      const gapMs = latency / 2 / Math.max(1, deltas.length - 1);
      for (const [position, delta] of deltas.entries()) {
        if (position === cutAt) {
          throw new ProviderError("network_error", `simulated stream cut from ${providerId}`);
        }
        if (position > 0 && gapMs > 0) await abortableDelay(gapMs, call.signal);
        if (call.signal.aborted) throw call.signal.reason;
        sink.delta(delta);
      }
      return completion;
    },
  };
}
