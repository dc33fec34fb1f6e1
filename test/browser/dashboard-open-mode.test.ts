/**
 * The dashboard in open mode (no tenants): the page shows without asking for a key, and the queue
 * section counts waiting jobs and the oldest one's age (no worker runs, so the jobs wait).
 * The HTTP checks always run; the page check needs a Chromium (see dashboard.test.ts).
 */
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { findChromium } from "./chromium.js";

const chromiumPath = findChromium();

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    withoutWorker: true,
    env: { FAKE_KEY: "unused" },
    config: {
      providers: { fake: { type: "openai", base_url: "http://127.0.0.1:9/v1", api_key_env: "FAKE_KEY" } },
      models: { m: { provider: "fake", name: "up-m" } },
      routes: { default: { chain: [{ model: "m" }] } },
    },
  });
  for (let index = 0; index < 3; index++) {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: `wait ${index}` }], max_tokens: 5 } },
    });
    expect(created.status).toBe(202);
  }
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

describe("dashboard in open mode", () => {
  it("answers without a key and counts the waiting jobs and the oldest one's age", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await stack.request("GET", "/dashboard/mode")).body).toEqual({ open_mode: true });
    const { status, body } = await stack.request("GET", "/v1/dashboard");
    expect(status).toBe(200);
    expect(body.open_mode).toBe(true);
    expect(body.queue).toMatchObject({ waiting: 3, in_flight: 0 });
    expect(body.queue.oldest_waiting_age_s).toBeGreaterThanOrEqual(1);
    expect(body.spend_today.tenants).toEqual([{ tenant: "default", cost_usd: 0, by_route: {} }]);
  });

  it.skipIf(!chromiumPath)("shows the page without asking for a key", async () => {
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text());
      });
      page.on("pageerror", (error) => problems.push(error.message));
      await page.goto(`${stack.url}/dashboard`);
      await page.locator("#panels").waitFor({ state: "visible" });
      expect(await page.locator("#key-form").isHidden()).toBe(true);
      await expect
        .poll(() => page.locator('[data-figure="waiting"] dd').textContent(), { timeout: 20_000 })
        .toBe("3");
      expect(await page.locator('[data-figure="oldest"] dd').textContent()).toMatch(/^\d+ s$/);
      expect(await page.locator("#status").textContent()).toContain("open mode");
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
