import type { FastifyInstance } from "fastify";
import { badRequest } from "./http-error.js";

/**
 * The deepest nesting of objects and arrays a request body (or a batch line) may carry. They pass
 * through JSON.stringify (BullMQ stores job data as JSON) and other recursive code that overflows
 * the stack somewhere past 4,000 levels; a line that cannot be enqueued must be refused when the
 * batch is created, not leave the batch in_progress for ever. Real tool schemas nest a few levels.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * Whether `value` nests objects and arrays more than `limit` levels deep (a scalar is 0 levels,
 * `{}` is 1). Iterative, so a hostile value cannot overflow the stack here either.
 */
export function jsonDepthExceeds(value: unknown, limit: number): boolean {
  const pending: Array<{ node: unknown; depth: number }> = [{ node: value, depth: 1 }];
  while (pending.length > 0) {
    const { node, depth } = pending.pop() as { node: unknown; depth: number };
    if (node === null || typeof node !== "object") continue;
    if (depth > limit) return true;
    for (const child of Object.values(node)) pending.push({ node: child, depth: depth + 1 });
  }
  return false;
}

/** The 400 for a body nested deeper than MAX_JSON_DEPTH. */
export const bodyTooDeep = () =>
  badRequest(`body: objects and arrays may nest at most ${MAX_JSON_DEPTH} levels deep`);

/**
 * Refuses a JSON body nested deeper than MAX_JSON_DEPTH with a 400, before validation and before
 * any recursive code (zod, canonical JSON, BullMQ's serialisation) sees it.
 */
export function registerBodyDepthLimit(app: FastifyInstance): void {
  // Callback style (no promise per request); a throw here reaches Fastify's error handler.
  app.addHook("preValidation", (request, _reply, done) => {
    if (
      request.body !== null &&
      typeof request.body === "object" &&
      jsonDepthExceeds(request.body, MAX_JSON_DEPTH)
    ) {
      throw bodyTooDeep();
    }
    done();
  });
}
