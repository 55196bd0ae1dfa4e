import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

const coreDir = new URL("../../src/core/", import.meta.url);

/** Every TypeScript file of the core, subfolders included, relative to src/core/. */
const coreFiles = (readdirSync(coreDir, { recursive: true }) as string[])
  .map((name) => name.replaceAll("\\", "/"))
  .filter((name) => name.endsWith(".ts"));

test("src/core refers to no runtime API (Deno, Bun, node:)", () => {
  assert.ok(coreFiles.length >= 14, `expected the core's files, found ${coreFiles.length}`);
  assert.ok(coreFiles.includes("deflate/inflate.ts"), "subfolders are checked too");
  const offenders: string[] = [];
  for (const name of coreFiles) {
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
  for (const name of coreFiles) {
    // Doc comments import the package itself in their examples; only code counts.
    const source = readFileSync(new URL(name, coreDir), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const match of source.matchAll(/\bfrom\s+["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)) {
      const specifier = match[1] ?? match[2];
      assert.match(specifier, /^\.\.?\/[a-z0-9_/.]+\.ts$/, `${name} imports ${specifier}`);
      const target = new URL(specifier, new URL(name, coreDir)).href;
      assert.ok(target.startsWith(coreDir.href), `${name} imports ${specifier}, outside src/core`);
    }
  }
});
