/**
 * What the benches' Bun-side code shares: the parts of Bun's TCP API it uses
 * (declared here instead of depending on bun-types), and for the load
 * generators (bench/load.ts, bench/http_load.ts) their number options, the
 * run's state, errors and `LOAD_JSON` report, the measured window, the latency
 * histogram, the requests kept in flight, client connections with writes that
 * wait for `drain`, and the lines driving them on standard input. The
 * floor server bench/servers/floor_bun.ts uses the Bun declarations.
 *
 * Nothing here runs when imported: a load generator calls `run.start()` once
 * its options are read.
 *
 * @module
 */

import process from "node:process";
import { option } from "../examples/args.ts";
import { cpuSeconds } from "./_proc.ts";

// ---- Bun --------------------------------------------------------------------

/** A TCP socket of `Bun.connect` or `Bun.listen`, carrying `data`. */
export interface BunSocket<T> {
  data: T;
  write(data: Uint8Array): number;
  end(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}

/** The callbacks of a `Bun.listen` socket. */
export interface BunSocketHandlers<T> {
  open(socket: BunSocket<T>): void;
  data(socket: BunSocket<T>, data: Uint8Array): void;
  drain(socket: BunSocket<T>): void;
  close(socket: BunSocket<T>): void;
  error(socket: BunSocket<T>, error: Error): void;
}

/** A SHA-1 hasher (`Bun.CryptoHasher`). */
export interface BunHasher {
  update(data: string): BunHasher;
  digest(encoding: "base64"): string;
}

/** The parts of Bun's API the benches use. */
export interface BunApi {
  version: string;
  connect<T>(options: {
    hostname: string;
    port: number;
    data: T;
    socket: BunSocketHandlers<T> & { connectError(socket: BunSocket<T>, error: Error): void };
  }): Promise<BunSocket<T>>;
  listen<T>(options: { hostname: string; port: number; socket: BunSocketHandlers<T> }): { port: number };
  CryptoHasher: new (algorithm: "sha1") => BunHasher;
}

/** Bun's global, typed as far as used here. */
export const Bun: BunApi = (globalThis as unknown as { Bun: BunApi }).Bun;

// ---- Options ----------------------------------------------------------------

/**
 * The number after `--name` on the command line.
 *
 * @param name The option's name, without dashes.
 * @param fallback The value when the option is absent.
 * @param integer Whether it must be a whole number.
 * @param zero Whether 0 is allowed (else it must be above 0).
 * @returns The number; throws if it is not one of those allowed.
 */
export function numberOption(name: string, fallback: string, integer = true, zero = false): number {
  const value = Number(option(name, fallback));
  if (!(zero ? value >= 0 : value > 0) || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be ${zero ? "≥ 0" : "> 0"}${integer ? ", a whole number" : ""}`);
  }
  return value;
}

// ---- The run ----------------------------------------------------------------

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A measured window's length, this process's CPU time and share of one core, and other processes' CPU. */
export interface WindowNumbers {
  seconds: number;
  cpu_share: number;
  cpu_user_s: number;
  cpu_system_s: number;
  /** CPU seconds of each process watched (by PID) over the window. */
  cpu_s?: Record<string, number>;
}

/** Measures a window: its length, this process's CPU time and share of one core, and that of `pids`. */
export class Window {
  #wall = performance.now();
  #cpu = process.cpuUsage();
  #pids: number[];
  #pidCpu: number[];

  /** @param pids Other processes whose CPU seconds over the window are reported too. */
  constructor(pids: number[] = []) {
    this.#pids = pids;
    this.#pidCpu = pids.map(cpuSeconds);
  }

  /** The window so far: seconds, CPU share, user and system CPU seconds, rounded to ms. */
  end(): WindowNumbers {
    const seconds = (performance.now() - this.#wall) / 1000;
    const cpu = process.cpuUsage();
    const user = (cpu.user - this.#cpu.user) / 1e6;
    const system = (cpu.system - this.#cpu.system) / 1e6;
    const round = (v: number) => Number(v.toFixed(3));
    const others = this.#pids.map((pid, i) => [pid, round(cpuSeconds(pid) - this.#pidCpu[i])]);
    return {
      seconds: round(seconds),
      cpu_share: round((user + system) / seconds),
      cpu_user_s: round(user),
      cpu_system_s: round(system),
      ...others.length ? { cpu_s: Object.fromEntries(others) } : {},
    };
  }
}

/**
 * A load generator's run: whether it is measuring or stopping, its first
 * errors (any fails it) and its end, one `LOAD_JSON {...}` line.
 */
export class LoadRun {
  /** Whether counts and latencies are being recorded (the measured window). */
  measuring = false;
  /** Whether the run is ending: connections closing now are expected to. */
  stopping = false;
  /** The first errors, up to 10. */
  readonly errors: string[] = [];
  #header: Record<string, unknown> = {};
  /** `--pids`: processes (servers) whose CPU seconds the measured window reports. */
  #pids: number[] = [];

  /**
   * Starts watching: the run ends (failed) within 50 ms of an error, or at `deadline`.
   *
   * @param header The report's first fields (mode and what is loaded).
   * @param deadline Seconds after which the run fails if it has not ended; none if undefined.
   */
  start(header: Record<string, unknown>, deadline?: number): void {
    this.#header = header;
    this.#pids = option("pids", "").split(",").filter(Boolean).map(Number);
    setInterval(() => this.errors.length && this.finish(undefined), 50);
    if (deadline === undefined) return;
    setTimeout(() => {
      this.fail("timed out");
      this.finish(undefined);
    }, deadline * 1000);
  }

  /** Records an error: the run fails. */
  fail(message: string): void {
    if (this.errors.length < 10) this.errors.push(message);
  }

  /**
   * Waits `warmup` seconds, then measures for `seconds` with `measuring` set.
   *
   * @returns The measured window, with the CPU seconds of the `--pids` processes over it.
   */
  async measure(warmup: number, seconds: number): Promise<WindowNumbers> {
    await sleep(warmup * 1000);
    const window = new Window(this.#pids);
    this.measuring = true;
    await sleep(seconds * 1000);
    this.measuring = false;
    return window.end();
  }

  /**
   * Prints the report (after the header, the runtime, and before this process's CPU seconds since
   * it started), then the first errors, and exits: 1 if anything failed or there is no report.
   */
  finish(report: Record<string, unknown> | undefined): never {
    this.stopping = true;
    this.measuring = false;
    if (report) {
      const cpu = process.cpuUsage();
      const cpu_total_s = Number(((cpu.user + cpu.system) / 1e6).toFixed(3));
      const runtime = `bun ${Bun.version}`;
      console.log(`LOAD_JSON ${JSON.stringify({ ...this.#header, runtime, ...report, cpu_total_s })}`);
    }
    for (const message of this.errors) console.error(message);
    process.exit(this.errors.length || !report ? 1 : 0);
  }
}

/** This process's run. */
export const run: LoadRun = new LoadRun();

/** Latencies in 10 µs buckets up to 10 s, the last bucket catching the rest. */
export class Histogram {
  static readonly BUCKET_MS = 0.01;
  #buckets = new Uint32Array(1_000_001);
  count = 0;

  /** Records a latency of `ms` milliseconds. */
  record(ms: number): void {
    const bucket = Math.floor(ms / Histogram.BUCKET_MS);
    this.#buckets[bucket < this.#buckets.length ? bucket : this.#buckets.length - 1]++;
    this.count++;
  }

  /** The `p` quantile in ms, rounded to µs; NaN when empty. */
  percentile(p: number): number {
    const rank = Math.max(1, Math.ceil(this.count * p));
    let seen = 0;
    for (let b = 0; b < this.#buckets.length; b++) {
      seen += this.#buckets[b];
      if (seen >= rank) return Number(((b + 0.5) * Histogram.BUCKET_MS).toFixed(3));
    }
    return NaN;
  }

  /** The median and the 99th percentile, for a report. */
  quantiles(): { p50_ms: number; p99_ms: number } {
    return { p50_ms: this.percentile(0.5), p99_ms: this.percentile(0.99) };
  }
}

/**
 * The requests (or messages) in flight on a connection, kept at a number: each one answered is
 * replaced by a new one. Their send times are a ring, oldest first; while the run measures, each
 * answer's latency (from the write of its request to the read that completed it) goes to a histogram,
 * whose `count` is then the answers in the measured window.
 */
export class InFlight {
  #sent: Float64Array;
  #head = 0;
  #tail = 0;
  /** How many are in flight. */
  count = 0;

  /**
   * @param capacity The most in flight at once.
   * @param latency Where the latencies go.
   * @param write Writes `n` (≤ capacity) requests.
   */
  constructor(capacity: number, readonly latency: Histogram, readonly write: (n: number) => void) {
    this.#sent = new Float64Array(capacity);
  }

  /** Writes `n` requests, stamped `now`. */
  send(n: number, now: number): void {
    const sent = this.#sent;
    this.count += n;
    for (let i = 0; i < n; i++) {
      sent[this.#tail] = now;
      this.#tail = this.#tail + 1 === sent.length ? 0 : this.#tail + 1;
    }
    this.write(n);
  }

  /** The `n` oldest were answered: records their latencies while measuring; sends `n` more unless stopping. */
  answered(n: number): void {
    const sent = this.#sent;
    const now = performance.now();
    this.count -= n;
    for (let k = 0; k < n; k++) {
      if (run.measuring) this.latency.record(now - sent[this.#head]);
      this.#head = this.#head + 1 === sent.length ? 0 : this.#head + 1;
    }
    if (!run.stopping) this.send(n, now);
  }
}

// ---- Connections ------------------------------------------------------------

/**
 * One client connection (`Bun.connect`): writes that wait for `drain`, and
 * the socket's events passed on to the subclass.
 */
export abstract class BunClient {
  socket: BunSocket<BunClient> | undefined;
  /** Resolves when the subclass calls `resolveReady` (connected, upgraded, answered…). */
  readonly ready: Promise<void>;
  protected resolveReady!: () => void;
  /** Whether this connection failed a check (and closed itself). */
  failed = false;
  #pending: Uint8Array[] = [];

  constructor(readonly id: number) {
    this.ready = new Promise((resolve) => this.resolveReady = resolve);
  }

  /** Connects; `opened` is called once connected. */
  abstract connect(): void;

  /** Called with each chunk the socket reads. */
  abstract data(chunk: Uint8Array): void;

  /** Called once connected. */
  abstract opened(): void;

  /** Connects to `hostname:port`; a failure fails the run. */
  protected connectTo(hostname: string, port: number): void {
    Bun.connect<BunClient>({ hostname, port, data: this, socket: clientHandlers })
      .catch((error) => run.fail(`connection ${this.id} failed: ${error}`));
  }

  /** Writes `bytes` after what waits for `drain`, or at once. */
  write(bytes: Uint8Array): void {
    if (this.#pending.length) {
      this.#pending.push(bytes);
      return;
    }
    const written = this.socket!.write(bytes);
    if (written < bytes.length) this.#pending.push(bytes.subarray(Math.max(written, 0)));
  }

  /** Writes what waits, as far as the socket takes it. */
  drain(): void {
    while (this.#pending.length) {
      const bytes = this.#pending[0];
      const written = this.socket!.write(bytes);
      if (written < bytes.length) {
        this.#pending[0] = bytes.subarray(Math.max(written, 0));
        return;
      }
      this.#pending.shift();
    }
  }

  /** Fails the run with `message` about this connection, and closes it. */
  fail(message: string): void {
    run.fail(`connection ${this.id}: ${message}`);
    this.failed = true;
    this.socket?.end();
  }

  /** The socket closed: unless the run is stopping or this connection failed, the run fails. */
  lost(): void {
    if (!run.stopping && !this.failed) run.fail(`connection ${this.id} closed by the server`);
  }
}

const clientHandlers: BunSocketHandlers<BunClient> & {
  connectError(socket: BunSocket<BunClient>, error: Error): void;
} = {
  open(socket) {
    const conn = socket.data;
    conn.socket = socket;
    socket.setNoDelay?.(true);
    conn.opened();
  },
  data(socket, chunk) {
    socket.data.data(chunk);
  },
  drain(socket) {
    socket.data.drain();
  },
  close(socket) {
    socket.data.lost();
  },
  error(socket, error) {
    if (!run.stopping && !socket.data.failed) run.fail(`connection ${socket.data.id}: ${error.message}`);
  },
  connectError(socket, error) {
    run.fail(`connection ${socket.data.id} failed: ${error.message}`);
  },
};

/**
 * Opens `count` connections, at most `concurrency` at a time: each is made, connected and waited for
 * (`ready`) before its worker makes the next.
 *
 * @param timeout Seconds after which, if they are not all ready, the run fails; none if undefined.
 */
export async function openAll<C extends BunClient>(
  count: number,
  concurrency: number,
  make: (id: number) => C,
  timeout?: number,
): Promise<C[]> {
  const giveUp = timeout === undefined
    ? undefined
    : setTimeout(() => run.fail(`${count} connections not ready after ${timeout} s`), timeout * 1000);
  const conns: C[] = [];
  const worker = async () => {
    while (conns.length < count) {
      const conn = make(conns.length);
      conns.push(conn);
      conn.connect();
      await conn.ready;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  clearTimeout(giveUp);
  return conns;
}

/** Lines on standard input: the function resolves on each line, or at the input's end. */
export function stdinLines(): () => Promise<void> {
  let lines = 0;
  let ended = false;
  let wake = () => {};
  process.stdin.on("data", (chunk: Uint8Array) => {
    lines += chunk.filter((byte) => byte === 10).length;
    wake();
  });
  process.stdin.on("end", () => {
    ended = true;
    wake();
  });
  return async () => {
    while (!lines && !ended) await new Promise<void>((resolve) => wake = resolve);
    if (lines) lines--;
  };
}
