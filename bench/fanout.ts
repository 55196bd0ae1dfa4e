/**
 * Fan-out benchmark: a broadcast of `--size` bytes (256) every `--interval` ms
 * (10) to `--subscribers` subscribers (1,000), that is 100,000 deliveries/s, by
 * sock's `Sock.publish` (bench/servers/sock.ts in fanout mode):
 *
 * - one process alone, every subscriber on it;
 * - two processes joined by the Redis backplane (a redis-server started here),
 *   half the subscribers on each; publishes are made on the first, so the
 *   second's subscribers get them through Redis;
 * - for reference, the runtime's own server in one process (`Deno.serve` with a
 *   loop over its sockets, `Bun.serve` with its pub/sub: bench/servers/*_builtin.ts).
 *
 * on Deno and on Bun, driven by bench/load.ts (fan-out mode) on Bun. It prints, per
 * setup, deliveries per second and those missing, p50/p99 latency (all, local,
 * through Redis), the CPU the servers and Redis spent per delivery, and the
 * load generator's own CPU share (near 100% would mean it is the limit); then
 * the targets, and what the measured costs say about more processes and
 * machines.
 *
 * Servers and Redis run on CPU 0, the generator on CPU 1 (`taskset`): on two
 * cores, processes cannot add throughput here, so the comparison is of cost
 * per delivery and of latency, not of capacity. Cells are medians over rounds;
 * runs alternate between setups.
 *
 *   deno run -A bench/fanout.ts [rounds] [--seconds 5] [--subscribers 1000]
 *     [--interval 10] [--size 256] [--runtimes deno,bun] [--quick]
 *
 * Needs /usr/bin/redis-server (and redis-benchmark, from the same package,
 * for Redis's own PUBLISH rate on this machine). The default run (3 rounds)
 * takes about 2 minutes.
 *
 * @module
 */

import * as rig from "./_rig.ts";

const options = rig.driverOptions(Deno.args, { quick: 1, full: 1 });
const flag = (name: string, fallback: string) => options.flags.get(name) ?? fallback;
const seconds = Number(flag("seconds", options.quick ? "2" : "5"));
const subscribers = Number(flag("subscribers", "1000"));
const interval = Number(flag("interval", "10"));
const size = Number(flag("size", "256"));
const runtimes = flag("runtimes", "deno,bun").split(",") as ("deno" | "bun")[];
const REDIS = "/usr/bin/redis-server";

rig.killChildrenOnSignals();

interface Setup {
  runtime: "deno" | "bun";
  processes: 1 | 2;
  /** The runtime's own server (`Deno.serve`, `Bun.serve` with its pub/sub), for reference. */
  builtin: boolean;
  label: string;
}

/** What bench/load.ts reports in fan-out mode (the fields used here). */
interface Report {
  broadcasts: number;
  delivered: number;
  missed: number;
  rate: number;
  p50_ms: number;
  p99_ms: number;
  local?: { p50_ms: number; p99_ms: number };
  remote?: { p50_ms: number; p99_ms: number };
  cpu_share: number;
  cpu_s: Record<string, number>;
}

/** One run's numbers, for the medians. */
interface Numbers {
  rate: number;
  missing: number;
  p50: number;
  p99: number;
  localP50: number;
  remoteP50: number;
  remoteP99: number;
  /** Servers' and Redis's CPU µs per delivery. */
  cpuPerDelivery: number;
  loadShare: number;
}

const setups: Setup[] = runtimes.flatMap((runtime) => [
  { runtime, processes: 1 as const, builtin: false, label: `sock ${runtime}, 1 process` },
  { runtime, processes: 2 as const, builtin: false, label: `sock ${runtime}, 2 processes + Redis` },
  {
    runtime,
    processes: 1 as const,
    builtin: true,
    label: runtime === "deno" ? "Deno.serve, 1 process" : "Bun.serve, 1 process",
  },
]);

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function server(setup: Setup, port: number, redis?: string): rig.Pinned {
  const { runtime } = setup;
  // The built-in servers broadcast to the sender too: the generator's publisher ignores it.
  const args = setup.builtin
    ? [`bench/servers/${runtime}_builtin.ts`, "--port", String(port), "--mode", "broadcast"]
    : ["bench/servers/sock.ts", "--port", String(port), "--mode", "fanout"];
  if (redis) args.push("--redis", redis);
  return runtime === "deno"
    ? new rig.Pinned(0, rig.deno, ["run", "-A", ...args])
    : new rig.Pinned(0, rig.bun, args);
}

async function runOnce(setup: Setup): Promise<Numbers> {
  const started: rig.Pinned[] = [];
  try {
    let redisUrl: string | undefined;
    if (setup.processes === 2) {
      const port = freePort();
      const redis = new rig.Pinned(0, REDIS, [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ]);
      started.push(redis);
      await waitFor(() => redis.stdout.text.includes("Ready to accept connections"), "redis-server");
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    const ports: number[] = [];
    for (let i = 0; i < setup.processes; i++) {
      const port = freePort();
      const child = server(setup, port, redisUrl);
      started.push(child);
      await child.line("listening on ", `server ${i + 1}`, 30000);
      ports.push(port);
    }
    const pids = started.map((child) => child.child.pid);
    const load = new rig.Pinned(1, rig.bun, [
      "bench/load.ts",
      "--mode",
      "fanout",
      "--url",
      ports.map((port) => `ws://127.0.0.1:${port}/room`).join(","),
      "--conns",
      String(subscribers),
      "--interval",
      String(interval),
      "--size",
      String(size),
      "--seconds",
      String(seconds),
      "--warmup",
      "1",
      "--pids",
      pids.join(","),
    ]);
    started.push(load);
    const line = await load.line("LOAD_JSON ", "the load generator", (seconds + 130) * 1000);
    const report = JSON.parse(line) as Report;
    const cpu = Object.values(report.cpu_s).reduce((a, b) => a + b, 0);
    return {
      rate: report.rate,
      missing: report.missed,
      p50: report.p50_ms,
      p99: report.p99_ms,
      localP50: report.local?.p50_ms ?? report.p50_ms,
      remoteP50: report.remote?.p50_ms ?? NaN,
      remoteP99: report.remote?.p99_ms ?? NaN,
      cpuPerDelivery: cpu * 1e6 / Math.max(1, report.delivered),
      loadShare: report.cpu_share,
    };
  } finally {
    for (const child of started.reverse()) await child.kill();
  }
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > 10000) throw new Error(`${what} did not get ready`);
    await rig.sleep(0.02);
  }
}

/**
 * Redis's own PUBLISH rate here (pipelined, from redis-benchmark), with no subscriber and with
 * `SUBSCRIBERS` redis-cli subscribers on the channel: the cost of a publish, and of each copy sent on.
 */
const SUBSCRIBERS = 4;
async function redisRates(): Promise<{ alone: number; fanned: number }> {
  const port = freePort();
  const redis = new rig.Pinned(0, REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--save", ""]);
  const subscribers: rig.Pinned[] = [];
  const rate = () => {
    const out = rig.commandOutput(
      "taskset",
      "-c",
      "1",
      "redis-benchmark",
      "-p",
      String(port),
      "-q",
      "-n",
      "200000",
      "-c",
      "50",
      "-P",
      "16",
      "PUBLISH",
      "ch",
      "x".repeat(size),
    );
    return Number(/([\d.]+) requests per second/.exec(out)?.[1] ?? NaN);
  };
  try {
    await waitFor(() => redis.stdout.text.includes("Ready to accept connections"), "redis-server");
    const alone = rate();
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const child = new rig.Pinned(1, "redis-cli", ["-p", String(port), "SUBSCRIBE", "ch"]);
      subscribers.push(child);
      // Its output is discarded as it comes (Output keeps reading).
    }
    await waitFor(
      () =>
        rig.commandOutput("redis-cli", "-p", String(port), "PUBSUB", "NUMSUB", "ch").endsWith(
          `${SUBSCRIBERS}`,
        ),
      "the subscribers",
    );
    return { alone, fanned: rate() };
  } finally {
    for (const child of subscribers) await child.kill();
    await redis.kill();
  }
}

const start = performance.now();
const results = new Map<Setup, Numbers[]>(setups.map((setup) => [setup, []]));
const failures: string[] = [];
for (let round = 0; round < options.rounds; round++) {
  // Rotated per round, so that no setup always runs first.
  const order = setups.map((_, i) => setups[(i + round) % setups.length]);
  for (const setup of order) {
    try {
      const numbers = await runOnce(setup);
      results.get(setup)!.push(numbers);
      console.error(`round ${round + 1}: ${setup.label}: ${JSON.stringify(numbers)}`);
    } catch (error) {
      failures.push(`round ${round + 1}: ${setup.label}: ${(error as Error).message}`);
    }
  }
}
const redisRate = await redisRates().catch(() => ({ alone: NaN, fanned: NaN }));

const med = (setup: Setup, key: keyof Numbers) => rig.median(results.get(setup)!.map((n) => n[key]));
const fmt = (v: number, digits = 2) => Number.isNaN(v) ? "–" : v.toFixed(digits);
console.log(
  `\n${options.rounds} round(s), ${seconds} s each, in ${
    Math.round((performance.now() - start) / 1000)
  } s: ` +
    `${size} B every ${interval} ms to ${subscribers} subscribers ` +
    `(${Math.round(subscribers * 1000 / interval).toLocaleString("en")} deliveries/s offered)`,
);
rig.printTable(
  "Fan-out (medians)",
  [
    "setup",
    "deliveries/s",
    "missing",
    "p50 ms",
    "p99 ms",
    "local p50",
    "via Redis p50",
    "via Redis p99",
    "CPU µs/delivery",
    "generator CPU",
  ],
  setups.filter((setup) => results.get(setup)!.length).map((setup) => [
    setup.label,
    Math.round(med(setup, "rate")).toLocaleString("en"),
    String(med(setup, "missing")),
    fmt(med(setup, "p50")),
    fmt(med(setup, "p99")),
    fmt(med(setup, "localP50")),
    fmt(med(setup, "remoteP50")),
    fmt(med(setup, "remoteP99")),
    fmt(med(setup, "cpuPerDelivery")),
    rig.pct(med(setup, "loadShare")),
  ]),
);

const targets: string[][] = [];
const paper: string[] = [];
for (const runtime of runtimes) {
  const one = setups.find((s) => s.runtime === runtime && s.processes === 1 && !s.builtin)!;
  const two = setups.find((s) => s.runtime === runtime && s.processes === 2)!;
  if (!results.get(one)!.length || !results.get(two)!.length) continue;
  const offered = subscribers * 1000 / interval;
  const hop = med(two, "remoteP50") - med(one, "p50");
  const p99Ratio = med(two, "remoteP99") / med(one, "p99");
  const cpuRatio = med(two, "cpuPerDelivery") / med(one, "cpuPerDelivery");
  const check = (ok: boolean) => ok ? "met" : "not met";
  const builtin = setups.find((s) => s.runtime === runtime && s.builtin)!;
  if (results.get(builtin)!.length) {
    targets.push([
      `${runtime}: sock, 1 process, against ${builtin.label}`,
      `CPU µs/delivery ${fmt(med(one, "cpuPerDelivery"))} vs ${fmt(med(builtin, "cpuPerDelivery"))}, ` +
      `p50 ${fmt(med(one, "p50"))} vs ${fmt(med(builtin, "p50"))} ms`,
      "reference",
    ]);
  }
  targets.push(
    [
      `${runtime}: every delivery arrives at ${offered.toLocaleString("en")}/s`,
      `${med(one, "missing")} / ${med(two, "missing")} missing`,
      check(med(one, "missing") === 0 && med(two, "missing") === 0),
    ],
    [`${runtime}: Redis hop adds ≤ 1 ms to p50`, `+${fmt(hop)} ms`, check(hop <= 1)],
    [`${runtime}: Redis hop ≤ 2× p99`, `${fmt(p99Ratio)}×`, check(p99Ratio <= 2)],
    [`${runtime}: CPU per delivery ≤ 1.3× one process`, `${fmt(cpuRatio)}×`, check(cpuRatio <= 1.3)],
  );
  // On paper: a process spends c µs of CPU per delivery, so one core carries 1e6 / c
  // deliveries/s, and N processes on M machines (a core each) N·M times that while Redis keeps up.
  const perDelivery = med(one, "cpuPerDelivery");
  paper.push(
    `${runtime}: one process delivers about ${Math.round(1e6 / perDelivery).toLocaleString("en")}/s per ` +
      `core (${fmt(perDelivery)} µs of CPU each, servers and Redis included with 2 processes: ` +
      `${fmt(med(two, "cpuPerDelivery"))} µs); N processes on M machines, a core each: N·M times that.`,
  );
}
// Redis passes each publish on to every process with members of the topic: a publish costs it p µs
// and each copy c µs, so one Redis thread takes 1e6 / (p + c·P) publishes/s for P processes.
const { alone, fanned } = redisRate;
if (!Number.isNaN(alone) && !Number.isNaN(fanned)) {
  const p = 1e6 / alone;
  const c = Math.max(0, (1e6 / fanned - p) / SUBSCRIBERS);
  paper.push(
    `Redis here (redis-benchmark, ${size} B PUBLISH, pipelined): ${
      Math.round(alone).toLocaleString("en")
    }/s ` +
      `with no subscriber, ${Math.round(fanned).toLocaleString("en")}/s with ${SUBSCRIBERS}: ${
        fmt(p)
      } µs a ` +
      `publish, ${fmt(c)} µs per copy sent on. Its one thread then caps publishes/s at:`,
  );
  for (const processes of [2, 8, 32, 128]) {
    const cap = 1e6 / (p + c * processes);
    paper.push(
      `  ${processes} processes: ~${Math.round(cap).toLocaleString("en")} publishes/s ` +
        `(${Math.round(cap * processes).toLocaleString("en")} copies/s); sharded pub/sub (Redis Cluster) ` +
        `spreads topics over shards, each with this cap`,
    );
  }
}
rig.printTable("Targets", ["target", "measured", ""], targets);
if (paper.length) console.log(`\nOn paper, from these costs:\n\n${paper.join("\n")}`);
if (failures.length) console.log(`\nFailed runs:\n${failures.join("\n")}`);
