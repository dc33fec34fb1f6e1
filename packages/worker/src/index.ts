export * from "./completion/completion-worker.js";
export * from "./lifecycle/cancel-listener.js";
export * from "./webhooks/send-webhook.js";
export * from "./webhooks/signing.js";
export * from "./webhooks/tenant-secrets.js";
export * from "./webhooks/webhook-notifier.js";
export * from "./webhooks/webhook-worker.js";
