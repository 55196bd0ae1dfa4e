/**
 * Runs the whole test suite on Deno (tests and doc examples) and on Bun,
 * then prints one line with the totals over both runtimes.
 *
 * Usage: deno run --allow-run --allow-read --allow-env tools/test.ts [filter]
 *
 * @module
 */

import { localBin } from "./bin.ts";

interface Result {
  runtime: string;
  passed: number;
  failed: number;
}

const filter = Deno.args[0];

async function run(runtime: string, command: string, args: string[], parse: (out: string) => Result) {
  console.log(`\n=== ${runtime}: ${command} ${args.join(" ")}`);
  const child = new Deno.Command(command, {
    args,
    env: { NO_COLOR: "1", FORCE_COLOR: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, Deno.stdout),
    pump(child.stderr, Deno.stderr),
  ]);
  const result = parse(output);
  // A runner that crashed or failed without reporting a failure still counts as one.
  if (!status.success && result.failed === 0) result.failed = 1;
  return result;
}

function parseDeno(out: string): Result {
  const m = /(\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/.exec(out);
  return { runtime: "Deno", passed: m ? Number(m[1]) : 0, failed: m ? Number(m[3]) : 0 };
}

function parseBun(out: string): Result {
  const pass = /^\s*(\d+) pass$/m.exec(out);
  const fail = /^\s*(\d+) fail$/m.exec(out);
  return { runtime: "Bun", passed: pass ? Number(pass[1]) : 0, failed: fail ? Number(fail[1]) : 0 };
}

// --unstable-net: listening with `reusePort` (several processes on one port) needs it on Deno.
const denoArgs = ["test", "--allow-all", "--unstable-net", "--doc", "tests/", "src/", "mod.ts"];
const bunArgs = ["test", "--timeout", "60000", "tests/"];
if (filter) {
  denoArgs.push("--filter", filter);
  bunArgs.push("--test-name-pattern", filter);
}
const results = [
  await run("Deno", localBin("deno"), denoArgs, parseDeno),
  await run("Bun", localBin("bun"), bunArgs, parseBun),
];
console.log("");
for (const r of results) console.log(`${r.runtime}: ${r.passed} passed, ${r.failed} failed`);
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 && passed > 0 ? 0 : 1);
