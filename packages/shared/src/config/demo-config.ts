/**
 * The built-in demo config: simulated providers only, so `npm start` works with no keys.
 * The primary is deliberately unreliable so the default route visibly falls back.
 */
export const demoConfig = {
  providers: {
    "sim-east": {
      type: "simulated",
      simulate: {
        latency_ms: [50, 300],
        error_rate: 0.25,
        rate_limit_rate: 0.15,
        hang_rate: 0.05,
        retry_after_s: 2,
      },
    },
    "sim-west": { type: "simulated", simulate: { latency_ms: [100, 500], error_rate: 0.02 } },
  },
  models: {
    "demo-large": {
      provider: "sim-east",
      name: "sim-large-1",
      price: { input_per_mtok: 2.5, output_per_mtok: 10 },
      context_window: 128000,
      capabilities: ["vision", "tools", "json"],
    },
    "demo-small": {
      provider: "sim-west",
      name: "sim-small-1",
      price: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
      context_window: 32000,
      capabilities: ["tools", "json"],
    },
    "demo-backup": {
      provider: "sim-west",
      name: "sim-backup-1",
      price: { input_per_mtok: 0.5, output_per_mtok: 1.5 },
      context_window: 16000,
      capabilities: ["json"],
      simulate: { latency_ms: [200, 800], error_rate: 0 },
    },
  },
  routes: {
    default: {
      chain: [
        { model: "demo-large", timeout_ms: 2000, max_retries: 1 },
        { model: "demo-small", timeout_ms: 5000 },
        { model: "demo-backup", timeout_ms: 10000 },
      ],
    },
    cheap: { chain: [{ model: "demo-small" }, { model: "demo-backup" }] },
  },
  fallbacks: { "demo-large": ["demo-small", "demo-backup"] },
  // The demo runs on your machine: let webhooks reach a receiver on localhost.
  webhooks: { allow_private_networks: true },
} as const;
