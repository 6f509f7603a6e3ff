// The README's examples, type-checked by `npm test` (tsconfig.examples.json): they must
// compile against the package as published (its subpath exports and their types).
import express from "express";
import { Hono } from "hono";

import { KeywardClient, KeywardError } from "@keyward/client";
import { keyward as expressGuard } from "@keyward/client/express";
import { keyward as honoGuard } from "@keyward/client/hono";
import { withKeyward } from "@keyward/client/next";

export async function client(key: string, clientIp: string): Promise<void> {
  const keyward = new KeywardClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.KEYWARD_TOKEN });
  try {
    const verdict = await keyward.verifyKey(key, { permissions: ["READ_GRAPH"], clientIp, cost: 1 });
    if (verdict.valid) console.log(verdict.user_id, verdict.key_id, verdict.remaining);
  } catch (err) {
    if (err instanceof KeywardError && err.status === 429) console.log(err.retryAfter);
  }
}

const client_ = new KeywardClient({ baseUrl: "http://127.0.0.1:8080", token: "t" });

const app = express();
app.get("/graphs", expressGuard({ client: client_, permissions: ["READ_GRAPH"] }), (req, res) => {
  res.json({ user: req.keyward!.userId });
});

const hono = new Hono();
const guard = honoGuard({ client: client_, permissions: ["READ_GRAPH"], clientIp: () => "127.0.0.1" });
hono.get("/graphs", guard, (c) => c.json({ user: c.get("keyward").userId }));

export const GET = withKeyward(
  async (_request, _context: { params: Promise<Record<string, string>> }, key) =>
    Response.json({ user: key.userId }),
  { client: client_, permissions: ["READ_GRAPH"] },
);
