import {
  type Capability,
  type ChatRequest,
  costUsd,
  estimateMaxTokens,
  estimatePromptTokens,
  type HopConfig,
  type JobData,
  type ModelConfig,
  type Reason,
  requestedMaxTokens,
} from "@cascade/shared";
import { hasRawToolArguments } from "../providers/tool-arguments.js";

/** Capabilities a request needs from a model. */
export function requiredCapabilities(request: ChatRequest): Capability[] {
  const needed: Capability[] = [];
  const hasImage = request.messages.some(
    (message) =>
      message.role === "user" &&
      Array.isArray(message.content) &&
      message.content.some((part) => part.type === "image_url"),
  );
  if (hasImage) needed.push("vision");
  const usesTools =
    (request.tools?.length ?? 0) > 0 ||
    request.messages.some(
      (message) => message.role === "tool" || (message.role === "assistant" && message.tool_calls?.length),
    );
  if (usesTools) needed.push("tools");
  if (request.response_format && request.response_format.type !== "text") needed.push("json");
  return needed;
}

/** Per-request numbers computed once per job, not per hop. */
export interface RequestEstimate {
  promptTokens: number;
  maxTokens: number;
  requestedMaxTokens: number | undefined;
  capabilities: Capability[];
  /** A tool call in the history has arguments that are not a JSON object (tool-arguments.ts). */
  rawToolArguments: boolean;
}

export function estimateRequest(request: ChatRequest): RequestEstimate {
  return {
    promptTokens: estimatePromptTokens(request),
    maxTokens: estimateMaxTokens(request),
    requestedMaxTokens: requestedMaxTokens(request),
    capabilities: requiredCapabilities(request),
    rawToolArguments: hasRawToolArguments(request),
  };
}

export interface SkipDecision {
  reason: Reason;
  message: string;
}

/**
 * Checks that need no upstream call: capabilities, context window, price ceilings. Returns the
 * reason to skip the hop, or undefined to go ahead.
 */
export function precheckHop(
  hop: HopConfig,
  model: ModelConfig,
  estimate: RequestEstimate,
  job: Pick<JobData, "max_cost_usd" | "policy">,
  spentUsd: number,
  /** Whether every provider the model may go to takes tool arguments as text (`openai`-type). */
  takesRawToolArguments = true,
): SkipDecision | undefined {
  const supported = model.capabilities ?? [];
  const missing = estimate.capabilities.filter(
    (capability) =>
      !supported.includes(capability) &&
      !(capability === "vision" && job.policy.on_missing_vision === "strip"),
  );
  if (missing.length) {
    return { reason: "capability_missing", message: `model lacks ${missing.join(", ")}` };
  }
  if (estimate.rawToolArguments && !takesRawToolArguments) {
    // OpenAI takes a tool call's arguments as any text; Anthropic and Gemini need an object, and
    // sending another one would change the caller's history.
    return {
      reason: "capability_missing",
      message:
        "a tool call's arguments in the history are not a JSON object: only openai-type providers take them as sent",
    };
  }
  if (model.context_window !== undefined) {
    const needed = estimate.promptTokens + (estimate.requestedMaxTokens ?? 0);
    if (needed > model.context_window) {
      return {
        reason: "context_length",
        message: `about ${needed} tokens (prompt estimate + max_tokens) exceed the context window of ${model.context_window}`,
      };
    }
  }
  const estimated = costUsd(model, estimate.promptTokens, estimate.maxTokens);
  if (hop.max_cost_usd !== undefined && estimated > hop.max_cost_usd) {
    return {
      reason: "price_ceiling",
      message: `estimated $${usd(estimated)} exceeds the hop's max_cost_usd $${hop.max_cost_usd}`,
    };
  }
  return overRemainingCost(estimated, job, spentUsd);
}

/**
 * The job's (or gateway request's) `max_cost_usd` against what it has spent: checked before each
 * call, a retry of the hop and another deployment of a pool included, since each failed call may
 * have been charged.
 */
export function remainingCostSkip(
  model: ModelConfig,
  estimate: RequestEstimate,
  job: Pick<JobData, "max_cost_usd">,
  spentUsd: number,
): SkipDecision | undefined {
  if (job.max_cost_usd === undefined) return undefined;
  return overRemainingCost(costUsd(model, estimate.promptTokens, estimate.maxTokens), job, spentUsd);
}

function overRemainingCost(
  estimated: number,
  job: Pick<JobData, "max_cost_usd">,
  spentUsd: number,
): SkipDecision | undefined {
  // A call that costs nothing (a model without a price) fits whatever is left, overspent or not.
  if (job.max_cost_usd === undefined || estimated <= 0 || estimated <= job.max_cost_usd - spentUsd)
    return undefined;
  return {
    reason: "price_ceiling",
    message: `estimated $${usd(estimated)} exceeds the job's remaining max_cost_usd $${usd(Math.max(0, job.max_cost_usd - spentUsd))}`,
  };
}

/** An amount of USD as a person writes it: a sum's float noise (0.000049999999999999914) rounded off. */
function usd(amount: number): string {
  return amount.toFixed(10).replace(/\.?0+$/, "");
}

export const STRIPPED_IMAGE_TEXT = "[image omitted: this model cannot see images]";

/** Whether this hop runs with images replaced by text (route `on_missing_vision: strip`). */
export function needsImageStrip(
  model: ModelConfig,
  estimate: RequestEstimate,
  job: Pick<JobData, "policy">,
): boolean {
  return (
    job.policy.on_missing_vision === "strip" &&
    estimate.capabilities.includes("vision") &&
    !(model.capabilities ?? []).includes("vision")
  );
}

/** The request with every image part replaced by a short text placeholder. */
export function stripImages(request: ChatRequest): ChatRequest {
  return {
    ...request,
    messages: request.messages.map((message) =>
      message.role === "user" && Array.isArray(message.content)
        ? {
            ...message,
            content: message.content.map((part) =>
              part.type === "image_url" ? { type: "text" as const, text: STRIPPED_IMAGE_TEXT } : part,
            ),
          }
        : message,
    ),
  };
}
