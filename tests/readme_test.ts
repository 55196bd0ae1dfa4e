// README's first server and client run as written: the block under "Install and a first server" is
// run on this runtime in a child process, with `@sock/sock` mapped to this checkout's mod.ts (JSR
// is what a user installs it from) and its port 9001 moved to a free one.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { spawnScript } from "./_hardening.ts";

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

test("README: the first server and client run as written and print the echo", async () => {
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Install and a first server"));
  const code = /```ts\n([^]*?)```/.exec(section)?.[1];
  assert.ok(code, "the section has a TypeScript block");
  assert.ok(code.split("\n").filter((line) => line.trim()).length <= 12, "it stays short");
  const mod = new URL("../mod.ts", import.meta.url).href;
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "sock-readme-"));
  const script = join(dir, "first.ts");
  await writeFile(
    script,
    code.replaceAll('"@sock/sock"', JSON.stringify(mod)).replaceAll("9001", String(port)),
  );
  const child = spawnScript(new URL(`file://${script}`), []);
  try {
    await child.line(/^hello$/, 20_000);
    assert.equal(await child.exited, 0, "it exits by itself once the client and server closed");
  } finally {
    child.kill();
    await rm(dir, { recursive: true, force: true });
  }
});
