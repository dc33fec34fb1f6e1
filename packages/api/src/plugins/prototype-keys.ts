import { fieldPath } from "@cascade/shared";
import { badRequest, type HttpError } from "./http-error.js";
import { bodyTooDeep, jsonDepthExceeds, MAX_JSON_DEPTH } from "./json-depth.js";

/**
 * Where `value` holds a key that could set an object's prototype, by the rules of
 * secure-json-parse (Fastify's JSON parser, which refuses such bodies): an own `__proto__` key, or
 * an own `constructor` key holding an object with an own `prototype`. The path names the field as
 * validation errors do (`request.messages[0].__proto__`); undefined when there is none.
 * Iterative, so a deeply nested value cannot overflow the stack.
 */
export function prototypeKeyPath(value: unknown): string | undefined {
  // Each node keeps its key and parent only: the path is built for the one key found, so a body
  // nested thousands deep costs linear time, not a copied path per node.
  interface Visit {
    node: unknown;
    key: string | number;
    parent: Visit | undefined;
  }
  const pathOf = (visit: Visit | undefined, last: string): string => {
    const keys: Array<string | number> = [last];
    for (let at = visit; at?.parent; at = at.parent) keys.push(at.key);
    return fieldPath(keys.reverse());
  };
  const pending: Visit[] = [{ node: value, key: "", parent: undefined }];
  for (let index = 0; index < pending.length; index++) {
    const visit = pending[index] as Visit;
    const { node } = visit;
    if (node === null || typeof node !== "object") continue;
    if (Object.hasOwn(node, "__proto__")) return pathOf(visit, "__proto__");
    const held = Object.hasOwn(node, "constructor")
      ? (node as { constructor: unknown }).constructor
      : undefined;
    if (held !== null && typeof held === "object" && Object.hasOwn(held, "prototype")) {
      return pathOf(visit, "constructor");
    }
    const array = Array.isArray(node);
    for (const [key, child] of Object.entries(node)) {
      pending.push({ node: child, key: array ? Number(key) : key, parent: visit });
    }
  }
  return undefined;
}

/**
 * The 400 for a body Fastify's JSON parser refused although it is valid JSON: it holds a
 * prototype key, named here (its message alone says "not valid JSON"). Undefined when the body is
 * not valid JSON after all. Only called on a refused body, so accepted ones are parsed once.
 */
export function prototypeKeyError(text: string): HttpError | undefined {
  let value: unknown;
  try {
    // Plain JSON.parse makes `__proto__` an own key (it never sets a prototype): safe to walk.
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  // As the body would be answered without the key (and no path thousands of levels long).
  if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) return bodyTooDeep();
  const path = prototypeKeyPath(value);
  if (path === undefined) return undefined;
  return badRequest(`body: field "${path}" is not allowed (it could change an object's prototype)`, path);
}
