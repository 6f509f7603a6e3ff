// Every route of KeywardClient against a real `keyward serve`.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";

import { KeywardClient, KeywardError } from "../dist/index.js";
import { startKeyward } from "./keyward.mjs";

let keyward;
let service;
let alice;

before(async () => {
  keyward = await startKeyward();
  service = new KeywardClient({ baseUrl: keyward.url, token: keyward.serviceToken });
  alice = service.withToken(keyward.userToken("alice"));
});
after(async () => keyward?.stop());

async function refusedWith(promise, status) {
  const err = await promise.then(
    () => assert.fail(`expected a ${status}`),
    (err) => err,
  );
  assert.ok(err instanceof KeywardError, String(err));
  assert.equal(err.status, status, `${err.message}: ${err.detail}`);
  return err;
}

describe("a user's own keys", () => {
  it("are created, read, changed, rotated and revoked", async () => {
    const created = await alice.createKey({
      name: "ci",
      permissions: ["READ_GRAPH"],
      description: "the CI deploy",
      metadata: { team: "infra" },
    });
    assert.match(created.plain_text_key, /^agpt_/);
    const id = created.api_key.id;
    assert.equal(created.api_key.user_id, "alice");

    assert.deepEqual((await alice.listKeys()).map((k) => k.id), [id]);
    assert.equal((await alice.getKey(id)).name, "ci");
    assert.equal((await alice.updateKey(id, { name: "ci-2" })).name, "ci-2");
    assert.deepEqual(
      (await alice.setPermissions(id, ["READ_GRAPH", "EXECUTE_GRAPH"])).permissions.sort(),
      ["EXECUTE_GRAPH", "READ_GRAPH"],
    );
    // A key's rate limit is the platform's to set (as its credits are): a user is told so.
    const platforms = await refusedWith(
      alice.setRateLimit(id, { requests: 100, per_seconds: 60 }),
      403,
    );
    assert.equal(platforms.message, "Set by the platform");
    assert.match(platforms.hint, /PATCH \/api\/admin\/api-keys/);
    assert.equal((await alice.suspendKey(id)).status, "SUSPENDED");
    assert.equal((await alice.reactivateKey(id)).status, "ACTIVE");

    const events = await alice.listKeyEvents(id, { limit: 2 });
    assert.equal(events.events.length, 2);
    assert.ok(events.next_after, "a next page");
    const usage = await alice.keyUsage(id, { granularity: "day" });
    assert.equal(usage.granularity, "day");

    const rotated = await alice.rotateKey(id, { graceSeconds: 0 });
    assert.notEqual(rotated.api_key.id, id);
    assert.match(rotated.plain_text_key, /^agpt_/);
    assert.equal((await alice.revokeKey(rotated.api_key.id)).status, "REVOKED");
    assert.ok((await alice.listPermissions()).includes("READ_GRAPH"));
  });

  it("are another user's business: not found", async () => {
    const { api_key } = await alice.createKey({ name: "mine", permissions: [] });
    const bob = service.withToken(keyward.userToken("bob"));
    const err = await refusedWith(bob.getKey(api_key.id), 404);
    assert.equal(err.message, "API key not found");
  });
});

describe("verification", () => {
  it("gives the verdict for a key and the permissions a request needs", async () => {
    const { plain_text_key: key, api_key } = await alice.createKey({
      name: "verified",
      permissions: ["READ_GRAPH"],
    });
    const valid = await service.verifyKey(key, { permissions: ["READ_GRAPH"] });
    assert.equal(valid.code, "VALID");
    assert.equal(valid.valid, true);
    assert.equal(valid.user_id, "alice");
    assert.equal(valid.key_id, api_key.id);
    const lacking = await service.verifyKey(key, { permissions: ["EXECUTE_GRAPH"] });
    assert.equal(lacking.code, "INSUFFICIENT_PERMISSIONS");
    assert.equal(lacking.valid, false);
    assert.equal((await service.verifyKey("agpt_not_a_key")).code, "MALFORMED");
  });

  it("passes the end client's address and the cost", async () => {
    const created = await service.createKeyForUser("carol", {
      name: "office",
      permissions: [],
      allowed_ips: ["203.0.113.0/24"],
      remaining: 5,
    });
    const key = created.plain_text_key;
    assert.equal((await service.verifyKey(key, { clientIp: "203.0.113.7", cost: 2 })).remaining, 3);
    assert.equal((await service.verifyKey(key, { clientIp: "198.51.100.1" })).code, "IP_NOT_ALLOWED");
    assert.equal((await service.verifyKey(key)).code, "IP_NOT_ALLOWED", "no address: refused");
  });

  it("refuses a user's token, and reports a leak without saying anything", async () => {
    await refusedWith(alice.verifyKey("agpt_x"), 401);
    await service.reportLeak("agpt_not_a_key", { url: "https://example.com/paste" });
  });
});

describe("the platform's admin routes", () => {
  it("manage any user's keys, limits and the audit trail", async () => {
    assert.equal((await service.whoami()).type, "admin");
    const created = await service.createKeyForUser("dave", {
      name: "billing",
      permissions: ["READ_GRAPH"],
      remaining: 10,
    });
    const id = created.api_key.id;
    assert.deepEqual((await service.listKeysOfUser("dave")).map((k) => k.id), [id]);
    assert.equal((await service.getKeyAsAdmin(id)).remaining, 10);
    assert.equal((await service.updateKeyAsAdmin(id, { remaining: 20 })).remaining, 20);
    assert.equal((await service.suspendKeyAsAdmin(id)).status, "SUSPENDED");
    assert.equal((await service.reactivateKeyAsAdmin(id)).status, "ACTIVE");
    assert.ok((await service.listKeyEventsAsAdmin(id)).events.length >= 3);
    const feed = await service.listEvents({ user_id: "dave" });
    assert.ok(feed.events.every((e) => e.user_id === "dave"));
    assert.ok(Array.isArray((await service.usage({ granularity: "hour" })).buckets));

    const limits = await service.setUserLimits("dave", {
      rate_limit: { requests: 10, per_seconds: 60 },
      credits: { remaining: 7 },
    });
    assert.equal(limits.credits?.remaining, 7);
    assert.equal((await service.getUserLimits("dave")).rate_limit?.requests, 10);
    await service.deleteUserLimits("dave");
    assert.equal((await service.revokeKeyAsAdmin(id)).status, "REVOKED");
    assert.deepEqual(await service.deleteUser("dave"), { user_id: "dave", deleted_keys: 1 });
  });

  it("manage service credentials", async () => {
    const created = await service.createCredential({ name: "gateway", scopes: ["keys.verify"] });
    const id = created.credential.id;
    const gateway = service.withToken(created.secret);
    assert.deepEqual((await gateway.whoami()).scopes, ["keys.verify"]);
    await refusedWith(gateway.listKeysOfUser("alice"), 403);
    assert.ok((await service.listCredentials()).some((c) => c.id === id));
    assert.equal((await service.getCredential(id)).name, "gateway");
    const rotated = await service.rotateCredential(id, { graceSeconds: 0 });
    assert.notEqual(rotated.secret, created.secret);
    assert.equal((await service.revokeCredential(id)).status, "REVOKED");
    await refusedWith(service.withToken(rotated.secret).whoami(), 401);
  });

  it("manage webhooks and their deliveries", async () => {
    const created = await service.createWebhook({
      url: "http://127.0.0.1:9/hooks",
      events: ["api_key.revoked"],
      description: "billing",
    });
    const id = created.webhook.id;
    assert.ok(created.secret.startsWith("whsec_"));
    assert.ok((await service.listWebhooks()).some((w) => w.id === id));
    assert.equal((await service.getWebhook(id)).description, "billing");
    assert.equal((await service.updateWebhook(id, { description: "ops" })).description, "ops");
    const queued = await service.testWebhook(id);
    assert.ok(queued.event_id);
    const deliveries = await service.listDeliveries(id);
    assert.equal(deliveries.length, 1);
    await service.retryDelivery(id, deliveries[0].id);
    const rotated = await service.rotateWebhookSecret(id);
    assert.notEqual(rotated.secret, created.secret);
    await service.deleteWebhook(id);
    await refusedWith(service.getWebhook(id), 404);
  });
});

describe("errors", () => {
  it("carry keyward's message and detail", async () => {
    const err = await refusedWith(alice.createKey({ name: "", permissions: [] }), 422);
    assert.equal(err.message, "Invalid request");
    assert.match(err.detail, /name/);
  });

  it("a 429 carries retryAfter", async () => {
    const limited = await startKeyward({ USER_WRITE_LIMIT: "1" });
    try {
      const erin = new KeywardClient({
        baseUrl: limited.url,
        token: limited.userToken("erin"),
      });
      await erin.createKey({ name: "one", permissions: [] });
      const err = await refusedWith(erin.createKey({ name: "two", permissions: [] }), 429);
      assert.ok(err.retryAfter > 0, String(err.retryAfter));
      assert.match(err.hint, /^Retry in \d+ s\.$/);
    } finally {
      await limited.stop();
    }
  });

  it("an unreachable keyward is status 0, unavailable", async () => {
    const gone = new KeywardClient({ baseUrl: "http://127.0.0.1:9", token: "t", timeoutMs: 2000 });
    const err = await refusedWith(gone.whoami(), 0);
    assert.ok(err.unavailable);
    assert.equal(await gone.ready(), false);
    assert.equal(await service.ready(), true);
  });

  it("never show the token", () => {
    const shown = [JSON.stringify(service), inspect(service), String(Object.keys(service))];
    for (const text of shown) assert.ok(!text.includes(keyward.serviceToken), text);
  });
});
