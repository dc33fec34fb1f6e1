/**
 * Checks of parsed JSON written by hand to accept exactly what @ai-sdk/openai 3.0.141's zod
 * schemas accept (zod 4: `nullish` is undefined or null, `z.number()` refuses NaN and ±Infinity),
 * shared by the lean client's answer (chat-response.ts) and stream (chat-chunks.ts) checks.
 */

export type Json = Record<string, unknown>;

export const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);
export const isNullish = (value: unknown) => value === undefined || value === null;
// zod 4's z.number() refuses NaN and ±Infinity (JSON.parse("1e999") is Infinity).
export const isNumber = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value);
export const nullishString = (value: unknown) => isNullish(value) || typeof value === "string";
export const nullishNumber = (value: unknown) => isNullish(value) || isNumber(value);

export function arrayOf(value: unknown, item: (element: unknown) => boolean): boolean {
  if (!Array.isArray(value)) return false;
  for (const element of value) if (!item(element)) return false;
  return true;
}

export const nullishArrayOf = (value: unknown, item: (element: unknown) => boolean) =>
  isNullish(value) || arrayOf(value, item);

export const isTopLogprob = (value: unknown) =>
  isObject(value) && typeof value.token === "string" && isNumber(value.logprob);

export const isTokenLogprob = (value: unknown) =>
  isObject(value) &&
  typeof value.token === "string" &&
  isNumber(value.logprob) &&
  arrayOf(value.top_logprobs, isTopLogprob);

export const isAnnotation = (value: unknown) => {
  if (!isObject(value) || value.type !== "url_citation") return false;
  const citation = value.url_citation;
  return (
    isObject(citation) &&
    isNumber(citation.start_index) &&
    isNumber(citation.end_index) &&
    typeof citation.url === "string" &&
    typeof citation.title === "string"
  );
};

export const isLogprobs = (value: unknown) =>
  isNullish(value) ||
  (isObject(value) &&
    nullishArrayOf(value.content, isTokenLogprob) &&
    nullishArrayOf(value.refusal, isTokenLogprob));

export function isUsage(value: unknown): boolean {
  if (isNullish(value)) return true;
  if (!isObject(value)) return false;
  const prompt = value.prompt_tokens_details;
  const completion = value.completion_tokens_details;
  return (
    nullishNumber(value.prompt_tokens) &&
    nullishNumber(value.completion_tokens) &&
    nullishNumber(value.total_tokens) &&
    (isNullish(prompt) ||
      (isObject(prompt) &&
        nullishNumber(prompt.cached_tokens) &&
        nullishNumber(prompt.cache_write_tokens))) &&
    (isNullish(completion) ||
      (isObject(completion) &&
        nullishNumber(completion.reasoning_tokens) &&
        nullishNumber(completion.accepted_prediction_tokens) &&
        nullishNumber(completion.rejected_prediction_tokens)))
  );
}
