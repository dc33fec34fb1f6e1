/**
 * One arbitrary per endpoint family of the API (packages/api/src/routes/*.ts and the contract):
 * each yields a plain-data description of a request (so a failing case prints readably), which
 * fuzz-executor.ts turns into bytes on the wire once the pool of real ids is known.
 */
import fc from "fast-check";
import {
  type Caller,
  callerArbitrary,
  contentTypeArbitrary,
  extraHeadersArbitrary,
  type IdChoice,
  idChoiceArbitrary,
  queryArbitrary,
} from "./http-parts.js";
import { type MultipartUpload, multipartUploadArbitrary } from "./multipart.js";
import { batchBodyArbitrary, hostileJsonTextArbitrary, jobBodyArbitrary } from "./request-bodies.js";

export type ResourceKind = "job" | "file" | "batch" | "delivery";

export type FuzzBody =
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string }
  | { kind: "multipart"; upload: MultipartUpload }
  /** A POST /v1/batches body whose input_file_id is a file from the pool (or a made-up id). */
  | { kind: "batch"; value: unknown; inputFile: IdChoice };

export interface FuzzRequest {
  method: string;
  /** A route path; `:id` is replaced by the resolved id of `idKind`. */
  template: string;
  idKind?: ResourceKind;
  id?: IdChoice;
  query: string;
  caller: Caller;
  contentType?: string | undefined;
  headers: Record<string, string>;
  body?: FuzzBody;
}

const noBody = fc.constant(undefined);

/** A batch's input file: mostly one uploaded earlier, so batches get created and run. */
const inputFileArbitrary: fc.Arbitrary<IdChoice> = fc.oneof(
  { weight: 6, arbitrary: fc.nat().map((index): IdChoice => ({ kind: "pool", index })) },
  { weight: 1, arbitrary: idChoiceArbitrary },
);

/** A request to `template` with the shared parts drawn; the caller adds method, query and body. */
function request(
  method: fc.Arbitrary<string>,
  template: string,
  options: {
    idKind?: ResourceKind;
    queryNames?: readonly string[];
    body?: fc.Arbitrary<FuzzBody | undefined>;
  } = {},
): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      method,
      id: idChoiceArbitrary,
      query: queryArbitrary(options.queryNames ?? []),
      caller: callerArbitrary,
      contentType: contentTypeArbitrary,
      headers: extraHeadersArbitrary,
      body: options.body ?? noBody,
    })
    .map((drawn) => ({
      method: drawn.method,
      template,
      ...(options.idKind ? { idKind: options.idKind, id: drawn.id } : {}),
      query: drawn.query,
      caller: drawn.caller,
      ...(drawn.body ? { contentType: drawn.contentType } : {}),
      headers: drawn.headers,
      ...(drawn.body ? { body: drawn.body } : {}),
    }));
}

const reads = fc.constantFrom("GET", "GET", "GET", "HEAD");
const jsonOrHostile = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<FuzzBody> =>
  fc.oneof(
    { weight: 5, arbitrary: valid.map((value): FuzzBody => ({ kind: "json", value })) },
    { weight: 1, arbitrary: hostileJsonTextArbitrary.map((text): FuzzBody => ({ kind: "text", text })) },
  );

/** POST/GET/DELETE /v1/jobs(/:id) and GET /v1/jobs/:id/events. */
export function jobRequests(webhookUrls: readonly string[]): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    {
      weight: 5,
      arbitrary: request(fc.constant("POST"), "/v1/jobs", {
        body: jsonOrHostile(jobBodyArbitrary(webhookUrls)),
      }),
    },
    { weight: 2, arbitrary: request(reads, "/v1/jobs/:id", { idKind: "job", queryNames: ["wait"] }) },
    { weight: 1, arbitrary: request(fc.constant("DELETE"), "/v1/jobs/:id", { idKind: "job" }) },
    {
      weight: 2,
      arbitrary: request(reads, "/v1/jobs/:id/events", { idKind: "job", queryNames: ["last_event_id"] }),
    },
  );
}

/** The Files API and the Batch API. */
export const fileAndBatchRequests: fc.Arbitrary<FuzzRequest> = fc.oneof(
  {
    weight: 4,
    arbitrary: request(fc.constant("POST"), "/v1/files", {
      body: fc.oneof(
        {
          weight: 5,
          arbitrary: multipartUploadArbitrary.map((upload): FuzzBody => ({ kind: "multipart", upload })),
        },
        { weight: 1, arbitrary: hostileJsonTextArbitrary.map((text): FuzzBody => ({ kind: "text", text })) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: request(reads, "/v1/files", { queryNames: ["limit", "after", "order", "purpose"] }),
  },
  { weight: 1, arbitrary: request(reads, "/v1/files/:id", { idKind: "file" }) },
  { weight: 1, arbitrary: request(reads, "/v1/files/:id/content", { idKind: "file" }) },
  { weight: 1, arbitrary: request(fc.constant("DELETE"), "/v1/files/:id", { idKind: "file" }) },
  {
    weight: 4,
    arbitrary: request(fc.constant("POST"), "/v1/batches", {
      body: fc.oneof(
        {
          weight: 5,
          arbitrary: fc
            .tuple(batchBodyArbitrary, inputFileArbitrary)
            .map(([value, inputFile]): FuzzBody => ({ kind: "batch", value, inputFile })),
        },
        { weight: 1, arbitrary: hostileJsonTextArbitrary.map((text): FuzzBody => ({ kind: "text", text })) },
      ),
    }),
  },
  { weight: 1, arbitrary: request(reads, "/v1/batches", { queryNames: ["limit", "after"] }) },
  { weight: 1, arbitrary: request(reads, "/v1/batches/:id", { idKind: "batch" }) },
  { weight: 1, arbitrary: request(fc.constant("POST"), "/v1/batches/:id/cancel", { idKind: "batch" }) },
);

/** Webhook deliveries, providers (and the admin breaker override), usage. */
export const tenantOperationRequests: fc.Arbitrary<FuzzRequest> = fc.oneof(
  { weight: 2, arbitrary: request(reads, "/v1/webhook-deliveries", { queryNames: ["status", "limit"] }) },
  {
    weight: 2,
    arbitrary: request(fc.constant("POST"), "/v1/webhook-deliveries/:id/retry", { idKind: "delivery" }),
  },
  { weight: 1, arbitrary: request(reads, "/v1/providers") },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        request(fc.constant("POST"), "/v1/providers/:id/breaker", {
          body: jsonOrHostile(
            fc.oneof(
              fc.record({ state: fc.constantFrom("auto", "closed", "open", "half_open", "") }),
              fc.jsonValue({ maxDepth: 1 }),
            ),
          ),
        }),
        fc.constantFrom("sim", "shaky", "fast", "flaky", "nope", "%20", "__proto__"),
      )
      .map(([drawn, provider]) => ({ ...drawn, template: `/v1/providers/${provider}/breaker` })),
  },
  { weight: 2, arbitrary: request(reads, "/v1/usage", { queryNames: ["start", "end", "group"] }) },
);

const OPERATION_PATHS = [
  "/healthz",
  "/readyz",
  "/metrics",
  "/docs",
  "/docs/",
  "/docs/json",
  "/docs/yaml",
  "/docs/static/index.html",
  "/docs/static/../../../package.json",
  "/docs/static/%2e%2e/%2e%2e/package.json",
  "/",
  "/v1",
  "/v1/",
  "/v1/chat/completions",
  "/v1/models",
  "/dashboard",
  "/admin/queues",
];

/** Probes, metrics and docs; then any method on any path, known or not. */
export const operationAndUnknownRequests: fc.Arbitrary<FuzzRequest> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(request(reads, "/", { queryNames: ["format", "url"] }), fc.constantFrom(...OPERATION_PATHS))
      .map(([drawn, template]) => ({ ...drawn, template })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        request(fc.constantFrom("PUT", "PATCH", "OPTIONS", "TRACE", "DELETE", "POST", "PROPFIND"), "/", {
          body: jsonOrHostile(fc.jsonValue({ maxDepth: 2 })),
        }),
        fc.oneof(
          fc.constantFrom(
            ...OPERATION_PATHS,
            "/v1/jobs",
            "/v1/jobs/x",
            "/v1/files",
            "/v1/batches/x",
            "/v1/usage",
          ),
          fc.webPath(),
        ),
      )
      .map(([drawn, template]) => ({
        ...drawn,
        template: template.startsWith("/") ? template : `/${template}`,
      })),
  },
);
