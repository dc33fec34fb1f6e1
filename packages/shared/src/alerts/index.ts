export * from "./alert-evaluator.js";
export * from "./alert-lease.js";
export * from "./alert-measures.js";
export * from "./alert-store.js";
export * from "./alert-types.js";
export * from "./alerts-gauge.js";
export * from "./route-window.js";
