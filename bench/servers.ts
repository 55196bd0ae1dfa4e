/**
 * Echo-server benchmark: sock's examples/echo_server.ts on Deno and on Bun
 * against the runtimes' built-in WebSocket servers (bench/servers/), driven by
 * bench/load.ts on Bun. Each server starts fresh for each run, pinned to CPU 0
 * (`taskset -c 0`), with the load generator pinned to CPU 1, and is killed by
 * its PID afterwards. Each round runs every scenario on every server, in an
 * order rotated per round; cells are medians over rounds.
 *
 * Usage: deno run -A bench/servers.ts [rounds]   (default 3; about 90 s a round)
 *
 * Deno and Bun come from tools/dev/node_modules/.bin when installed there (else
 * PATH).
 *
 * @module
 */

import { localBin } from "../tools/bin.ts";

const root = decodeURIComponent(new URL("../", import.meta.url).pathname);

interface Load {
  msgs_per_s: number;
  mb_per_s: number;
  p50_ms: number;
  p99_ms: number;
  cpu_share: number;
  errors: number;
}

interface Run extends Load {
  /** CPU seconds the server used per second of the run (all its threads). */
  server_cpu: number;
}

interface Server {
  label: string;
  command: string;
  args: string[];
}

interface Scenario {
  label: string;
  conns: number;
  inflight: number;
  size: number;
  type: "text" | "binary";
}

const rounds = Number(Deno.args[0] ?? 3);
if (!Number.isInteger(rounds) || rounds < 1) {
  throw new Error(`rounds must be a positive integer, not ${Deno.args[0]}`);
}
const SECONDS = 3;
const WARMUP = 0.5;

const deno = localBin("deno");
const bun = localBin("bun");

const servers: Server[] = [
  { label: "sock Deno", command: deno, args: ["run", "-A", "examples/echo_server.ts"] },
  { label: "sock Bun", command: bun, args: ["examples/echo_server.ts"] },
  { label: "Deno built-in", command: deno, args: ["run", "-A", "bench/servers/deno_builtin.ts"] },
  { label: "Bun built-in", command: bun, args: ["bench/servers/bun_builtin.ts"] },
];
const scenarios: Scenario[] = [
  { label: "100 conns × 1 × 32 B text", conns: 100, inflight: 1, size: 32, type: "text" },
  { label: "100 conns × 16 × 32 B binary", conns: 100, inflight: 16, size: 32, type: "binary" },
  { label: "10 conns × 4 × 64 KiB binary", conns: 10, inflight: 4, size: 65536, type: "binary" },
];

const TICKS_PER_SECOND = 100; // USER_HZ, fixed at 100 on Linux
/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

let nextPort = 19000 + Math.floor(Math.random() * 500) * 2;
const decoder = new TextDecoder();

/** Collects a stream's text; resolves `found` once `marker` has appeared. */
function watch(stream: ReadableStream<Uint8Array>, marker: string) {
  let text = "";
  let resolveFound = () => {};
  const found = new Promise<void>((resolve) => (resolveFound = resolve));
  const done = (async () => {
    for await (const chunk of stream) {
      if (text.length < 1 << 16) text += decoder.decode(chunk, { stream: true });
      if (text.includes(marker)) resolveFound();
    }
  })();
  return { found, done, text: () => text };
}

async function runOnce(server: Server, scenario: Scenario): Promise<Run> {
  const port = nextPort++;
  const child = new Deno.Command("taskset", {
    args: ["-c", "0", server.command, ...server.args, "--port", String(port), "--host", "127.0.0.1"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // taskset execs the server, so this PID is the server's own.
  const pid = child.pid;
  const out = watch(child.stdout, `listening on ws://127.0.0.1:${port}`);
  const err = watch(child.stderr, "\u0000");
  try {
    const started = await Promise.race([
      out.found.then(() => true),
      child.status.then(() => false),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 10_000)),
    ]);
    if (!started) throw new Error(`${server.label} did not start:\n${out.text()}${err.text()}`);
    const cpuBefore = cpuSeconds(pid);
    const wallBefore = performance.now();
    const load = await new Deno.Command("taskset", {
      args: [
        "-c",
        "1",
        bun,
        "bench/load.ts",
        ...["--url", `ws://127.0.0.1:${port}/`, "--conns", String(scenario.conns)],
        ...["--inflight", String(scenario.inflight), "--size", String(scenario.size)],
        ...["--type", scenario.type, "--seconds", String(SECONDS), "--warmup", String(WARMUP)],
      ],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    // Includes handshakes and warm-up, so a slight underestimate of the loaded share.
    const serverCpu = (cpuSeconds(pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000);
    const stdout = decoder.decode(load.stdout);
    const line = stdout.split("\n").find((l) => l.startsWith("LOAD_JSON "));
    if (!load.success || !line) {
      throw new Error(
        `load against ${server.label} (${scenario.label}) failed:\n${stdout}${decoder.decode(load.stderr)}` +
          `\nserver stderr:\n${err.text().slice(0, 2000)}`,
      );
    }
    return { ...(JSON.parse(line.slice("LOAD_JSON ".length)) as Load), server_cpu: serverCpu };
  } finally {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone; child.status below reports how it ended.
    }
    await child.status;
    await Promise.all([out.done, err.done]).catch(() => {});
  }
}

const results = new Map<string, Run[]>();
const key = (server: Server, scenario: Scenario) => `${server.label}\n${scenario.label}`;
const started = performance.now();
for (let round = 0; round < rounds; round++) {
  console.log(`round ${round + 1}/${rounds}`);
  for (const [s, scenario] of scenarios.entries()) {
    for (let i = 0; i < servers.length; i++) {
      const server = servers[(i + round + s) % servers.length];
      const run = await runOnce(server, scenario);
      const runs = results.get(key(server, scenario)) ?? [];
      runs.push(run);
      results.set(key(server, scenario), runs);
      console.log(
        `  ${scenario.label.padEnd(30)} ${server.label.padEnd(13)} ` +
          `${Math.round(run.msgs_per_s).toLocaleString("en-US").padStart(10)} msg/s ` +
          `${run.mb_per_s.toFixed(1).padStart(8)} MB/s  p50 ${run.p50_ms.toFixed(2)} ms ` +
          `p99 ${run.p99_ms.toFixed(2)} ms  cpu: server ${Math.round(run.server_cpu * 100)}% ` +
          `load ${Math.round(run.cpu_share * 100)}%`,
      );
    }
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
const med = (server: Server, scenario: Scenario, field: keyof Run) =>
  median(results.get(key(server, scenario))!.map((run) => run[field]));

const int = (v: number) => Math.round(v).toLocaleString("en-US");
const mb = (v: number) => v.toFixed(v < 100 ? 1 : 0);
const [sockDeno, sockBun, denoBuiltin, bunBuiltin] = servers;
const ratio = (a: Server, b: Server, scenario: Scenario) =>
  `${(med(a, scenario, "msgs_per_s") / med(b, scenario, "msgs_per_s")).toFixed(2)}×`;

function print(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const format = (cells: string[]) =>
    "| " + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ") + " |";
  console.log(`\n${title}\n`);
  console.log(format(header));
  console.log(
    "|" + widths.map((w, i) => i === 0 ? `-${"-".repeat(w)}-` : `${"-".repeat(w + 1)}:`).join("|") + "|",
  );
  for (const row of rows) console.log(format(row));
}

console.log(
  `\n${rounds} rounds in ${((performance.now() - started) / 1000).toFixed(0)} s; ${SECONDS} s per run ` +
    `after ${WARMUP} s warm-up; server on CPU 0, bench/load.ts (Bun) on CPU 1; medians over rounds`,
);
print(
  "throughput: msg/s, payload MB/s (echoed direction); ratios of msg/s, above 1 means sock is faster",
  ["scenario", ...servers.map((s) => s.label), "sock Deno / Deno", "sock Bun / Bun"],
  scenarios.map((scenario) => [
    scenario.label,
    ...servers.map((server) =>
      `${int(med(server, scenario, "msgs_per_s"))} · ${mb(med(server, scenario, "mb_per_s"))}`
    ),
    ratio(sockDeno, denoBuiltin, scenario),
    ratio(sockBun, bunBuiltin, scenario),
  ]),
);
print(
  "latency p50 / p99 (ms) and CPU (server / load generator, share of one core)",
  ["scenario", ...servers.map((s) => s.label)],
  scenarios.map((scenario) => [
    scenario.label,
    ...servers.map((server) =>
      `${med(server, scenario, "p50_ms").toFixed(2)} / ${med(server, scenario, "p99_ms").toFixed(2)}` +
      ` · ${Math.round(med(server, scenario, "server_cpu") * 100)}% / ` +
      `${Math.round(med(server, scenario, "cpu_share") * 100)}%`
    ),
  ]),
);
