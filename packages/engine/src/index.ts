// The engine: one completion request through its fallback chain. The worker runs it for queued
// jobs; the API will run it for gateway requests. No BullMQ here (docs/architecture.md).
export * from "./chain/call-charge.js";
export * from "./chain/chain-context.js";
export { type LostCallsContext, recordLostCalls, withLostCalls } from "./chain/chain-progress.js";
export * from "./chain/chain-runner.js";
export * from "./chain/continuation.js";
export * from "./chain/interruption.js";
export * from "./chain/job-outcome.js";
export * from "./chain/run-signal.js";
export * from "./events/job-event-writer.js";
export * from "./outbound/guarded-dispatcher.js";
export * from "./outbound/image-url-guard.js";
export * from "./outbound/ip-ranges.js";
export * from "./outbound/url-guard.js";
export * from "./providers/errors-openai.js";
export * from "./providers/provider-error.js";
export * from "./providers/registry.js";
export * from "./providers/retry-after.js";
export * from "./providers/types.js";
export * from "./resilience/resilience.js";
export * from "./timing/abortable-delay.js";
