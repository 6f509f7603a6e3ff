// `npm pack` makes a package that installs and imports in a clean directory: every
// subpath, with no framework installed (the guards import their frameworks' types only).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";

const root = fileURLToPath(new URL("..", import.meta.url));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

it("the packed package installs and imports in a clean directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-pack-"));
  try {
    const packed = JSON.parse(
      execFileSync(npm, ["pack", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8" }),
    );
    const files = packed[0].files.map((f) => f.path);
    assert.ok(files.includes("dist/index.d.ts"), files.join(" "));
    assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), files.join(" "));
    const app = join(dir, "app");
    execFileSync("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", type: "module" }));
    execFileSync(
      npm,
      ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, packed[0].filename)],
      { cwd: app, stdio: "pipe" },
    );
    writeFileSync(
      join(app, "main.mjs"),
      `import { KeywardClient, KeywardError } from "@keyward/client";
import { keyward as express } from "@keyward/client/express";
import { keyward as hono } from "@keyward/client/hono";
import { withKeyward } from "@keyward/client/next";
const client = new KeywardClient({ baseUrl: "http://127.0.0.1:1" });
console.log([typeof KeywardError, typeof express, typeof hono, typeof withKeyward, typeof client.verifyKey].join(","));
`,
    );
    const out = execFileSync("node", ["main.mjs"], { cwd: app, encoding: "utf8" }).trim();
    assert.equal(out, "function,function,function,function,function");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
