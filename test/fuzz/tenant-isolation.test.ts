/**
 * Tenant isolation, fuzzed: tenant acme's job, file, batch (and its output) and dead webhook
 * delivery, requested by tenant globex or by a caller with no valid key, through every spelling
 * of the path a router might read as the same route (percent-encoded letters and digits like
 * `/%761/jobs`, encoded slashes, dot segments, doubled and trailing slashes).
 * - without a valid key nothing under a tenant route answers 2xx;
 * - globex reusing acme's Idempotency-Key (and body) gets a job of its own, not acme's;
 * - globex never gets a 2xx carrying acme's content, nor a 409 that admits acme's resource exists,
 *   nor a 2xx from an admin route;
 * - afterwards acme's resources are all still there, unchanged.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { spell, spellingArbitrary } from "./arbitraries/path-spellings.js";
import { describeExchange } from "./fuzz-executor.js";
import { fuzzParameters, fuzzTimeoutMs } from "./fuzz-settings.js";
import { type FuzzStack, startFuzzStack } from "./fuzz-stack.js";
import { createAcmeResources, type TenantFixture } from "./tenant-fixture.js";

type Intruder = { kind: "globex" } | { kind: "no-key"; header: string | undefined };

describe("tenant isolation under any path spelling", () => {
  let fuzz: FuzzStack;
  let fixture: TenantFixture;
  beforeAll(async () => {
    fuzz = await startFuzzStack(inject("redisUrl"));
    fixture = await createAcmeResources(fuzz);
  }, 60_000);
  afterAll(() => fuzz?.close());

  it(
    "acme's resources never reach globex, and no tenant route answers 2xx without a valid key",
    async () => {
      const acmeKey = fuzz.keys.acme;
      // Broken credentials, several of them built from acme's real key.
      const intruder: fc.Arbitrary<Intruder> = fc.oneof(
        { weight: 3, arbitrary: fc.constant<Intruder>({ kind: "globex" }) },
        {
          weight: 2,
          arbitrary: fc
            .constantFrom(
              undefined,
              "",
              "Bearer",
              "Bearer ",
              acmeKey,
              `Basic ${acmeKey}`,
              `Bearer ${acmeKey}x`,
              `Bearer ${acmeKey.slice(0, -1)}`,
              `Bearer ${acmeKey} ${acmeKey}`,
              `Bearer ${acmeKey.toUpperCase()}`,
              "Bearer globex",
            )
            .map((header): Intruder => ({ kind: "no-key", header })),
        },
      );
      const property = fc.asyncProperty(
        fc.nat(),
        spellingArbitrary,
        intruder,
        async (targetIndex, spelling, caller) => {
          const target = fixture.targets[targetIndex % fixture.targets.length];
          if (!target) throw new Error("no targets");
          const [pathOnly = "", query] = target.path.split("?");
          const path = spell(pathOnly, spelling) + (query ? `?${query}` : "");
          const headers: Record<string, string> = { ...target.headers };
          if (caller.kind === "globex")
            Object.assign(headers, fuzz.authorization({ kind: "tenant", tenant: "globex" }));
          else if (caller.header !== undefined) headers.authorization = caller.header;
          if (target.body) headers["content-type"] = "application/json";
          const request = {
            method: target.method,
            path,
            headers,
            ...(target.body ? { body: target.body } : {}),
          };
          const response = await fuzz.send(request);
          const described = describeExchange(request, response);
          const succeeded = response.status >= 200 && response.status < 300;
          expect(response.status, `a 5xx for\n${described}`).toBeLessThan(500);
          if (caller.kind === "no-key") {
            expect(succeeded, `a tenant route answered 2xx without a valid key:\n${described}`).toBe(false);
            return;
          }
          const leaked = fixture.markers.filter((marker) => response.text.includes(marker));
          expect(
            succeeded && leaked.length > 0,
            `globex got acme's ${leaked.join(", ")}:\n${described}`,
          ).toBe(false);
          if (target.owned) {
            expect(response.status, `globex learned that acme's resource exists:\n${described}`).not.toBe(
              409,
            );
            expect(succeeded, `globex acted on acme's resource:\n${described}`).toBe(false);
          }
          if (target.admin) expect(succeeded, `globex passed an admin route:\n${described}`).toBe(false);
        },
      );
      await fc.assert(property, fuzzParameters(1000));
    },
    fuzzTimeoutMs(30_000),
  );

  it("acme's resources are all still there, unchanged", async () => {
    const acme = fuzz.authorization({ kind: "tenant", tenant: "acme" });
    const job = await fuzz.send({ method: "GET", path: `/v1/jobs/${fixture.jobId}`, headers: acme });
    expect(job.status).toBe(200);
    expect(job.json.status).toBe("succeeded");
    const content = await fuzz.send({
      method: "GET",
      path: `/v1/files/${fixture.fileId}/content`,
      headers: acme,
    });
    expect(content.status).toBe(200);
    expect(content.text).toBe(fixture.fileContent);
    const batch = await fuzz.send({ method: "GET", path: `/v1/batches/${fixture.batchId}`, headers: acme });
    expect(batch.json.status).toBe("completed");
    const replay = await fuzz.send({
      method: "POST",
      path: "/v1/jobs",
      headers: { ...acme, "content-type": "application/json", "idempotency-key": fixture.idempotencyKey },
      body: fixture.idempotentBody,
    });
    expect(replay.status, "acme's Idempotency-Key no longer replays acme's job").toBe(200);
    expect(replay.json.id).toBe(fixture.idempotentJobId);
    const dead = await fuzz.send({
      method: "GET",
      path: "/v1/webhook-deliveries?status=dead",
      headers: acme,
    });
    expect(dead.json.data.map((delivery: { id: string }) => delivery.id)).toContain(fixture.deliveryId);
  });
});
