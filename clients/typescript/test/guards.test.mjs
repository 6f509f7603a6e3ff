// Each guard in a real framework (an Express app on a socket, a Hono app, a Next.js
// route handler) in front of a real keyward: the same answers from all three, from the
// shared refusal table, and the handler runs only for a key keyward let through.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import express from "express";
import { Hono } from "hono";

import { KeywardClient, REFUSALS } from "../dist/index.js";
import { keyward as expressGuard } from "../dist/express.js";
import { keyward as honoGuard } from "../dist/hono.js";
import { withKeyward } from "../dist/next.js";
import { startKeyward } from "./keyward.mjs";

const REQUIRED = ["READ_GRAPH", "EXECUTE_GRAPH"];
const text = (kind) => REFUSALS.refusals[kind].detail;

let server;
let verifier;
let service;

before(async () => {
  server = await startKeyward();
  service = new KeywardClient({ baseUrl: server.url, token: server.serviceToken });
  // The guards hold a credential that can verify keys and nothing else.
  const { secret } = await service.createCredential({ name: "guards", scopes: ["keys.verify"] });
  verifier = service.withToken(secret);
});
after(async () => server?.stop());

/** An app of each framework, with its handler calls counted; `call(headers)`. */
async function frameworks(client) {
  const seen = { calls: 0 };
  const identity = (key) => {
    seen.calls += 1;
    return { user: key.userId, key: key.keyId, permissions: key.permissions };
  };

  const app = express();
  app.get("/graphs", expressGuard({ client, permissions: REQUIRED }), (req, res) => {
    res.json(identity(req.keyward));
  });
  const listening = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const port = listening.address().port;

  const hono = new Hono();
  hono.get("/graphs", honoGuard({ client, permissions: REQUIRED }), (c) =>
    c.json(identity(c.get("keyward"))),
  );

  const GET = withKeyward(async (_request, _context, key) => Response.json(identity(key)), {
    client,
    permissions: REQUIRED,
  });

  const read = async (response) => ({
    status: response.status,
    body: await response.json(),
    headers: response.headers,
  });
  return {
    seen,
    close: () => new Promise((resolve) => listening.close(resolve)),
    calls: {
      express: async (headers) =>
        read(await fetch(`http://127.0.0.1:${port}/graphs`, { headers })),
      hono: async (headers) => read(await hono.request("/graphs", { headers })),
      next: async (headers) =>
        read(await GET(new Request("http://service/graphs", { headers }), { params: {} })),
    },
  };
}

async function key(body) {
  const created = await service.createKeyForUser("alice", { permissions: REQUIRED, ...body });
  return created;
}

describe("every guard answers alike", () => {
  let apps;
  before(async () => {
    apps = await frameworks(verifier);
  });
  after(async () => apps?.close());

  for (const name of ["express", "hono", "next"]) {
    it(`${name}: lets a valid key through with its identity, and refuses the rest`, async () => {
      const call = apps.calls[name];
      const before = apps.seen.calls;
      const valid = await key({ name: `${name} valid` });
      for (const headers of [
        { "X-API-Key": valid.plain_text_key },
        { Authorization: `Bearer ${valid.plain_text_key}` },
      ]) {
        const answer = await call(headers);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.user, "alice");
        assert.equal(answer.body.key, valid.api_key.id);
      }

      const missing = await call({});
      assert.deepEqual([missing.status, missing.body], [401, { detail: text("MISSING_KEY") }]);
      assert.equal(missing.headers.get("www-authenticate"), "Bearer");
      // A blank X-API-Key hides a bearer key, as in keyward-guard.
      const blank = await call({ "X-API-Key": " ", Authorization: `Bearer ${valid.plain_text_key}` });
      assert.equal(blank.status, 401);

      const invalid = await call({ "X-API-Key": "agpt_not_a_key" });
      assert.deepEqual([invalid.status, invalid.body], [401, { detail: text("INVALID") }]);

      const narrow = await service.createKeyForUser("alice", {
        name: `${name} narrow`,
        permissions: ["READ_GRAPH"],
      });
      const lacking = await call({ "X-API-Key": narrow.plain_text_key });
      assert.deepEqual(
        [lacking.status, lacking.body],
        [403, { detail: "Missing required permission(s): EXECUTE_GRAPH" }],
      );

      const limited = await key({
        name: `${name} limited`,
        rate_limit: { requests: 1, per_seconds: 3600 },
      });
      assert.equal((await call({ "X-API-Key": limited.plain_text_key })).status, 200);
      const over = await call({ "X-API-Key": limited.plain_text_key });
      assert.deepEqual([over.status, over.body], [429, { detail: text("RATE_LIMITED") }]);
      assert.ok(Number(over.headers.get("retry-after")) >= 1);

      const credits = await key({ name: `${name} credits`, remaining: 1 });
      assert.equal((await call({ "X-API-Key": credits.plain_text_key })).status, 200);
      const spent = await call({ "X-API-Key": credits.plain_text_key });
      assert.deepEqual([spent.status, spent.body], [403, { detail: text("USAGE_EXCEEDED") }]);

      const bound = await key({ name: `${name} bound`, allowed_ips: ["203.0.113.0/24"] });
      const elsewhere = await call({ "X-API-Key": bound.plain_text_key });
      assert.deepEqual(
        [elsewhere.status, elsewhere.body],
        [403, { detail: text("IP_NOT_ALLOWED") }],
      );

      await service.revokeKeyAsAdmin(valid.api_key.id);
      const revoked = await call({ "X-API-Key": valid.plain_text_key });
      assert.deepEqual([revoked.status, revoked.body], [401, { detail: text("INVALID") }]);

      assert.equal(apps.seen.calls - before, 4, "the handler ran for the passes only");
    });
  }
});

describe("guards fail closed", () => {
  it("an unreachable keyward is 503 from every guard, never a pass", async () => {
    const gone = new KeywardClient({ baseUrl: "http://127.0.0.1:9", token: "t", timeoutMs: 2000 });
    const apps = await frameworks(gone);
    try {
      const { plain_text_key } = await key({ name: "while down" });
      for (const [name, call] of Object.entries(apps.calls)) {
        const answer = await call({ "X-API-Key": plain_text_key });
        assert.deepEqual([answer.status, answer.body], [503, { detail: text("UNAVAILABLE") }], name);
      }
      assert.equal(apps.seen.calls, 0);
    } finally {
      await apps.close();
    }
  });

  it("a credential keyward refuses is a 500 for this service, never a pass", async () => {
    const wrong = service.withToken("not-a-credential-of-this-keyward");
    const apps = await frameworks(wrong);
    try {
      const { plain_text_key } = await key({ name: "misconfigured" });
      for (const [name, call] of Object.entries(apps.calls)) {
        const answer = await call({ "X-API-Key": plain_text_key });
        assert.deepEqual([answer.status, answer.body], [500, { detail: "Internal error" }], name);
      }
      assert.equal(apps.seen.calls, 0);
    } finally {
      await apps.close();
    }
  });
});

describe("guards refuse what is not a clean pass", () => {
  /** A client whose keyward answers 200 with `body`, whatever is asked. */
  const answering = (body) =>
    new KeywardClient({
      baseUrl: "http://keyward.test",
      token: "t",
      fetch: async () =>
        new Response(body, { status: 200, headers: { "Content-Type": "application/json" } }),
    });

  it("a 200 that is not a verdict, or a code no verdict has, never passes", async () => {
    for (const [body, status] of [
      ["null", 503],
      ["{}", 503],
      ['{"code":"toString","valid":true,"user_id":"u","key_id":"k"}', 401],
      ['{"code":"__proto__","valid":true,"user_id":"u","key_id":"k"}', 401],
      ['{"code":"VALID","valid":true}', 503],
      ['{"code":"VALID","valid":false,"user_id":"u","key_id":"k"}', 503],
    ]) {
      const apps = await frameworks(answering(body));
      try {
        for (const [name, call] of Object.entries(apps.calls)) {
          const answer = await call({ "X-API-Key": "agpt_whatever" });
          assert.equal(answer.status, status, `${name}: ${body}`);
        }
        assert.equal(apps.seen.calls, 0, body);
      } finally {
        await apps.close();
      }
    }
  });

  it("a permission keyward does not know is this service's mistake: 500", async () => {
    const app = express();
    app.get("/x", expressGuard({ client: verifier, permissions: ["NOT_A_PERMISSION"] }), (_q, r) =>
      r.json({}),
    );
    const listening = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const { plain_text_key } = await key({ name: "unknown permission" });
      const answer = await fetch(`http://127.0.0.1:${listening.address().port}/x`, {
        headers: { "X-API-Key": plain_text_key },
      });
      assert.deepEqual([answer.status, await answer.json()], [500, { detail: "Internal error" }]);
    } finally {
      await new Promise((resolve) => listening.close(resolve));
    }
  });

  it("a clientIp that throws, or is no address, counts as no address", async () => {
    const bound = await key({ name: "bound, odd address", allowed_ips: ["203.0.113.0/24"] });
    const open = await key({ name: "open, odd address" });
    for (const clientIp of [
      () => {
        throw new Error("no socket");
      },
      () => "unknown",
      () => "::1]/x?[",
    ]) {
      const app = express();
      app.get("/x", expressGuard({ client: verifier, permissions: REQUIRED, clientIp }), (_q, r) =>
        r.json({ ok: true }),
      );
      const listening = await new Promise((resolve) => {
        const s = app.listen(0, "127.0.0.1", () => resolve(s));
      });
      const url = `http://127.0.0.1:${listening.address().port}/x`;
      try {
        const refused = await fetch(url, { headers: { "X-API-Key": bound.plain_text_key } });
        assert.equal(refused.status, 403, String(clientIp));
        const passed = await fetch(url, { headers: { "X-API-Key": open.plain_text_key } });
        assert.equal(passed.status, 200, String(clientIp));
      } finally {
        await new Promise((resolve) => listening.close(resolve));
      }
    }
  });
});
