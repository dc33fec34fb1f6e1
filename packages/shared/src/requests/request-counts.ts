import { HashIncrementWrites } from "./batched-writes.js";
import {
  type FinishedRequest,
  fellBack,
  type RequestObserver,
  type StrayCharge,
} from "./finished-request.js";

/** How long a day's counts are kept: as long as the spend hashes GET /v1/usage also reads. */
export const REQUEST_COUNTS_TTL_SECONDS = 400 * 86_400;

/** What is counted per route, per model and in total (`cost` in USD, the others in requests). */
export const REQUEST_COUNTERS = ["requests", "succeeded", "failed", "fallbacks", "cost"] as const;
export type RequestCounter = (typeof REQUEST_COUNTERS)[number];

/** Whose counts a field holds: a route, a chain's first model, or every request of the day. */
export type RequestCountSubject = { kind: "route" | "model"; id: string } | { kind: "total" };

/**
 * A field of a `keys.requestCounts` hash: `route:<id>:<counter>`, `model:<id>:<counter>` or
 * `total:<counter>`. The counter is after the last `:`, so ids holding `:` read back whole.
 */
export function requestCountField(subject: RequestCountSubject, counter: RequestCounter): string {
  return subject.kind === "total" ? `total:${counter}` : `${subject.kind}:${subject.id}:${counter}`;
}

/** One row of counts: finished requests, how they ended, and what they cost (USD, all attempts). */
export interface RequestCounts {
  requests: number;
  succeeded: number;
  failed: number;
  fallbacks: number;
  costUsd: number;
}

/** A day's (or several days') counts: in total, by route, and by the chain's first model. */
export interface RequestCountTable {
  total: RequestCounts;
  routes: Record<string, RequestCounts>;
  models: Record<string, RequestCounts>;
}

export function emptyRequestCounts(): RequestCounts {
  return { requests: 0, succeeded: 0, failed: 0, fallbacks: 0, costUsd: 0 };
}

export function emptyRequestCountTable(): RequestCountTable {
  return { total: emptyRequestCounts(), routes: {}, models: {} };
}

/** Rounds away the binary float noise that adding many small amounts leaves. */
function roundUsd(amount: number): number {
  return Math.round(amount * 1e10) / 1e10;
}

function addCounter(row: RequestCounts, counter: RequestCounter, amount: number): void {
  if (!Number.isFinite(amount)) return;
  if (counter === "cost") row.costUsd = roundUsd(row.costUsd + amount);
  else row[counter] += amount;
}

/** Adds `from` into `into` (summing days or weeks). */
export function addRequestCounts(into: RequestCounts, from: RequestCounts): RequestCounts {
  into.requests += from.requests;
  into.succeeded += from.succeeded;
  into.failed += from.failed;
  into.fallbacks += from.fallbacks;
  into.costUsd = roundUsd(into.costUsd + from.costUsd);
  return into;
}

/** Adds a whole table (another day's) into `into`. */
export function addRequestCountTable(into: RequestCountTable, from: RequestCountTable): RequestCountTable {
  addRequestCounts(into.total, from.total);
  for (const side of ["routes", "models"] as const) {
    for (const [id, row] of Object.entries(from[side])) {
      into[side][id] = addRequestCounts(into[side][id] ?? emptyRequestCounts(), row);
    }
  }
  return into;
}

/**
 * What one success cost: everything the requests cost (failed and fallen-back attempts, failed
 * and cancelled requests included) over the requests that succeeded; null when none did, since
 * no success was bought (not 0, which would read as free, nor infinity, which JSON lacks).
 */
export function costPerSuccess(row: Pick<RequestCounts, "succeeded" | "costUsd">): number | null {
  return row.succeeded > 0 ? roundUsd(row.costUsd / row.succeeded) : null;
}

/** Reads one `keys.requestCounts` hash (HGETALL's reply); unknown fields are ignored. */
export function parseRequestCounts(hash: Record<string, string> | null | undefined): RequestCountTable {
  const table = emptyRequestCountTable();
  for (const [field, value] of Object.entries(hash ?? {})) {
    const split = field.lastIndexOf(":");
    const counter = field.slice(split + 1) as RequestCounter;
    if (split < 0 || !REQUEST_COUNTERS.includes(counter)) continue;
    const subject = field.slice(0, split);
    const amount = Number(value);
    if (subject === "total") {
      addCounter(table.total, counter, amount);
      continue;
    }
    const kindEnd = subject.indexOf(":");
    const kind = subject.slice(0, kindEnd);
    if (kindEnd < 0 || (kind !== "route" && kind !== "model")) continue;
    const side = kind === "route" ? table.routes : table.models;
    const id = subject.slice(kindEnd + 1);
    const row = side[id] ?? emptyRequestCounts();
    side[id] = row;
    addCounter(row, counter, amount);
  }
  return table;
}

const DAY_MS = 86_400_000;
/** The last day formatted, and the span of Unix ms it covers: most requests end on the same day. */
let lastDay = { from: 0, until: 0, day: "" };

/**
 * The UTC day (`YYYY-MM-DD`) a request is counted on: the day it ended. A UTC day is exactly
 * DAY_MS of Unix time (no leap seconds), so the day is formatted once and reused within its span.
 */
export function countingDay(finishedAtMs: number): string {
  if (finishedAtMs >= lastDay.from && finishedAtMs < lastDay.until) return lastDay.day;
  const from = Math.floor(finishedAtMs / DAY_MS) * DAY_MS;
  const day = new Date(from).toISOString().slice(0, 10);
  lastDay = { from, until: from + DAY_MS, day };
  return day;
}

/** One subject's field names (requestCountField's form). */
interface SubjectFields {
  requests: string;
  succeeded: string;
  failed: string;
  fallbacks: string;
  cost: string;
}

/** `prefix`: requestCountField's form without the counter (`route:<id>:`). */
function subjectFields(prefix: string): SubjectFields {
  return {
    requests: `${prefix}requests`,
    succeeded: `${prefix}succeeded`,
    failed: `${prefix}failed`,
    fallbacks: `${prefix}fallbacks`,
    cost: `${prefix}cost`,
  };
}

/** The fields of a route's or model's row, built on its first request. */
function subjectOf(subjects: Map<string, SubjectFields>, kind: "route" | "model", id: string): SubjectFields {
  let fields = subjects.get(id);
  if (!fields) {
    fields = subjectFields(`${kind}:${id}:`);
    subjects.set(id, fields);
  }
  return fields;
}

/**
 * Counts every finished request, job or gateway call, for GET /v1/usage's `routes`, `models`
 * and `weekly` (docs/operations.md, "Cost per successful request"): one hash per tenant and UTC
 * day. Counts are added up in memory and written every REQUEST_COUNTS_FLUSH_MS in one MULTI
 * (batched-writes.ts; `close()` on shutdown writes the rest): an observer must not block, and a
 * failed write is reported to `onError`, never thrown.
 *
 * - Succeeded and failed requests count in `requests`, and in `succeeded` or `failed`; a
 *   cancelled one in neither (the caller ended it, Cascade did not), but what it had already
 *   cost counts, because that money was spent.
 * - `cost` is the request's whole cost, failed attempts included: that is how a failed
 *   attempt's cost counts against the route (and first model) that paid for it.
 * - Routes: the request's route; a request with no route (a `models` list, or a model named
 *   directly and its fallbacks) counts in `total` and under its model only.
 * - Models: the chain's FIRST model, what was asked for, answered by whichever model: so a
 *   model's row says what asking for it costs per success. (`by_model` spend stays keyed by the
 *   model that was called.)
 */
export class RequestCountRecorder extends HashIncrementWrites implements RequestObserver {
  /**
   * Each subject's field names, built once: a name made afresh for every request is a new string
   * that each Map lookup of the gathered counts must flatten and hash again. Subjects are `total`
   * and the routes and models of the config (or of jobs enqueued under an earlier one) this
   * process has counted: ids a client cannot invent (resolveChain refuses unknown ones).
   */
  private readonly total = subjectFields("total:");
  private readonly routes = new Map<string, SubjectFields>();
  private readonly models = new Map<string, SubjectFields>();
  /** Each tenant's key for the day it was last counted on (one entry per configured tenant). */
  private readonly dayKeys = new Map<string, { day: string; key: string }>();

  finished(request: FinishedRequest): void {
    const counted = request.status === "succeeded" || request.status === "failed";
    const cost = Number.isFinite(request.costUsd) && request.costUsd > 0 ? request.costUsd : 0;
    if (!counted && cost === 0) return;
    const key = this.dayKey(request.tenant, request.finishedAtMs);
    const fellBackHere = counted && fellBack(request);
    this.count(key, this.total, request.status, counted, fellBackHere, cost);
    if (request.route !== null) {
      const fields = subjectOf(this.routes, "route", request.route);
      this.count(key, fields, request.status, counted, fellBackHere, cost);
    }
    if (request.firstModel !== "") {
      const fields = subjectOf(this.models, "model", request.firstModel);
      this.count(key, fields, request.status, counted, fellBackHere, cost);
    }
    this.gathered();
  }

  /** Cost only, under the same subjects as a finished request's (no request is counted). */
  charged(charge: StrayCharge): void {
    if (!(Number.isFinite(charge.costUsd) && charge.costUsd > 0)) return;
    const key = this.dayKey(charge.tenant, charge.atMs);
    const ttl = REQUEST_COUNTS_TTL_SECONDS;
    this.increments.add(key, this.total.cost, charge.costUsd, ttl);
    if (charge.route !== null) {
      this.increments.add(key, subjectOf(this.routes, "route", charge.route).cost, charge.costUsd, ttl);
    }
    if (charge.firstModel !== "") {
      this.increments.add(key, subjectOf(this.models, "model", charge.firstModel).cost, charge.costUsd, ttl);
    }
    this.gathered();
  }

  /** One subject's counters. */
  private count(
    key: string,
    fields: SubjectFields,
    status: FinishedRequest["status"],
    counted: boolean,
    fellBackHere: boolean,
    cost: number,
  ): void {
    const ttl = REQUEST_COUNTS_TTL_SECONDS;
    if (counted) {
      this.increments.count(key, fields.requests, 1, ttl);
      this.increments.count(key, status === "succeeded" ? fields.succeeded : fields.failed, 1, ttl);
      if (fellBackHere) this.increments.count(key, fields.fallbacks, 1, ttl);
    }
    if (cost > 0) this.increments.add(key, fields.cost, cost, ttl);
  }

  private dayKey(tenant: string, atMs: number): string {
    const day = countingDay(atMs);
    const last = this.dayKeys.get(tenant);
    if (last?.day === day) return last.key;
    const key = this.keys.requestCounts(tenant, day);
    this.dayKeys.set(tenant, { day, key });
    return key;
  }
}
