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
 * The machinery (pinned processes, server runs, CPU and RSS readings, medians
 * and tables) is bench/_rig.ts's, shared with bench/servers.ts.
 *
 * Usage:
 *
 *   deno run -A bench/http.ts [rounds] [--only a,b,…] [--servers sock-deno,…]
 *     [--seconds N] [--warmup N] [--idle-conns N] [--quick]
 *
 * `rounds` defaults to 3, `--seconds` (per run) to 3, `--warmup` (seconds of load before it) to 2,
 * `--idle-conns` to 5000; servers are sock-deno, sock-bun, deno, bun and node
 * (`--only` picks scenarios, `--servers` servers). `--quick` is a smoke test:
 * 1 round, 1 s runs, 500 idle connections. The default run takes about 6
 * minutes. Deno and Bun come from tools/dev/node_modules/.bin when installed
 * there (else PATH); Node comes from PATH.
 *
 * @module
 */

import * as rig from "./_rig.ts";
import {
  bun,
  commandOutput,
  deno,
  median,
  ms,
  pct,
  rssMiB,
  type RunNumbers,
  type Server,
  sleep,
} from "./_rig.ts";

// ---- Options ----------------------------------------------------------------

const options = rig.driverOptions(Deno.args, { quick: 500, full: 5000 });
const { quick, rounds, seconds: SECONDS, warmup: WARMUP, idleConns: IDLE_CONNS } = options;
/** Pauses before reading RSS: after the server starts, and with the connections open. */
const SETTLE = quick ? [0.2, 0.3] : [0.5, 0.5];

// ---- Servers and scenarios --------------------------------------------------

/**
 * One run's numbers; NaN where the scenario has no such number. `rate`: responses per second, for (e)
 * KiB of server RSS per connection; `mb_per_s`: response body.
 */
interface Result extends RunNumbers {
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

const scenarios = options.pick(allScenarios, "only");
const active = options.pick(servers, "servers");
rig.killChildrenOnSignals();

// ---- Runs -------------------------------------------------------------------

let nextPort = 21000 + Math.floor(Math.random() * 500) * 2;

const noResult: Result = { ...rig.noNumbers, open_s: NaN };

function runOnce(server: Server, scenario: Scenario): Promise<Result> {
  const port = nextPort++;
  const loadArgs = [
    ...["bench/http_load.ts", "--mode", scenario.kind, "--host", "127.0.0.1", "--port", String(port)],
    ...scenario.load,
    ...options.timing,
  ];
  return rig.withServer(server, scenario, port, "http", [], async (run) => {
    if (scenario.kind === "idle") {
      await sleep(SETTLE[0]);
      const rss_before = rssMiB(run.pid);
      const load = run.load(loadArgs, "piped");
      const { open_s } = JSON.parse(await load.line("IDLE_OPEN ", `${run.what}: opening`, 30_000));
      await sleep(SETTLE[1]);
      const rss_with = rssMiB(run.pid);
      const input = load.child.stdin.getWriter();
      await input.write(new TextEncoder().encode("done\n"));
      await input.close();
      await run.report(load, 10_000);
      return {
        ...noResult,
        rate: (rss_with - rss_before) * 1024 / IDLE_CONNS,
        rss_before,
        rss_with,
        open_s,
      };
    }
    const { numbers } = await run.loaded<rig.LoadReport>(loadArgs, (WARMUP + SECONDS) * 1000 + 60_000);
    return { ...noResult, ...numbers };
  });
}

// ---- Main -------------------------------------------------------------------

const cpuModel = /^model name\s*:\s*(.*)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "unknown";
console.log(`command: deno run -A bench/http.ts${Deno.args.map((a) => ` ${a}`).join("")}`);
const version = (command: string) => commandOutput(command, "--version");
const loadAverage = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
console.log(
  `deno ${version(deno).split("\n")[0].split(" ")[1]} · bun ${version(bun)} · node ${version("node")} · ` +
    `nproc ${commandOutput("nproc")} (${cpuModel}) · load average ${loadAverage}`,
);

if (scenarios.some((s) => s.kind === "idle")) rig.checkOpenFiles(IDLE_CONNS + 1000, "e");

/** A cell is blank where the server failed or did not run. */
const results = new rig.Results<Result>("");
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
for (const [scenario, server] of rig.schedule(rounds, scenarios, active)) {
  if (broken.has(server.id)) continue;
  const prefix = rig.runLabel(scenario, server, 10);
  try {
    const result = await runOnce(server, scenario);
    results.add(server, scenario, result);
    const cpu = rig.cpuText(result.server_cpu, result.load_cpu, result.other_cpu);
    console.log(`${prefix} ${scenario.describe(result)}${cpu}`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof rig.StartError) broken.set(server.id, message);
    else failures.set(key(server, scenario), [...failures.get(key(server, scenario)) ?? [], message]);
    console.log(`${prefix} FAILED${error instanceof rig.StartError ? " to start, skipped from now on" : ""}`);
    for (const line of message.split("\n").slice(0, 6)) console.log(`      ${line}`);
  }
}

// ---- Tables -----------------------------------------------------------------

const has = (server: Server | undefined, scenario: Scenario): server is Server =>
  results.has(server, scenario);
const med = (server: Server, scenario: Scenario, field: keyof Result) =>
  results.median(server, scenario, field);

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

const loadScenarios = scenarios.filter((s) => s.kind === "load");
const idleScenarios = scenarios.filter((s) => s.kind === "idle");

rig.printRunSummary(options, started, "bench/http_load.ts");
rig.printTable(
  "throughput: requests/s; (d) responses/s · MB/s of body. Ratios of requests/s: above 1 means sock is better",
  ["scenario", ...active.map((s) => s.label), ...ratioColumns],
  loadScenarios.map((scenario) => [
    rig.scenarioName(scenario),
    ...active.map((server) =>
      results.cell(server, scenario, () => {
        const rate = int(med(server, scenario, "rate"));
        return scenario.id === "d" ? `${rate} · ${med(server, scenario, "mb_per_s").toFixed(0)}` : rate;
      })
    ),
    ...ratios(scenario),
  ]),
);
rig.printLatencies(results, active, loadScenarios);
for (const scenario of idleScenarios) {
  const mib = (field: keyof Result) => (server: Server) => med(server, scenario, field).toFixed(1);
  const rows: [string, (server: Server) => string][] = [
    ["KiB per idle connection", (server) => med(server, scenario, "rate").toFixed(2)],
    ["RSS before (MiB)", mib("rss_before")],
    [`RSS with ${IDLE_CONNS.toLocaleString("en-US")} open`, mib("rss_with")],
  ];
  rig.printMemory(results, scenario, active, rows, ratioColumns, ratios(scenario));
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
});
rig.printTargets(rounds, targets, 24);

// On a machine of two CPUs, anything else running takes CPU from the server or the generator.
const timed = results.all().map((r) => r.other_cpu).filter((v) => !Number.isNaN(v));
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
