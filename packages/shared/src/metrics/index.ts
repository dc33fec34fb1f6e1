export * from "./buckets.js";
export * from "./cascade-metrics.js";
export * from "./cluster-gauges.js";
export * from "./request-metrics.js";
