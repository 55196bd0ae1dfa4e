/**
 * Echo-server benchmark: sock (bench/servers/sock.ts, i.e.
 * examples/echo_server.ts plus a broadcast mode) on Deno and on Bun against
 * Deno's and Bun's built-in WebSocket servers and ws (with bufferutil) on Node
 * (bench/servers/), driven by bench/load.ts on Bun.
 *
 * Beside them run two floors, which are not servers: bench/servers/floor_deno.ts
 * on `Deno.listen` and bench/servers/floor_bun.ts on `Bun.listen`, minimal
 * WebSocket echoes without limits or validation (one write per read's echoes),
 * the least an echo can cost on each runtime's TCP API. "sock / floor" ratios
 * (below 1: what sock's conformance and features cost over that) measure every
 * change against what the runtime allows.
 *
 * Scenarios:
 *
 * - (a) 100 connections × 1 in flight × 32-byte text
 * - (b) 100 × 16 in flight × 32-byte binary
 * - (c) 10 × 4 × 64 KiB binary
 * - (d) 1 × 1 × 1 MiB binary
 * - (e) handshakes per second: 50 loops of connect, upgrade, close
 * - (f) server RSS per idle connection with 10,000 open, and after they close
 * - (g) as (b) with text frames, so UTF-8 validation is in the path
 * - (h) fan-out: 1,000 connections, one 256-byte broadcast every 10 ms
 *
 * Each server starts fresh for each run, pinned to CPU 0 (`taskset -c 0`),
 * with the load generator pinned to CPU 1, both with the open-file limit
 * raised to its hard limit, and is killed by its PID afterwards. Each round
 * runs every scenario on every server, in an order rotated per round, so runs
 * alternate between servers; cells are medians over rounds. Ratios read "above
 * 1 means sock is better": msg/s and handshakes/s are compared as sock / other,
 * fan-out p50 latency and RSS per connection as other / sock.
 *
 * The server's CPU share is its utime + stime over the generator's whole run
 * (so slightly below its loaded share); the generator's comes from
 * bench/load.ts over the measured window, and a summary shows it against sock
 * and against the fastest server it drove, which it drives harder. For (f)
 * the server's VmRSS is read from /proc before the connections, with them
 * open, after they closed, and after a full GC (SIGUSR2, see
 * bench/servers/gc.ts); then once more with them open again and after closing
 * them again, so memory a server keeps but reuses tells from memory it leaks.
 * The generator also reads the server's CPU time at the start and end of its
 * measured window (`--pids`): a table gives it per operation (message echoed,
 * handshake, delivery). Where the server is saturated that says what the
 * throughput says; where it is not (a handshake on `Bun.serve`, one message in
 * flight, fan-out), it is the only measure of what the server spends.
 *
 * The machinery (pinned processes, server runs, CPU and RSS readings, medians
 * and tables) is bench/_rig.ts's, shared with bench/http.ts.
 *
 * Usage:
 *
 *   deno run -A bench/servers.ts [rounds] [--only a,b,…] [--servers sock-deno,…]
 *     [--seconds N] [--warmup N] [--idle-conns N] [--quick] [--base DIR]
 *
 * `rounds` defaults to 3, `--seconds` (per run) to 3, `--warmup` (seconds of load before it) to 2,
 * `--idle-conns` to 10000; servers are sock-deno, sock-bun, deno, bun, ws,
 * floor-deno and floor-bun (`--only` picks scenarios, `--servers` servers).
 * `--quick` is a smoke test: 1 round, 1 s runs, 1,000 idle connections.
 * `--hooks on` adds hooks-deno and hooks-bun: sock with every lifecycle hook and a logger set, with
 * "hooks / sock" ratio columns (what operating a server costs).
 * `--base DIR` adds base-deno and base-bun: DIR's bench/servers/sock.ts (a checkout of an earlier
 * commit, e.g. a `git worktree`), run in the same rounds as the rest, with "now / base" ratio
 * columns: a change's before and after in one run.
 * Deno and Bun come from tools/dev/node_modules/.bin when installed there (else
 * PATH); Node comes from PATH.
 *
 * @module
 */

import * as rig from "./_rig.ts";
import { bun, deno, ms, pct, rssMiB, type RunNumbers, type Server, sleep } from "./_rig.ts";

// ---- Options ----------------------------------------------------------------

const options = rig.driverOptions(Deno.args, { quick: 1000, full: 10000 });
const { flags, quick, rounds, seconds: SECONDS, warmup: WARMUP, idleConns: IDLE_CONNS } = options;
/** Pauses before reading RSS: after the server starts, with the connections open, after they close. */
const SETTLE = quick ? [0.2, 0.5, 1] : [0.5, 1, 2];
/** The wait over asking the server for two full GCs (SIGUSR2) before reading its RSS again. */
const AFTER_GC = quick ? 0.5 : 1;

// ---- Servers and scenarios --------------------------------------------------

/**
 * One run's numbers; NaN where the scenario has no such number. `rate`: echoes, handshakes or broadcast
 * deliveries per second, for (f) KiB of server RSS per connection; `mb_per_s`: payload in the direction
 * measured.
 */
interface Result extends RunNumbers {
  /** (h): broadcasts sent per second, and deliveries that never arrived. */
  broadcasts_per_s: number;
  missed: number;
  /**
   * (f): server RSS in MiB (after `rss_before` and `rss_with`) after they closed, after a full GC;
   * then with them open again and after closing them and a GC again.
   */
  rss_after: number;
  rss_gc: number;
  rss_with2: number;
  rss_gc2: number;
}

type Kind = "echo" | "handshake" | "idle" | "fanout";

interface Scenario {
  id: string;
  label: string;
  kind: Kind;
  /** bench/load.ts options besides --mode, --url and timing. */
  load: string[];
  /** The number ratios compare, and whether lower is better. */
  score: (result: Result) => number;
  lowerIsBetter?: boolean;
  /** One run, in the per-run log. */
  describe: (result: Result) => string;
}

const servers: Server[] = [
  {
    id: "sock-deno",
    label: "sock Deno",
    command: deno,
    args: ["run", "-A", "--v8-flags=--expose-gc", "bench/servers/sock.ts"],
  },
  { id: "sock-bun", label: "sock Bun", command: bun, args: ["bench/servers/sock.ts"] },
  {
    id: "deno",
    label: "Deno built-in",
    command: deno,
    args: ["run", "-A", "--v8-flags=--expose-gc", "bench/servers/deno_builtin.ts"],
  },
  { id: "bun", label: "Bun built-in", command: bun, args: ["bench/servers/bun_builtin.ts"] },
  { id: "ws", label: "ws Node", command: "node", args: ["--expose-gc", "bench/servers/ws_node.mjs"] },
  // Floors, not servers: minimal echoes on each runtime's TCP API (see the files' headers).
  {
    id: "floor-deno",
    label: "Deno floor",
    command: deno,
    args: ["run", "-A", "--v8-flags=--expose-gc", "bench/servers/floor_deno.ts"],
  },
  { id: "floor-bun", label: "Bun floor", command: bun, args: ["bench/servers/floor_bun.ts"] },
];
// `--hooks on`: sock again with every lifecycle hook and a logger set (bench/servers/sock.ts --hooks),
// beside sock without them: what operating a server costs.
if (flags.get("hooks") === "on") {
  servers.push(
    {
      id: "hooks-deno",
      label: "hooks Deno",
      command: deno,
      args: ["run", "-A", "--v8-flags=--expose-gc", "bench/servers/sock.ts", "--hooks", "on"],
    },
    { id: "hooks-bun", label: "hooks Bun", command: bun, args: ["bench/servers/sock.ts", "--hooks", "on"] },
  );
}
const base = flags.get("base");
if (base !== undefined) {
  if (!base) throw new Error("--base needs a directory");
  servers.push(
    {
      id: "base-deno",
      label: "base Deno",
      command: deno,
      args: ["run", "-A", "--v8-flags=--expose-gc", `${base}/bench/servers/sock.ts`],
    },
    { id: "base-bun", label: "base Bun", command: bun, args: [`${base}/bench/servers/sock.ts`] },
  );
}

const int = (v: number) => Number.isNaN(v) ? "–" : Math.round(v).toLocaleString("en-US");
const latencyText = (r: Result) => `p50 ${ms(r.p50_ms)} ms p99 ${ms(r.p99_ms)} ms`;

function echo(id: string, conns: number, inflight: number, size: number, type: "text" | "binary"): Scenario {
  const bytes = size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`;
  return {
    id,
    label: `${conns} × ${inflight} × ${bytes} ${type}`,
    kind: "echo",
    load: [
      ...["--conns", String(conns), "--inflight", String(inflight)],
      ...["--size", String(size), "--type", type],
    ],
    score: (r) => r.rate,
    describe: (r) => `${int(r.rate)} msg/s ${r.mb_per_s.toFixed(1)} MB/s ${latencyText(r)}`,
  };
}

const allScenarios: Scenario[] = [
  echo("a", 100, 1, 32, "text"),
  echo("b", 100, 16, 32, "binary"),
  echo("c", 10, 4, 64 * 1024, "binary"),
  echo("d", 1, 1, 1024 * 1024, "binary"),
  {
    id: "e",
    label: "handshakes, 50 concurrent",
    kind: "handshake",
    load: ["--conns", "50"],
    score: (r) => r.rate,
    describe: (r) => `${int(r.rate)} handshakes/s ${latencyText(r)}`,
  },
  {
    id: "f",
    label: `${IDLE_CONNS.toLocaleString("en-US")} idle conns: RSS`,
    kind: "idle",
    load: ["--conns", String(IDLE_CONNS)],
    score: (r) => r.rate,
    lowerIsBetter: true,
    describe: (r) =>
      `${r.rate.toFixed(2)} KiB/conn; RSS ${r.rss_before.toFixed(1)} → ${r.rss_with.toFixed(1)} → ` +
      `${r.rss_after.toFixed(1)} → ${r.rss_gc.toFixed(1)} after GC; again ${r.rss_with2.toFixed(1)} → ` +
      `${r.rss_gc2.toFixed(1)} MiB`,
  },
  echo("g", 100, 16, 32, "text"),
  {
    id: "h",
    label: "fan-out 1,000 × 256 B / 10 ms",
    kind: "fanout",
    load: ["--conns", "1000", "--size", "256", "--interval", "10"],
    score: (r) => r.p50_ms,
    lowerIsBetter: true,
    describe: (r) =>
      `${int(r.broadcasts_per_s)} broadcasts/s ${int(r.rate)} deliveries/s ${r.missed} missed ${
        latencyText(r)
      }`,
  },
];

const scenarios = options.pick(allScenarios, "only");
const active = options.pick(servers, "servers");

// ---- Runs -------------------------------------------------------------------

let nextPort = 19000 + Math.floor(Math.random() * 500) * 2;

/** bench/load.ts's report. */
interface EchoReport extends rig.LoadReport {
  broadcasts_per_s?: number;
  missed?: number;
}

const noResult: Result = {
  ...rig.noNumbers,
  broadcasts_per_s: NaN,
  missed: NaN,
  rss_after: NaN,
  rss_gc: NaN,
  rss_with2: NaN,
  rss_gc2: NaN,
};

function runOnce(server: Server, scenario: Scenario): Promise<Result> {
  const port = nextPort++;
  const mode = scenario.kind === "fanout" ? "broadcast" : "echo";
  const loadArgs = [
    ...["bench/load.ts", "--mode", scenario.kind, "--url", `ws://127.0.0.1:${port}/`],
    ...scenario.load,
    ...options.timing,
  ];
  return rig.withServer(server, scenario, port, "ws", ["--mode", mode], async (run) => {
    if (scenario.kind === "idle") {
      // Two cycles of open, read RSS, close, read RSS, full GC, read RSS.
      await sleep(SETTLE[0]);
      const rss = [rssMiB(run.pid)];
      const load = run.load([...loadArgs, "--cycles", "2"], "piped");
      const input = load.child.stdin.getWriter();
      for (const cycle of [0, 1]) {
        if (cycle) await input.write(new TextEncoder().encode("open\n"));
        await load.line(`IDLE_OPEN ${cycle} `, `${run.what}: opening`, 90_000);
        await sleep(SETTLE[1]);
        rss.push(rssMiB(run.pid));
        await input.write(new TextEncoder().encode("close\n"));
        await load.line(`IDLE_CLOSED ${cycle} `, `${run.what}: closing`, 60_000);
        await sleep(SETTLE[2]);
        rss.push(rssMiB(run.pid));
        // Twice: V8 frees ArrayBuffer backing stores only after the GC that found them dead.
        for (const _ of [0, 1]) {
          run.server.child.kill("SIGUSR2");
          await sleep(AFTER_GC / 2);
        }
        rss.push(rssMiB(run.pid));
      }
      await input.close();
      await run.report(load, 10_000);
      const [rss_before, rss_with, rss_after, rss_gc, rss_with2, , rss_gc2] = rss;
      const kib = (rss_with - rss_before) * 1024 / IDLE_CONNS;
      return { ...noResult, rate: kib, rss_before, rss_with, rss_after, rss_gc, rss_with2, rss_gc2 };
    }
    const { report, numbers } = await run.loaded<EchoReport>(loadArgs, (WARMUP + SECONDS) * 1000 + 60_000);
    return {
      ...noResult,
      ...numbers,
      broadcasts_per_s: report.broadcasts_per_s ?? NaN,
      missed: report.missed ?? NaN,
    };
  });
}

// ---- Main -------------------------------------------------------------------

if (scenarios.some((s) => s.kind === "idle")) rig.checkOpenFiles(IDLE_CONNS + 1000, "f");

rig.killChildrenOnSignals();
const results = new rig.Results<Result>("–");
const started = performance.now();
for (const [scenario, server] of rig.schedule(rounds, scenarios, active)) {
  const result = await runOnce(server, scenario);
  results.add(server, scenario, result);
  const cpu = rig.cpuText(result.server_cpu, result.load_cpu);
  console.log(`${rig.runLabel(scenario, server, 13)} ${scenario.describe(result)}${cpu}`);
}

// ---- Tables -----------------------------------------------------------------

const has = (server: Server | undefined, scenario: Scenario): server is Server =>
  results.has(server, scenario);
const med = (server: Server, scenario: Scenario, field: keyof Result) =>
  results.median(server, scenario, field);
const score = (server: Server, scenario: Scenario) => results.median(server, scenario, scenario.score);

const byId = (id: string) => servers.find((s) => s.id === id);
const [
  sockDeno,
  sockBun,
  denoBuiltin,
  bunBuiltin,
  wsNode,
  floorDeno,
  floorBun,
  baseDeno,
  baseBun,
  hooksDeno,
  hooksBun,
] = [
  "sock-deno",
  "sock-bun",
  "deno",
  "bun",
  "ws",
  "floor-deno",
  "floor-bun",
  "base-deno",
  "base-bun",
  "hooks-deno",
  "hooks-bun",
].map(byId);
/** sock's advantage over `other`: above 1 means sock is better. */
function advantage(sock: Server | undefined, other: Server | undefined, scenario: Scenario): number {
  if (!has(sock, scenario) || !has(other, scenario)) return NaN;
  const ratio = score(sock, scenario) / score(other, scenario);
  return scenario.lowerIsBetter ? 1 / ratio : ratio;
}
/** The sock server with the better score in `scenario`. */
function bestSock(scenario: Scenario): Server | undefined {
  const [first, second] = [sockDeno, sockBun].filter((s) => has(s, scenario));
  return second && advantage(second, first, scenario) > 1 ? second : first;
}
const ratioText = (v: number) => Number.isNaN(v) ? "–" : `${v.toFixed(2)}×`;
const ratioColumns = [
  "sock Deno / Deno",
  "sock Bun / Bun",
  "sock Deno / floor",
  "sock Bun / floor",
  "best sock / ws",
  ...baseDeno ? ["sock Deno / base", "sock Bun / base"] : [],
  ...hooksDeno ? ["hooks Deno / sock Deno", "hooks Bun / sock Bun"] : [],
];
const ratios = (scenario: Scenario) => [
  ratioText(advantage(sockDeno, denoBuiltin, scenario)),
  ratioText(advantage(sockBun, bunBuiltin, scenario)),
  ratioText(advantage(sockDeno, floorDeno, scenario)),
  ratioText(advantage(sockBun, floorBun, scenario)),
  ratioText(advantage(bestSock(scenario), wsNode, scenario)),
  ...baseDeno
    ? [ratioText(advantage(sockDeno, baseDeno, scenario)), ratioText(advantage(sockBun, baseBun, scenario))]
    : [],
  ...hooksDeno
    ? [ratioText(advantage(hooksDeno, sockDeno, scenario)), ratioText(advantage(hooksBun, sockBun, scenario))]
    : [],
];

const cell = (server: Server, scenario: Scenario, text: () => string) => results.cell(server, scenario, text);
const loaded = scenarios.filter((s) => s.kind !== "idle");
const idle = scenarios.filter((s) => s.kind === "idle");

rig.printRunSummary(options, started, "bench/load.ts");
rig.printTable(
  "throughput: (a)–(d), (g) msg/s · payload MB/s (echoed direction); (e) handshakes/s; " +
    "(h) deliveries/s · missed. Ratios: msg/s and handshakes/s, (h) p50 latency; above 1 means sock is better",
  ["scenario", ...active.map((s) => s.label), ...ratioColumns],
  loaded.map((scenario) => [
    rig.scenarioName(scenario),
    ...active.map((server) =>
      cell(server, scenario, () => {
        const rate = int(med(server, scenario, "rate"));
        if (scenario.kind === "echo") return `${rate} · ${med(server, scenario, "mb_per_s").toFixed(1)}`;
        if (scenario.kind === "fanout") return `${rate} · ${int(med(server, scenario, "missed"))}`;
        return rate;
      })
    ),
    ...ratios(scenario),
  ]),
);
rig.printLatencies(results, active, loaded);
// What the server spends per operation: the same as throughput says where the server is saturated,
// and the only measure where it is not (the load generator or latency limits the rate).
const serverUs = (server: Server, scenario: Scenario) => med(server, scenario, "server_us");
/** How many times `other`'s CPU per operation sock's is: above 1 means sock costs less. */
const cheaper = (sock: Server | undefined, other: Server | undefined, scenario: Scenario) =>
  has(sock, scenario) && has(other, scenario)
    ? ratioText(serverUs(other, scenario) / serverUs(sock, scenario))
    : "–";
rig.printTable(
  "server CPU per operation (µs over the measured window: per message echoed, handshake, delivery). " +
    "Ratios other / sock; above 1 means sock costs less",
  [
    "scenario",
    ...active.map((s) => s.label),
    ...["sock Deno / Deno", "sock Bun / Bun", "sock Deno / floor", "sock Bun / floor"],
    ...baseDeno ? ["sock Deno / base", "sock Bun / base"] : [],
  ],
  loaded.map((scenario) => [
    rig.scenarioName(scenario),
    ...active.map((server) => cell(server, scenario, () => serverUs(server, scenario).toFixed(2))),
    cheaper(sockDeno, denoBuiltin, scenario),
    cheaper(sockBun, bunBuiltin, scenario),
    cheaper(sockDeno, floorDeno, scenario),
    cheaper(sockBun, floorBun, scenario),
    ...baseDeno ? [cheaper(sockDeno, baseDeno, scenario), cheaper(sockBun, baseBun, scenario)] : [],
  ]),
);
const mib = (field: keyof Result) => (server: Server, scenario: Scenario) =>
  med(server, scenario, field).toFixed(1);
const returned = (server: Server, scenario: Scenario) => {
  const [before, open, gc] = (["rss_before", "rss_with", "rss_gc"] as const).map((f) =>
    med(server, scenario, f)
  );
  return pct((open - gc) / (open - before));
};
for (const scenario of idle) {
  const rows: [string, (server: Server, scenario: Scenario) => string][] = [
    ["KiB per idle connection", (server) => med(server, scenario, "rate").toFixed(2)],
    ["RSS before (MiB)", mib("rss_before")],
    [`RSS with ${IDLE_CONNS.toLocaleString("en-US")} open`, mib("rss_with")],
    ["RSS after they closed", mib("rss_after")],
    ["RSS after a full GC", mib("rss_gc")],
    ["increase returned after GC", returned],
    ["RSS with them open again", mib("rss_with2")],
    ["RSS after closing, GC again", mib("rss_gc2")],
  ];
  rig.printMemory(
    results,
    scenario,
    active,
    rows.map(([label, value]) => [label, (server) => value(server, scenario)]),
    ratioColumns,
    ratios(scenario),
  );
}

// The load generator is not the bottleneck if it has CPU to spare, and drives a faster server harder.
if (loaded.length) {
  console.log("\nload generator: its CPU share (of one core) driving sock, and the fastest server it drove");
}
for (const scenario of loaded) {
  const measured = active.filter((s) => has(s, scenario));
  const socks = measured.filter((s) => s === sockDeno || s === sockBun);
  const rate = (server: Server) => med(server, scenario, "rate");
  const parts = socks.map((s) => `${pct(med(s, scenario, "load_cpu"))} with ${s.label} at ${int(rate(s))}/s`);
  const fastest = measured.sort((a, b) => rate(b) - rate(a))[0];
  if (scenario.kind !== "fanout" && fastest && !socks.includes(fastest)) {
    const best = Math.max(...socks.map(rate));
    parts.push(
      `${pct(med(fastest, scenario, "load_cpu"))} with ${fastest.label} at ${int(rate(fastest))}/s` +
        (socks.length ? ` (${(rate(fastest) / best).toFixed(1)}× sock's best)` : ""),
    );
  }
  console.log(`  (${scenario.id}) ${parts.join("; ")}`);
}

// The targets (against the built-ins and the Bun floor as issue 18 sets them), where both sides were
// measured. Bun's built-in server is uWebSockets (uWS).
function targets(scenario: Scenario): rig.Target[] {
  const target = (label: string, value: number, min: number) => ({ scenario, label, value, min });
  if (scenario.kind === "idle") {
    return [
      target("sock Deno vs Deno built-in", advantage(sockDeno, denoBuiltin, scenario), 1),
      target("sock Bun vs 2 KiB/conn", has(sockBun, scenario) ? 2 / score(sockBun, scenario) : NaN, 1),
    ];
  }
  // Many small messages in flight, where the built-in servers' per-message costs show most.
  const manySmall = scenario.id === "b" || scenario.id === "g";
  const vsWs = manySmall ? 2 : scenario.id === "a" ? 1.2 : undefined;
  return [
    target("sock Deno vs Deno built-in", advantage(sockDeno, denoBuiltin, scenario), manySmall ? 5 : 1),
    // (e): handshakes within 10% of uWS's.
    target(
      "sock Bun vs Bun built-in",
      advantage(sockBun, bunBuiltin, scenario),
      scenario.id === "e" ? 0.9 : 1,
    ),
    // (a): one small message at a time, where the runtime's cost per read and write is most of it.
    ...scenario.id === "a"
      ? [target("sock Bun vs Bun floor", advantage(sockBun, floorBun, scenario), 0.95)]
      : [],
    ...vsWs ? [target("best sock vs ws Node", advantage(bestSock(scenario), wsNode, scenario), vsWs)] : [],
  ];
}
rig.printTargets(rounds, scenarios.flatMap(targets), 27);
