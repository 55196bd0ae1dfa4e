import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

const coreDir = new URL("../src/core/", import.meta.url);

test("src/core refers to no runtime API (Deno, Bun, node:)", () => {
  const files = readdirSync(coreDir).filter((name) => name.endsWith(".ts"));
  assert.ok(files.length >= 10, `expected the core's files, found ${files.length}`);
  const offenders: string[] = [];
  for (const name of files) {
    const source = readFileSync(new URL(name, coreDir), "utf8");
    source.split("\n").forEach((line, i) => {
      if (/\bDeno\.|\bBun\.|["']node:|\brequire\(|\bprocess\./.test(line)) {
        offenders.push(`${name}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offenders, []);
});

test("src/core imports only files inside src/core", () => {
  for (const name of readdirSync(coreDir).filter((n) => n.endsWith(".ts"))) {
    // Doc comments import the package itself in their examples; only code counts.
    const source = readFileSync(new URL(name, coreDir), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const match of source.matchAll(/\bfrom\s+["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)) {
      const specifier = match[1] ?? match[2];
      assert.match(specifier, /^\.\/[a-z0-9_]+\.ts$/, `${name} imports ${specifier}`);
    }
  }
});
