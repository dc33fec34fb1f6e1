import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { parseWebhookSecrets, signWebhook } from "./signing.js";
import { webhookRetryDelay } from "./webhook-worker.js";

const secretA = `whsec_${Buffer.from("cascade-test-secret-a-0123456789").toString("base64")}`;
const secretB = `whsec_${Buffer.from("cascade-test-secret-b-9876543210").toString("base64")}`;

describe("signWebhook", () => {
  const body = JSON.stringify({ type: "job.succeeded", data: { id: "job_1" } });
  const timestamp = Math.floor(Date.now() / 1000);

  it("produces a signature the standardwebhooks library verifies", () => {
    const signature = signWebhook(parseWebhookSecrets(secretA), "msg_1", timestamp, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const headers = {
      "webhook-id": "msg_1",
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signature,
    };
    expect(new Webhook(secretA).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(secretB).verify(body, headers)).toThrow();
    expect(() => new Webhook(secretA).verify(`${body} `, headers)).toThrow();
  });

  it("signs with every secret during a rotation, space-separated", () => {
    for (const value of [`${secretA} ${secretB}`, `${secretA},${secretB}`, ` ${secretA} ,\n${secretB} `]) {
      const signature = signWebhook(parseWebhookSecrets(value), "msg_2", timestamp, body);
      expect(signature.split(" ")).toHaveLength(2);
      const headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signature,
      };
      expect(() => new Webhook(secretA).verify(body, headers)).not.toThrow();
      expect(() => new Webhook(secretB).verify(body, headers)).not.toThrow();
    }
  });

  it("refuses secrets that are not base64", () => {
    expect(() => parseWebhookSecrets("")).toThrow(/empty/);
    expect(() => parseWebhookSecrets("whsec_")).toThrow(/secret 1/);
    expect(() => parseWebhookSecrets(`${secretA} whsec_***`)).toThrow(/secret 2/);
  });

  it("refuses a key too short to sign with, with or without the whsec_ prefix", () => {
    expect(() => parseWebhookSecrets("whsec_YWJj")).toThrow(/secret 1 holds 3 bytes/);
    expect(() => parseWebhookSecrets(Buffer.from("short").toString("base64"))).toThrow(/at least 16/);
    expect(parseWebhookSecrets(`whsec_${Buffer.alloc(16, 7).toString("base64")}`)[0]).toHaveLength(16);
  });
});

describe("webhookRetryDelay", () => {
  it("waits schedule[n-1] after the n-th failure, repeating the last interval", () => {
    const schedule = [100, 200, 500];
    expect([1, 2, 3, 4, 7].map((attempts) => webhookRetryDelay(schedule, attempts))).toEqual([
      100, 200, 500, 500, 500,
    ]);
  });
});
