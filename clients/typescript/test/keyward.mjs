// A throw-away keyward for the tests, as the Python client's tests start one: the
// binary is $KEYWARD_BIN, else the repository's target/debug/keyward, on a fresh SQLite
// database in a temporary directory, on a free 127.0.0.1 port it reports in its log.

import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../..", import.meta.url));
export const binary = process.env.KEYWARD_BIN ?? join(repo, "target/debug/keyward");

const secret = () => randomBytes(32).toString("base64url");

/** Starts keyward with these more KEYWARD_* settings (names without the prefix). */
export async function startKeyward(settings = {}) {
  const dir = mkdtempSync(join(tmpdir(), "keyward-ts-"));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("KEYWARD_")),
  );
  const jwtSecret = secret();
  Object.assign(env, {
    KEYWARD_BIND: "127.0.0.1:0",
    KEYWARD_DATABASE_URL: `sqlite://${dir}/keyward.db`,
    KEYWARD_JWT_SECRET: jwtSecret,
    KEYWARD_ADMIN_TOKEN: secret(),
    KEYWARD_PEPPER: secret(),
    KEYWARD_LOG_FORMAT: "json",
    KEYWARD_LOG: "info",
    KEYWARD_USER_WRITE_LIMIT: "0",
    KEYWARD_WEBHOOK_ALLOW_PRIVATE: "true",
  });
  for (const [name, value] of Object.entries(settings)) env[`KEYWARD_${name}`] = value;
  const child = spawn(binary, ["serve"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const deadline = Date.now() + 60_000;
  let url;
  while (!url) {
    if (child.exitCode !== null) throw new Error(`keyward exited ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`keyward not ready:\n${log}`);
    for (const line of log.split("\n")) {
      try {
        const record = JSON.parse(line);
        if (typeof record.address === "string") url = record.address;
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  while ((await fetch(`${url}/readyz`).catch(() => null))?.status !== 200) {
    if (Date.now() > deadline) throw new Error(`keyward not ready:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    serviceToken: env.KEYWARD_ADMIN_TOKEN,
    /** An HS256 JWT for `user`, valid for an hour, signed with the server's secret. */
    userToken(user) {
      const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
      const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({
        sub: user,
        exp: Math.floor(Date.now() / 1000) + 3600,
      })}`;
      return `${body}.${createHmac("sha256", jwtSecret).update(body).digest("base64url")}`;
    },
    /** Stops it (SIGTERM, as a service manager would) and removes its directory. */
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
