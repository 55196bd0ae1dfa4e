/**
 * HTTP/1.1 server benchmark: sock's `Sock` as a plain HTTP server
 * (bench/servers/http_sock.ts, its `fetch` option) on Deno and on Bun against
 * `Deno.serve`, `Bun.serve` and Node's `node:http`, all in one run, driven by
 * bench/http_load.ts on Bun. sock, Deno and Bun run the same web-standard
 * fetch handler (bench/servers/http_deno.ts); Node runs its equivalent
 * (bench/servers/http_node.mjs).
 *
 * Scenarios:
 *
 * - (a) `GET /hello`, keep-alive, 100 connections × 1 request in flight: requests/s
 * - (b) as (a) pipelined, 16 requests in flight per connection: requests/s
 * - (c) `POST /json` with a 1 KiB JSON body, 100 × 1: requests/s
 * - (d) `GET /stream`, a 1 MiB chunked body, 10 × 1: responses/s and MB/s
 * - (e) server RSS per idle keep-alive connection: 5,000 connections, one
 *   `GET /hello` each, left open; KiB per connection from the server's VmRSS
 *   (/proc/PID/status) before they opened and with them open
 *
 * Each server starts fresh for each run, pinned to CPU 0 (`taskset -c 0`),
 * with the load generator pinned to CPU 1, both with the open-file limit raised
 * to its hard limit, and is killed by its PID afterwards. Each round runs every
 * scenario on every server, in an order rotated per round, so runs alternate
 * between servers; cells are medians over rounds. A server that does not start
 * is left out of the rest of the run, and a failed run is left out of the
 * medians: its cells stay blank and the failures are listed at the end. Ratios
 * read "above 1 means sock is better": requests/s as sock / other, RSS per
 * connection as other / sock. The targets: sock on Deno at least 1.0× Deno.serve,
 * sock on Bun at least 0.7× Bun.serve, either at least 1.0× node:http.
 *
 * Servers run with their defaults, keep-alive timeouts included (node:http 5 s,
 * sock 5 s, Bun.serve 10 s): (e) reads the RSS within about 2 s of opening the
 * first connection, and a connection the server closes fails the run.
 *
 * The server's CPU share is its utime + stime over the generator's whole run
 * (so slightly below its loaded share); the generator's comes from
 * bench/http_load.ts over the measured window: near 100% means the generator,
 * not the server, may be the limit. The machine's other CPU use over the run
 * (/proc/stat's busy time less the server's and the generator's) is logged per
 * run and summed up at the end: on two CPUs, anything else running (a test
 * suite, a build) takes from the server or the generator.
 *
 * Usage:
 *
 *   deno run -A bench/http.ts [rounds] [--only a,b,…] [--servers sock-deno,…]
 *     [--seconds N] [--idle-conns N] [--quick]
 *
 * `rounds` defaults to 3, `--seconds` (per run, after 0.5 s of warm-up) to 3,
 * `--idle-conns` to 5000; servers are sock-deno, sock-bun, deno, bun and node
 * (`--only` picks scenarios, `--servers` servers). `--quick` is a smoke test:
 * 1 round, 1 s runs, 500 idle connections. The default run takes about 4
 * minutes. Deno and Bun come from tools/dev/node_modules/.bin when installed
 * there (else PATH); Node comes from PATH.
 *
 * @module
 */

import { localBin } from "../tools/bin.ts";

const root = decodeURIComponent(new URL("../", import.meta.url).pathname);

// ---- Options ----------------------------------------------------------------

const flags = new Map<string, string>();
const positional: string[] = [];
for (let i = 0; i < Deno.args.length; i++) {
  const arg = Deno.args[i];
  if (arg === "--quick") flags.set("quick", "");
  else if (arg.startsWith("--")) flags.set(arg.slice(2), Deno.args[++i] ?? "");
  else positional.push(arg);
}
const quick = flags.has("quick");
const positiveNumber = (value: string, what: string, integer = true) => {
  const n = Number(value);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`${what} must be a positive number`);
  return n;
};
const rounds = positiveNumber(positional[0] ?? (quick ? "1" : "3"), "rounds");
const SECONDS = positiveNumber(flags.get("seconds") ?? (quick ? "1" : "3"), "--seconds", false);
const WARMUP = quick ? 0.25 : 0.5;
const IDLE_CONNS = positiveNumber(flags.get("idle-conns") ?? (quick ? "500" : "5000"), "--idle-conns");
/** Pauses before reading RSS: after the server starts, and with the connections open. */
const SETTLE = quick ? [0.2, 0.3] : [0.5, 0.5];
/** How long a server may take to print its `listening on` line. */
const START_TIMEOUT = 10_000;

const deno = localBin("deno");
const bun = localBin("bun");

// ---- Servers and scenarios --------------------------------------------------

interface Server {
  id: string;
  label: string;
  command: string;
  args: string[];
}

/** One run's numbers; NaN where the scenario has no such number. */
interface Result {
  /** Responses per second; for (e) KiB of server RSS per connection. */
  rate: number;
  /** Response body MB/s (10^6 bytes). */
  mb_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** The server's and the load generator's CPU time per second (1 = one core). */
  server_cpu: number;
  load_cpu: number;
  /** CPU time of all other processes on the machine per second of the run: contention. */
  other_cpu: number;
  /** (e): server RSS in MiB before the connections and with them open. */
  rss_before: number;
  rss_with: number;
  /** (e): seconds the generator took to open the connections and get their responses. */
  open_s: number;
}

interface Scenario {
  id: string;
  label: string;
  kind: "load" | "idle";
  /** bench/http_load.ts options besides --mode, --port and timing. */
  load: string[];
  /** Whether the score (`rate`) is better lower. */
  lowerIsBetter?: boolean;
  /** One run, in the per-run log. */
  describe: (result: Result) => string;
}

const servers: Server[] = [
  { id: "sock-deno", label: "sock Deno", command: deno, args: ["run", "-A", "bench/servers/http_sock.ts"] },
  { id: "sock-bun", label: "sock Bun", command: bun, args: ["bench/servers/http_sock.ts"] },
  { id: "deno", label: "Deno.serve", command: deno, args: ["run", "-A", "bench/servers/http_deno.ts"] },
  { id: "bun", label: "Bun.serve", command: bun, args: ["bench/servers/http_bun.ts"] },
  { id: "node", label: "node:http", command: "node", args: ["bench/servers/http_node.mjs"] },
];

const int = (v: number) => Number.isNaN(v) ? "" : Math.round(v).toLocaleString("en-US");
const ms = (v: number) => v.toFixed(v < 10 ? 2 : 1);
const pct = (v: number) => `${Math.round(v * 100)}%`;
const latencyText = (r: Result) => `p50 ${ms(r.p50_ms)} ms p99 ${ms(r.p99_ms)} ms`;

function loaded(id: string, label: string, target: string, conns: number, inflight: number): Scenario {
  return {
    id,
    label,
    kind: "load",
    load: ["--target", target, "--conns", String(conns), "--inflight", String(inflight)],
    describe: (r) =>
      `${int(r.rate)} req/s${target === "stream" ? ` ${r.mb_per_s.toFixed(0)} MB/s` : ""} ${latencyText(r)}`,
  };
}

const allScenarios: Scenario[] = [
  loaded("a", "GET hello, 100 × 1", "hello", 100, 1),
  loaded("b", "GET hello, 100 × 16 pipelined", "hello", 100, 16),
  loaded("c", "POST 1 KiB JSON, 100 × 1", "json", 100, 1),
  loaded("d", "GET 1 MiB stream, 10 × 1", "stream", 10, 1),
  {
    id: "e",
    label: `${IDLE_CONNS.toLocaleString("en-US")} idle conns: RSS`,
    kind: "idle",
    load: ["--conns", String(IDLE_CONNS)],
    lowerIsBetter: true,
    describe: (r) =>
      `${r.rate.toFixed(2)} KiB/conn; RSS ${r.rss_before.toFixed(1)} → ${r.rss_with.toFixed(1)} MiB; ` +
      `opened in ${r.open_s.toFixed(2)} s`,
  },
];

const pick = <T extends { id: string }>(all: T[], flag: string): T[] => {
  const ids = flags.get(flag)?.split(",").map((id) => id.trim());
  const unknown = ids?.filter((id) => !all.some((item) => item.id === id));
  if (unknown?.length) throw new Error(`--${flag}: unknown ${unknown.join(", ")}`);
  return ids ? all.filter((item) => ids.includes(item.id)) : all;
};
const scenarios = pick(allScenarios, "only");
const active = pick(servers, "servers");

// ---- Processes --------------------------------------------------------------

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A child's output, kept (up to 1 MiB) and searchable for lines as they arrive. */
class Output {
  text = "";
  ended = false;
  readonly done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      try {
        for await (const chunk of stream) {
          if (this.text.length < 1 << 20) this.text += decoder.decode(chunk, { stream: true });
          this.#wake();
        }
      } finally {
        this.ended = true;
        this.#wake();
      }
    })().catch(() => {});
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** The first complete line starting with `prefix`, without it; undefined if the stream ends first. */
  async line(prefix: string): Promise<string | undefined> {
    while (true) {
      const line = this.text.split("\n").slice(0, -1).find((l) => l.startsWith(prefix));
      if (line !== undefined) return line.slice(prefix.length);
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/** The processes running now, killed if this one is interrupted. */
const running = new Set<Pinned>();

/** A process pinned to `cpu`, its open-file limit raised; its PID is the command's (bash and taskset exec it). */
class Pinned {
  readonly child: Deno.ChildProcess;
  readonly stdout: Output;
  readonly stderr: Output;

  constructor(cpu: number, command: string, args: string[], stdin: "null" | "piped" = "null") {
    this.child = new Deno.Command("bash", {
      args: ["-c", 'ulimit -n "$(ulimit -Hn)" && exec taskset -c "$0" "$@"', String(cpu), command, ...args],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    running.add(this);
    this.stdout = new Output(this.child.stdout);
    this.stderr = new Output(this.child.stderr);
  }

  /**
   * The first stdout line starting with `prefix`; an error with the output if the process ends or
   * `timeout` ms pass first.
   */
  async line(prefix: string, what: string, timeout: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const line = await Promise.race([
      this.stdout.line(prefix),
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), timeout)),
    ]);
    clearTimeout(timer);
    if (line === undefined) {
      const output = (this.stdout.text.slice(0, 2000) + this.stderr.text.slice(0, 2000)).trim();
      throw new Error(`${what}: no "${prefix.trim()}" line${output ? `\n${output}` : ""}`);
    }
    return line;
  }

  /** Kills the process unless it has exited, then waits for it and its output. */
  async kill(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    const status = await this.child.status;
    await Promise.all([this.stdout.done, this.stderr.done]);
    running.delete(this);
    return status;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    for (const process of running) {
      try {
        process.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    Deno.exit(130);
  });
}

const TICKS_PER_SECOND = 100; // USER_HZ, fixed at 100 on Linux
/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU time (not idle, not I/O wait) of the whole machine, all CPUs, in seconds. */
function busySeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = Deno.readTextFileSync("/proc/stat")
    .split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** A process's resident set size in MiB. */
function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// ---- Runs -------------------------------------------------------------------

let nextPort = 21000 + Math.floor(Math.random() * 500) * 2;

/** bench/http_load.ts's report. */
interface LoadReport {
  rate: number;
  mb_per_s?: number;
  p50_ms?: number;
  p99_ms?: number;
  cpu_share?: number;
  cpu_total_s?: number;
}

const noResult: Result = {
  rate: NaN,
  mb_per_s: NaN,
  p50_ms: NaN,
  p99_ms: NaN,
  server_cpu: NaN,
  load_cpu: NaN,
  other_cpu: NaN,
  rss_before: NaN,
  rss_with: NaN,
  open_s: NaN,
};

/** A server that did not start: it is left out of the rest of the run. */
class StartError extends Error {}

async function runOnce(server: Server, scenario: Scenario): Promise<Result> {
  const port = nextPort++;
  const what = `${server.label}, (${scenario.id}) ${scenario.label}`;
  const serverProcess = new Pinned(0, server.command, [
    ...server.args,
    ...["--port", String(port), "--host", "127.0.0.1"],
  ]);
  const pid = serverProcess.child.pid;
  const loadArgs = [
    "bench/http_load.ts",
    ...["--mode", scenario.kind, "--host", "127.0.0.1", "--port", String(port), ...scenario.load],
    ...["--seconds", String(SECONDS), "--warmup", String(WARMUP)],
  ];
  let load: Pinned | undefined;
  try {
    try {
      await serverProcess.line(
        `listening on http://127.0.0.1:${port}`,
        `${what}: server start`,
        START_TIMEOUT,
      );
    } catch (error) {
      throw new StartError(error instanceof Error ? error.message : String(error));
    }
    if (scenario.kind === "idle") {
      await sleep(SETTLE[0]);
      const rss_before = rssMiB(pid);
      load = new Pinned(1, bun, loadArgs, "piped");
      const { open_s } = JSON.parse(await load.line("IDLE_OPEN ", `${what}: opening`, 30_000));
      await sleep(SETTLE[1]);
      const rss_with = rssMiB(pid);
      const input = load.child.stdin.getWriter();
      await input.write(encoder.encode("done\n"));
      await input.close();
      await loadReport(load, what, 10_000);
      return { ...noResult, rate: (rss_with - rss_before) * 1024 / IDLE_CONNS, rss_before, rss_with, open_s };
    }
    const [cpuBefore, busyBefore, wallBefore] = [cpuSeconds(pid), busySeconds(), performance.now()];
    load = new Pinned(1, bun, loadArgs);
    const report = await loadReport(load, what, (WARMUP + SECONDS) * 1000 + 60_000);
    const serverSeconds = cpuSeconds(pid) - cpuBefore;
    const wall = (performance.now() - wallBefore) / 1000;
    const others = busySeconds() - busyBefore - serverSeconds - (report.cpu_total_s ?? NaN);
    return {
      ...noResult,
      rate: report.rate,
      mb_per_s: report.mb_per_s ?? NaN,
      p50_ms: report.p50_ms ?? NaN,
      p99_ms: report.p99_ms ?? NaN,
      load_cpu: report.cpu_share ?? NaN,
      server_cpu: serverSeconds / wall,
      other_cpu: Math.max(0, others) / wall,
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof StartError) throw error;
    const output = (serverProcess.stdout.text.slice(0, 2000) + serverProcess.stderr.text.slice(0, 2000))
      .trim();
    throw new Error(`${message}${output ? `\nserver output:\n${output}` : ""}`);
  } finally {
    await load?.kill();
    await serverProcess.kill();
  }
}

/** Waits for the generator's `LOAD_JSON` line and its successful exit. */
async function loadReport(load: Pinned, what: string, timeout: number): Promise<LoadReport> {
  const json = await load.line("LOAD_JSON ", `${what}: load generator`, timeout);
  const status = await load.child.status;
  await load.stderr.done;
  if (!status.success) throw new Error(`${what}: load generator failed:\n${load.stderr.text.slice(0, 2000)}`);
  return JSON.parse(json);
}

// ---- Main -------------------------------------------------------------------

/** A command's standard output, trimmed; its error if it cannot run. */
function run(command: string, ...args: string[]): string {
  try {
    const output = new Deno.Command(command, { args, stderr: "null" }).outputSync();
    return decoder.decode(output.stdout).trim();
  } catch (error) {
    return `(${error instanceof Error ? error.message : error})`;
  }
}

const cpuModel = /^model name\s*:\s*(.*)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "unknown";
console.log(`command: deno run -A bench/http.ts${Deno.args.map((a) => ` ${a}`).join("")}`);
console.log(
  `deno ${run(deno, "--version").split("\n")[0].split(" ")[1]} · bun ${run(bun, "--version")} · ` +
    `node ${run("node", "--version")} · nproc ${run("nproc")} (${cpuModel}) · load average ${
      Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
    }`,
);

if (scenarios.some((s) => s.kind === "idle")) {
  const limit = Number(run("bash", "-c", "ulimit -Hn"));
  if (limit < IDLE_CONNS + 1000) {
    throw new Error(`(e) needs ${IDLE_CONNS + 1000} open files per process, the hard limit is ${limit}`);
  }
}

const results = new Map<string, Result[]>();
const failures = new Map<string, string[]>();
/** Servers that did not start, with why. */
const broken = new Map<string, string>();
const key = (server: Server, scenario: Scenario) => `${server.id} ${scenario.id}`;
/** A failure in one line: its first two (what failed, then the first error or output line). */
function summary(text: string): string {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  return lines.slice(0, 2).join(" — ") || text;
}
const started = performance.now();
for (let round = 0; round < rounds; round++) {
  console.log(`round ${round + 1}/${rounds}`);
  for (const [s, scenario] of scenarios.entries()) {
    for (let i = 0; i < active.length; i++) {
      const server = active[(i + round + s) % active.length];
      if (broken.has(server.id)) continue;
      const prefix = `  (${scenario.id}) ${scenario.label.padEnd(30)} ${server.label.padEnd(10)}`;
      try {
        const result = await runOnce(server, scenario);
        results.set(key(server, scenario), [...results.get(key(server, scenario)) ?? [], result]);
        const cpu = Number.isNaN(result.server_cpu)
          ? ""
          : `  cpu: server ${pct(result.server_cpu)} load ${pct(result.load_cpu)} ` +
            `others ${pct(result.other_cpu)}`;
        console.log(`${prefix} ${scenario.describe(result)}${cpu}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (error instanceof StartError) broken.set(server.id, message);
        else failures.set(key(server, scenario), [...failures.get(key(server, scenario)) ?? [], message]);
        console.log(`${prefix} FAILED${error instanceof StartError ? " to start, skipped from now on" : ""}`);
        for (const line of message.split("\n").slice(0, 6)) console.log(`      ${line}`);
      }
    }
  }
}

// ---- Tables -----------------------------------------------------------------

function median(values: number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
const has = (server: Server | undefined, scenario: Scenario): server is Server =>
  !!server && results.has(key(server, scenario));
const med = (server: Server, scenario: Scenario, field: keyof Result) =>
  median(results.get(key(server, scenario))!.map((r) => r[field]));

const byId = (id: string) => active.find((s) => s.id === id);
const [sockDeno, sockBun, denoServe, bunServe, nodeHttp] = ["sock-deno", "sock-bun", "deno", "bun", "node"]
  .map(byId);
/** sock's advantage over `other`: above 1 means sock is better. */
function advantage(sock: Server | undefined, other: Server | undefined, scenario: Scenario): number {
  if (!has(sock, scenario) || !has(other, scenario)) return NaN;
  const ratio = med(sock, scenario, "rate") / med(other, scenario, "rate");
  return scenario.lowerIsBetter ? 1 / ratio : ratio;
}
const ratioText = (v: number) => Number.isNaN(v) ? "" : `${v.toFixed(2)}×`;
/** The ratio columns whose two servers both ran. */
const pairs = ([
  ["sock Deno / Deno", sockDeno, denoServe],
  ["sock Bun / Bun", sockBun, bunServe],
  ["sock Deno / Node", sockDeno, nodeHttp],
  ["sock Bun / Node", sockBun, nodeHttp],
] as const).filter(([, sock, other]) => sock && other);
const ratioColumns = pairs.map(([label]) => label);
const ratios = (scenario: Scenario) =>
  pairs.map(([, sock, other]) => ratioText(advantage(sock, other, scenario)));

function print(title: string, header: string[], rows: string[][]): void {
  if (!rows.length) return;
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

/** A cell: blank where the server failed or did not run. */
const cell = (server: Server, scenario: Scenario, text: () => string) => has(server, scenario) ? text() : "";
const name = (scenario: Scenario) => `(${scenario.id}) ${scenario.label}`;
const loadScenarios = scenarios.filter((s) => s.kind === "load");
const idleScenarios = scenarios.filter((s) => s.kind === "idle");

console.log(
  `\n${rounds} round(s) in ${((performance.now() - started) / 1000).toFixed(0)} s; ${SECONDS} s per run ` +
    `after ${WARMUP} s warm-up; server on CPU 0, bench/http_load.ts (Bun) on CPU 1; medians over rounds`,
);
print(
  "throughput: requests/s; (d) responses/s · MB/s of body. Ratios of requests/s: above 1 means sock is better",
  ["scenario", ...active.map((s) => s.label), ...ratioColumns],
  loadScenarios.map((scenario) => [
    name(scenario),
    ...active.map((server) =>
      cell(server, scenario, () => {
        const rate = int(med(server, scenario, "rate"));
        return scenario.id === "d" ? `${rate} · ${med(server, scenario, "mb_per_s").toFixed(0)}` : rate;
      })
    ),
    ...ratios(scenario),
  ]),
);
print(
  "latency p50 / p99 (ms) · CPU server / load generator (share of one core)",
  ["scenario", ...active.map((s) => s.label)],
  loadScenarios.map((scenario) => [
    name(scenario),
    ...active.map((server) =>
      cell(
        server,
        scenario,
        () =>
          `${ms(med(server, scenario, "p50_ms"))} / ${ms(med(server, scenario, "p99_ms"))} · ` +
          `${pct(med(server, scenario, "server_cpu"))} / ${pct(med(server, scenario, "load_cpu"))}`,
      )
    ),
  ]),
);
for (const scenario of idleScenarios) {
  const mib = (field: keyof Result) => (server: Server) => med(server, scenario, field).toFixed(1);
  const rows: [string, (server: Server) => string][] = [
    ["KiB per idle connection", (server) => med(server, scenario, "rate").toFixed(2)],
    ["RSS before (MiB)", mib("rss_before")],
    [`RSS with ${IDLE_CONNS.toLocaleString("en-US")} open`, mib("rss_with")],
  ];
  print(
    `(${scenario.id}) memory: server RSS (VmRSS); ratios of KiB per connection, above 1 means sock uses less`,
    ["", ...active.map((s) => s.label), ...ratioColumns],
    rows.map(([label, value], row) => [
      label,
      ...active.map((server) => cell(server, scenario, () => value(server))),
      ...row === 0 ? ratios(scenario) : ratioColumns.map(() => ""),
    ]),
  );
}

// The targets, where both sides were measured.
const targets = scenarios.flatMap((scenario) => {
  const target = (label: string, value: number, min: number) => ({ scenario, label, value, min });
  return [
    target("sock Deno vs Deno.serve", advantage(sockDeno, denoServe, scenario), 1),
    target("sock Bun vs Bun.serve", advantage(sockBun, bunServe, scenario), 0.7),
    target("sock Deno vs node:http", advantage(sockDeno, nodeHttp, scenario), 1),
    target("sock Bun vs node:http", advantage(sockBun, nodeHttp, scenario), 1),
  ];
}).filter((t) => !Number.isNaN(t.value));
if (targets.length) console.log(`\ntargets (medians of ${rounds} round(s)):`);
for (const { scenario, label, value, min } of targets) {
  console.log(
    `  ${value >= min ? "ok  " : "MISS"} (${scenario.id}) ${label.padEnd(24)} ${ratioText(value)} ≥ ${min}×`,
  );
}

// On a machine of two CPUs, anything else running takes CPU from the server or the generator.
const timed = [...results.values()].flat().map((r) => r.other_cpu).filter((v) => !Number.isNaN(v));
if (timed.length) {
  const busy = timed.filter((v) => v > 0.15).length;
  console.log(
    `\nother processes' CPU during the loaded runs (share of one core): median ${pct(median(timed))}, ` +
      `max ${pct(Math.max(...timed))}` +
      (busy ? `; ${busy} of ${timed.length} runs above 15%, their numbers are less reliable` : ""),
  );
}

if (broken.size || failures.size) console.log("\nfailures (blank cells):");
for (const [id, message] of broken) console.log(`  ${id}: did not start: ${summary(message)}`);
for (const [runKey, messages] of failures) {
  const [id, scenario] = runKey.split(" ");
  console.log(`  ${id} (${scenario}): ${messages.length} failed run(s): ${summary(messages[0])}`);
}
