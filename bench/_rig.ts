/**
 * What the server benchmarks' drivers (bench/servers.ts, bench/http.ts, on
 * Deno) share: their common options, processes pinned to a CPU with the
 * open-file limit raised, a server run (start, load generators, CPU
 * accounting, stop by PID), CPU and RSS readings from /proc, the rounds'
 * order, medians over rounds and markdown tables.
 *
 * Each server runs on CPU 0 and its load generator (on Bun) on CPU 1.
 *
 * @module
 */

import { localBin } from "../tools/bin.ts";
import { cpuSeconds, TICKS_PER_SECOND } from "./_proc.ts";

/** The repository's root, where the processes run. */
const root: string = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** Deno from tools/dev/node_modules/.bin when installed there, else from PATH. */
export const deno: string = localBin("deno");
/** Bun from tools/dev/node_modules/.bin when installed there, else from PATH. */
export const bun: string = localBin("bun");

const decoder = new TextDecoder();

// ---- Options ----------------------------------------------------------------

/** The options both drivers take, read by `driverOptions`. */
export interface DriverOptions {
  /** `--name value` options by name, `--quick` as "". */
  flags: Map<string, string>;
  /** Whether `--quick` (a smoke test) was given. */
  quick: boolean;
  /** Rounds (the first positional argument): 1 with `--quick`, else 3 by default. */
  rounds: number;
  /** `--seconds` per run: 1 with `--quick`, else 3 by default. */
  seconds: number;
  /** `--warmup`: seconds of load before each run's measured window (2 by default, 0.25 with `--quick`). */
  warmup: number;
  /** The load generators' options for those: `--seconds`, `--warmup`. */
  timing: string[];
  /** `--idle-conns`, for the idle-memory scenario. */
  idleConns: number;
  /** The items of `all` named by `--flag id,…` (all of them without it); unknown ids throw. */
  pick<T extends { id: string }>(all: T[], flag: string): T[];
}

/**
 * Reads the drivers' options: `[rounds] [--seconds N] [--warmup N] [--idle-conns N] [--quick]`, and any other
 * `--name value`.
 *
 * @param args The command line (`Deno.args`).
 * @param idleConns `--idle-conns`' defaults, with `--quick` and without.
 * @returns The options; throws on a number that is not positive.
 */
export function driverOptions(args: string[], idleConns: { quick: number; full: number }): DriverOptions {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") flags.set("quick", "");
    else if (arg.startsWith("--")) flags.set(arg.slice(2), args[++i] ?? "");
    else positional.push(arg);
  }
  const quick = flags.has("quick");
  const positiveNumber = (value: string, what: string, integer = true) => {
    const n = Number(value);
    if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`${what} must be a positive number`);
    return n;
  };
  const rounds = positiveNumber(positional[0] ?? (quick ? "1" : "3"), "rounds");
  const seconds = positiveNumber(flags.get("seconds") ?? (quick ? "1" : "3"), "--seconds", false);
  // Long enough for the JIT compilers to have compiled the server's code: in its first seconds a
  // fresh sock server on Bun spends 22-39% of its core in JavaScriptCore's compiler thread (125
  // optimizing compiles taking 1.7 s), and bench (e) with 0.5 s of warm-up measured that more than
  // the handshakes (sock / Bun.serve 0.67-0.74× with 0.5 s, 0.86-0.89× with 3 s, alternating runs).
  const warmup = positiveNumber(flags.get("warmup") ?? (quick ? "0.25" : "2"), "--warmup", false);
  return {
    flags,
    quick,
    rounds,
    seconds,
    warmup,
    timing: ["--seconds", String(seconds), "--warmup", String(warmup)],
    idleConns: positiveNumber(
      flags.get("idle-conns") ?? String(quick ? idleConns.quick : idleConns.full),
      "--idle-conns",
    ),
    pick<T extends { id: string }>(all: T[], flag: string): T[] {
      const ids = flags.get(flag)?.split(",").map((id) => id.trim());
      const unknown = ids?.filter((id) => !all.some((item) => item.id === id));
      if (unknown?.length) throw new Error(`--${flag}: unknown ${unknown.join(", ")}`);
      return ids ? all.filter((item) => ids.includes(item.id)) : all;
    },
  };
}

// ---- Processes --------------------------------------------------------------

/** A child's output, kept (up to 1 MiB) and searchable for lines as they arrive. */
export class Output {
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

/** The processes running now, killed by `killChildrenOnSignals`' handlers. */
const running = new Set<Pinned>();

/** A process pinned to `cpu`, its open-file limit raised; its PID is the command's (bash and taskset exec it). */
export class Pinned {
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

  /** The start of its output, stdout then stderr, trimmed. */
  output(): string {
    return (this.stdout.text.slice(0, 2000) + this.stderr.text.slice(0, 2000)).trim();
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
      const output = this.output();
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

/** On SIGINT or SIGTERM, kills the processes running (servers, load generators) and exits with 130. */
export function killChildrenOnSignals(): void {
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
}

/** A command's standard output, trimmed; its error if it cannot run. */
export function commandOutput(command: string, ...args: string[]): string {
  try {
    const output = new Deno.Command(command, { args, stderr: "null" }).outputSync();
    return decoder.decode(output.stdout).trim();
  } catch (error) {
    return `(${error instanceof Error ? error.message : error})`;
  }
}

/**
 * Throws unless a process may open `needed` files (the hard limit, to which `Pinned` raises it).
 *
 * @param scenario The id of the scenario that needs them, for the message.
 */
export function checkOpenFiles(needed: number, scenario: string): void {
  const limit = Number(commandOutput("bash", "-c", "ulimit -Hn"));
  if (limit < needed) {
    throw new Error(`(${scenario}) needs ${needed} open files per process, the hard limit is ${limit}`);
  }
}

// ---- Readings ---------------------------------------------------------------

/** CPU time (not idle, not I/O wait) of the whole machine, all CPUs, in seconds. */
function busySeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = Deno.readTextFileSync("/proc/stat")
    .split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** A process's resident set size in MiB. */
export function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

/** Resolves after `seconds`. */
export const sleep = (seconds: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// ---- Runs -------------------------------------------------------------------

/** What every load generator reports in its `LOAD_JSON` line (NaN-able fields optional). */
export interface LoadReport {
  rate: number;
  mb_per_s?: number;
  p50_ms?: number;
  p99_ms?: number;
  /** Its CPU share (of one core) over the measured window. */
  cpu_share?: number;
  /** Its CPU seconds since it started. */
  cpu_total_s?: number;
  /** The measured window's length, and the CPU seconds of each process it was told to watch (`--pids`). */
  seconds?: number;
  cpu_s?: Record<string, number>;
}

/** A server under test: its name and how to start it (its port and host are added). */
export interface Server {
  id: string;
  label: string;
  command: string;
  args: string[];
}

/** The numbers every run has; NaN where the scenario has no such number. */
export interface RunNumbers {
  /** What the scenario counts per second; for an idle scenario KiB of server RSS per connection. */
  rate: number;
  /** Payload or body MB/s (10^6 bytes). */
  mb_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** The server's and the load generator's CPU time per second (1 = one core). */
  server_cpu: number;
  load_cpu: number;
  /** CPU time of all other processes on the machine per second of the run: contention. */
  other_cpu: number;
  /**
   * The server's CPU time (µs) per operation counted in `rate`, over the measured window: what it
   * costs, whether or not the server was the bottleneck.
   */
  server_us: number;
  /** Idle scenarios: server RSS in MiB before the connections and with them open. */
  rss_before: number;
  rss_with: number;
}

/** A run without numbers (all NaN), to spread a run's own into. */
export const noNumbers: RunNumbers = {
  rate: NaN,
  mb_per_s: NaN,
  p50_ms: NaN,
  p99_ms: NaN,
  server_cpu: NaN,
  load_cpu: NaN,
  other_cpu: NaN,
  server_us: NaN,
  rss_before: NaN,
  rss_with: NaN,
};

/** A server that did not start. */
export class StartError extends Error {}

/** How long a server may take to print its `listening on` line, in ms. */
const START_TIMEOUT = 10_000;

/** A server under test on CPU 0, and the load generators (on Bun) it started on CPU 1. */
export class ServerRun {
  readonly server: Pinned;
  /** The run, for messages: the server and the scenario. */
  readonly what: string;
  #loads: Pinned[] = [];

  /** Starts `server` on 127.0.0.1:`port`, with `args` after its own and those. */
  constructor(server: Server, scenario: Scenario, readonly port: number, args: string[]) {
    this.what = `${server.label}, (${scenario.id}) ${scenario.label}`;
    this.server = new Pinned(0, server.command, [
      ...server.args,
      ...["--port", String(port), "--host", "127.0.0.1", ...args],
    ]);
  }

  /** The server's PID. */
  get pid(): number {
    return this.server.child.pid;
  }

  /** Starts a load generator: `bun` with `args`, on CPU 1. */
  load(args: string[], stdin: "null" | "piped" = "null"): Pinned {
    const load = new Pinned(1, bun, args, stdin);
    this.#loads.push(load);
    return load;
  }

  /**
   * Runs a load generator to its end. Its report gives the rate, MB/s, latencies and its own CPU
   * share; the server's CPU time per second is taken over the generator's whole run, and so is that
   * of all other processes (the machine's busy time less the server's and the generator's). The
   * generator also reads the server's CPU time over its measured window (`--pids`): per operation.
   *
   * @param timeout ms to wait for the generator's report.
   * @returns The report and the run's numbers (NaN where the report has none).
   */
  async loaded<R extends LoadReport>(
    args: string[],
    timeout: number,
  ): Promise<{ report: R; numbers: RunNumbers }> {
    const pid = this.pid;
    const [cpuBefore, busyBefore, wallBefore] = [cpuSeconds(pid), busySeconds(), performance.now()];
    const report = await this.report<R>(this.load([...args, "--pids", String(pid)]), timeout);
    const serverSeconds = cpuSeconds(pid) - cpuBefore;
    const wall = (performance.now() - wallBefore) / 1000;
    const others = busySeconds() - busyBefore - serverSeconds - (report.cpu_total_s ?? NaN);
    return {
      report,
      numbers: {
        ...noNumbers,
        rate: report.rate,
        mb_per_s: report.mb_per_s ?? NaN,
        p50_ms: report.p50_ms ?? NaN,
        p99_ms: report.p99_ms ?? NaN,
        load_cpu: report.cpu_share ?? NaN,
        server_cpu: serverSeconds / wall,
        other_cpu: Math.max(0, others) / wall,
        server_us: (report.cpu_s?.[pid] ?? NaN) * 1e6 / (report.rate * (report.seconds ?? NaN)),
      },
    };
  }

  /** Waits for a load generator's `LOAD_JSON` line and its successful exit. */
  async report<R extends LoadReport>(load: Pinned, timeout: number): Promise<R> {
    const json = await load.line("LOAD_JSON ", `${this.what}: load generator`, timeout);
    const status = await load.child.status;
    await load.stderr.done;
    if (!status.success) {
      throw new Error(`${this.what}: load generator failed:\n${load.stderr.text.slice(0, 2000)}`);
    }
    return JSON.parse(json);
  }

  /** Kills the load generators, then the server. */
  async stop(): Promise<void> {
    for (const load of this.#loads) await load.kill();
    await this.server.kill();
  }
}

/**
 * Starts a server for a run of `scenario` (see `ServerRun`), waits for its `listening on
 * scheme://127.0.0.1:port` line, runs `body` and stops it all (by PID).
 *
 * @returns `body`'s result; throws a `StartError` if the server did not start, else `body`'s
 * error with the server's output.
 */
export async function withServer<T>(
  server: Server,
  scenario: Scenario,
  port: number,
  scheme: "ws" | "http",
  args: string[],
  body: (run: ServerRun) => Promise<T>,
): Promise<T> {
  const run = new ServerRun(server, scenario, port, args);
  try {
    try {
      await run.server.line(
        `listening on ${scheme}://127.0.0.1:${port}`,
        `${run.what}: server start`,
        START_TIMEOUT,
      );
    } catch (error) {
      throw new StartError(error instanceof Error ? error.message : String(error));
    }
    return await body(run);
  } catch (error) {
    if (error instanceof StartError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const output = run.server.output();
    throw new Error(`${message}${output ? `\nserver output:\n${output}` : ""}`);
  } finally {
    await run.stop();
  }
}

/**
 * Every scenario on every server, `rounds` times, printing `round N/rounds` as each starts. The
 * servers' order rotates per round and per scenario, so runs alternate between servers.
 */
export function* schedule<C, S>(rounds: number, scenarios: C[], servers: S[]): Generator<[C, S]> {
  for (let round = 0; round < rounds; round++) {
    console.log(`round ${round + 1}/${rounds}`);
    for (const [s, scenario] of scenarios.entries()) {
      for (let i = 0; i < servers.length; i++) yield [scenario, servers[(i + round + s) % servers.length]];
    }
  }
}

/** A run's line in the log, up to its numbers: the scenario and the server, padded to `width`. */
export const runLabel = (scenario: Scenario, server: { label: string }, width: number): string =>
  `  (${scenario.id}) ${scenario.label.padEnd(30)} ${server.label.padEnd(width)}`;

/** A loaded run's CPU shares for the log (the machine's others' too if given); "" if not measured. */
export function cpuText(server: number, load: number, others?: number): string {
  if (Number.isNaN(server)) return "";
  return `  cpu: server ${pct(server)} load ${pct(load)}` +
    (others === undefined ? "" : ` others ${pct(others)}`);
}

// ---- Results ----------------------------------------------------------------

/** A scenario as the tables name it. */
export interface Scenario {
  id: string;
  label: string;
}

/** The median of the numbers that are not NaN; NaN if none. */
export function median(values: number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Every run's numbers (`R`), by server and scenario, and their medians over rounds. */
export class Results<R extends { [K in keyof R]: number }> {
  #runs = new Map<string, R[]>();

  /** @param blank What a cell shows where the server has no runs of the scenario. */
  constructor(readonly blank: string) {}

  #key(server: Server, scenario: Scenario): string {
    return `${server.id} ${scenario.id}`;
  }

  /** Records one run's numbers. */
  add(server: Server, scenario: Scenario, result: R): void {
    const key = this.#key(server, scenario);
    this.#runs.set(key, [...this.#runs.get(key) ?? [], result]);
  }

  /** Whether `server` has runs of `scenario`. */
  has(server: Server | undefined, scenario: Scenario): server is Server {
    return !!server && this.#runs.has(this.#key(server, scenario));
  }

  /** All runs' numbers. */
  all(): R[] {
    return [...this.#runs.values()].flat();
  }

  /** The median over `server`'s runs of `scenario` of a field, or of what `value` takes from each. */
  median(server: Server, scenario: Scenario, value: keyof R | ((result: R) => number)): number {
    const pick = typeof value === "function" ? value : (result: R) => result[value];
    return median(this.#runs.get(this.#key(server, scenario))!.map(pick));
  }

  /** `text()` if `server` has runs of `scenario`, else the blank. */
  cell(server: Server, scenario: Scenario, text: () => string): string {
    return this.has(server, scenario) ? text() : this.blank;
  }
}

// ---- Tables -----------------------------------------------------------------

/** Milliseconds, to 2 decimals below 10, else 1. */
export const ms = (v: number): string => v.toFixed(v < 10 ? 2 : 1);
/** A share as a whole percentage. */
export const pct = (v: number): string => `${Math.round(v * 100)}%`;
/** A scenario's name in a table: `(id) label`. */
export const scenarioName = (scenario: Scenario): string => `(${scenario.id}) ${scenario.label}`;

/** Prints a markdown table after a blank line, its title and another; nothing if there are no rows. */
export function printTable(title: string, header: string[], rows: string[][]): void {
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

/** The line before the tables: the rounds, their time and how each run was measured. */
export function printRunSummary(
  options: DriverOptions,
  started: number,
  generator: string,
): void {
  console.log(
    `\n${options.rounds} round(s) in ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
      `${options.seconds} s per run after ${options.warmup} s warm-up; server on CPU 0, ${generator} (Bun) ` +
      `on CPU 1; medians over rounds`,
  );
}

/** Prints the table of latency p50 / p99 and the server's and generator's CPU, per scenario and server. */
export function printLatencies<R extends RunNumbers & { [K in keyof R]: number }>(
  results: Results<R>,
  servers: Server[],
  scenarios: Scenario[],
): void {
  printTable(
    "latency p50 / p99 (ms) · CPU server / load generator (share of one core)",
    ["scenario", ...servers.map((s) => s.label)],
    scenarios.map((scenario) => [
      scenarioName(scenario),
      ...servers.map((server) =>
        results.cell(server, scenario, () => {
          const med = (field: keyof RunNumbers) => results.median(server, scenario, (r) => r[field]);
          return `${ms(med("p50_ms"))} / ${ms(med("p99_ms"))} · ${pct(med("server_cpu"))} / ${
            pct(med("load_cpu"))
          }`;
        })
      ),
    ]),
  );
}

/**
 * Prints an idle scenario's memory table: a row per reading, a column per server, then the ratio
 * columns, filled on the first row (KiB per connection) only.
 *
 * @param rows Each row's label and its cell for a server (called only for servers with runs).
 */
export function printMemory<R extends { [K in keyof R]: number }>(
  results: Results<R>,
  scenario: Scenario,
  servers: Server[],
  rows: [string, (server: Server) => string][],
  ratioColumns: string[],
  ratios: string[],
): void {
  printTable(
    `(${scenario.id}) memory: server RSS (VmRSS); ratios of KiB per connection, above 1 means sock uses less`,
    ["", ...servers.map((s) => s.label), ...ratioColumns],
    rows.map(([label, value], row) => [
      label,
      ...servers.map((server) => results.cell(server, scenario, () => value(server))),
      ...row === 0 ? ratios : ratioColumns.map(() => ""),
    ]),
  );
}

/** A target: a ratio (above 1 means sock is better) and the least it should be. */
export interface Target {
  scenario: Scenario;
  label: string;
  value: number;
  min: number;
}

/** Prints the targets measured (those whose ratio is not NaN), labels padded to `width`. */
export function printTargets(rounds: number, targets: Target[], width: number): void {
  const measured = targets.filter((t) => !Number.isNaN(t.value));
  if (measured.length) console.log(`\ntargets (medians of ${rounds} round(s)):`);
  for (const { scenario, label, value, min } of measured) {
    console.log(
      `  ${value >= min ? "ok  " : "MISS"} (${scenario.id}) ${label.padEnd(width)} ${
        value.toFixed(2)
      }× ≥ ${min}×`,
    );
  }
}
