/**
 * The fairness attacks of issue 16, at full size, against a Sock server in a
 * child process: what an honest client sees meanwhile, and what the server
 * holds.
 *
 *   deno run -A bench/attacks.ts [--root DIR] [--runtime deno|bun|both] [--only 1a,2,3] [--scale full|small]
 *
 * `--root` is the tree whose `src/` is measured (default: this one; an older
 * checkout gives "before" figures). `--only` takes attack ids or their number
 * (`1` runs 1a, 1b and 1c). The server (bench/servers/attack_target.ts) is
 * pinned to CPU 0 with taskset; the honest client and the attacker
 * (bench/attack_peers.ts, on Deno whatever the server's runtime) run in
 * processes of their own on CPU 1. The honest client echoes 32 bytes every
 * 100 ms and opens a connection every second from before the attack until it
 * ends; this harness samples the server's VmRSS every 100 ms; the server
 * reports how long its event loop was held (the delay of a 10 ms timer).
 * Each runtime gets one table: p50/p99 of the echo round trips sent during the
 * attack (unanswered ones count with their wait so far), the slowest
 * handshake, peak RSS, longest stall, and the attack's duration.
 *
 * Loopback only; every child is killed by its PID at the end of its row.
 *
 * @module
 */

import { localBin } from "../tools/bin.ts";
import { now, percentile } from "./attack_peers.ts";

const MiB = 1024 * 1024;
const here = decodeURIComponent(new URL("./", import.meta.url).pathname);

function option(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}

const root = option("root", decodeURIComponent(new URL("../", import.meta.url).pathname));
const runtimes = option("runtime", "both") === "both" ? ["deno", "bun"] : [option("runtime", "both")];
const small = option("scale", "full") === "small";
const only = option("only", "").split(",").filter(Boolean);

interface Row {
  id: string;
  what: string;
  options: Record<string, unknown>;
  attack?: string;
  params?: Record<string, unknown>;
  /** How long to measure with no attack (the idle row). */
  idleMs?: number;
}

const DEFLATE_ECHO = { deflate: true, maxMessageSize: 64 * MiB, maxFragments: 100_000 };
const ECHO = { maxMessageSize: 64 * MiB, maxFragments: 100_000 };

const rows: Row[] = [
  { id: "idle", what: "no attack (baseline), echo server", options: ECHO, idleMs: 5000 },
  {
    id: "1a",
    what: "deflate 1000:1, 4 conns x N msgs of 16 MiB, handler 1 s/msg",
    options: { deflate: true },
    attack: "deflate-queue",
    params: { messages: small ? 20 : 40, holdMs: small ? 5000 : 8000, path: "/slow" },
  },
  {
    id: "1b",
    what: "unfinished 15 MiB compressed msg, 4 conns, pongs between",
    options: { deflate: true },
    attack: "unfinished",
    params: { holdMs: small ? 8000 : 20000 },
  },
  {
    id: "1c",
    what: "deflate 1000:1, 4 conns x 10 msgs of 16 MiB, handler consumes at once",
    options: { deflate: true },
    attack: "deflate-queue",
    params: { messages: 10, holdMs: small ? 4000 : 6000, path: "/drain" },
  },
  {
    id: "2",
    what: "64 KiB -> 64 MiB bombs one by one, echo --deflate",
    options: DEFLATE_ECHO,
    attack: "bomb",
    params: { count: small ? 2 : 4 },
  },
  {
    id: "2b",
    what: "16 KiB -> 16 MiB bombs in one write, Sock({deflate:true})",
    options: { deflate: true },
    attack: "bomb",
    params: { count: small ? 8 : 16, size: 16 * MiB - 1024, together: true },
  },
  {
    id: "3a",
    what: `${small ? "1M" : "10M"} 1-byte frames, forEach echo`,
    options: ECHO,
    attack: "tiny",
    params: { frames: small ? 1_000_000 : 10_000_000 },
  },
  {
    id: "3b",
    what: `${small ? "200k" : "800k"} frames: 1-byte fragments, a ping after each`,
    options: ECHO,
    attack: "fragments",
    params: { frames: small ? 200_000 : 800_000 },
  },
  {
    id: "4",
    what: `member cut by 2 x 9 MiB, then ${small ? "20k" : "40k"} publishes`,
    options: {},
    attack: "publish",
    params: { count: small ? 20_000 : 40_000 },
  },
];

let taskset: string[] = [];
try {
  if ((await new Deno.Command("taskset", { args: ["-c", "0", "true"] }).output()).success) {
    taskset = ["taskset"];
  }
} catch {
  // No taskset: nothing is pinned.
}
const pinned = (cpu: number, command: string[]) =>
  taskset.length ? [...taskset, "-c", String(cpu), ...command] : command;

/** A child process whose stdout lines are collected with the time they arrived. */
class Child {
  lines: { at: number; text: string }[] = [];
  process: Deno.ChildProcess;
  #changed = Promise.withResolvers<void>();
  done: Promise<void>;

  constructor(command: string[], stdin: "piped" | "null" = "null") {
    this.process = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin,
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    const stdout = this.process.stdout;
    this.done = (async () => {
      let rest = "";
      const decoder = new TextDecoder();
      for await (const chunk of stdout) {
        const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
        rest = parts.pop()!;
        for (const text of parts) this.lines.push({ at: now(), text });
        this.#changed.resolve();
        this.#changed = Promise.withResolvers<void>();
      }
    })();
  }

  get pid(): number {
    return this.process.pid;
  }

  async line(pattern: RegExp, ms: number): Promise<RegExpExecArray | undefined> {
    const deadline = now() + ms;
    for (let seen = 0;;) {
      for (; seen < this.lines.length; seen++) {
        const match = pattern.exec(this.lines[seen].text);
        if (match) return match;
      }
      const left = deadline - now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        this.#changed.promise.then(() => false),
        this.done.then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), left)),
      ]);
      clearTimeout(timer);
      if (ended && seen === this.lines.length) return undefined;
    }
  }

  kill(): void {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

function rssOf(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Figures {
  p50: number;
  p99: number;
  lost: number;
  hsMax: number;
  rssIdle: number;
  rssPeak: number;
  stallMax: number;
  ms: number;
  note: string;
}

async function measure(runtime: string, row: Row): Promise<Figures> {
  const runtimeArgs = runtime === "deno" ? [localBin("deno"), "run", "-A"] : [localBin("bun")];
  const server = new Child(pinned(0, [
    ...runtimeArgs,
    `${here}servers/attack_target.ts`,
    "--root",
    root,
    "--options",
    JSON.stringify(row.options),
  ]));
  const children = [server];
  try {
    const listening = await server.line(/^listening on ws:\/\/[\d.]+:(\d+)/, 30000);
    if (!listening) {
      throw new Error(`the server did not start: ${server.lines.map((l) => l.text).join("\n")}`);
    }
    const port = listening[1];
    const peers = [localBin("deno"), "run", "-A", `${here}attack_peers.ts`];
    const honest = new Child(pinned(1, [...peers, "honest", "--port", port]), "piped");
    children.push(honest);
    let rssPeak = 0;
    const sampler = setInterval(() => rssPeak = Math.max(rssPeak, rssOf(server.pid)), 100);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const rssIdle = rssOf(server.pid);
    rssPeak = rssIdle;
    let start = now(), end: number, note = "";
    if (row.attack) {
      const attacker = new Child(pinned(1, [
        ...peers,
        "attack",
        row.attack,
        "--port",
        port,
        "--params",
        JSON.stringify(row.params ?? {}),
      ]));
      children.push(attacker);
      const began = await attacker.line(/^attacking ([\d.]+)/, 30000);
      if (began) start = Number(began[1]);
      const result = await attacker.line(/^result (.*)$/, 300_000);
      end = now();
      note = result ? summary(JSON.parse(result[1])) : "attacker gave no result within 300 s";
    } else {
      await new Promise((resolve) => setTimeout(resolve, row.idleMs ?? 5000));
      end = now();
    }
    // Stall reports arrive after the stall; give the last ones time to come in.
    await new Promise((resolve) => setTimeout(resolve, 600));
    clearInterval(sampler);
    await honest.process.stdin.close();
    await Promise.race([honest.done, new Promise((resolve) => setTimeout(resolve, 5000))]);
    const samples = (kind: string) =>
      honest.lines.map((line) => line.text.split(" ")).filter((f) => f[0] === kind)
        .map((f) => ({ at: Number(f[1]), ms: Number(f[2]), lost: f[3] === "lost" }))
        .filter((s) => s.at >= start && s.at <= end);
    const rtts = samples("rtt");
    const stalls = server.lines.map((line) => line.text.split(" ")).filter((f) => f[0] === "stall")
      .filter((f) => Number(f[1]) >= start && Number(f[1]) <= end + 500).map((f) => Number(f[2]));
    return {
      p50: percentile(rtts.map((s) => s.ms), 50),
      p99: percentile(rtts.map((s) => s.ms), 99),
      lost: rtts.filter((s) => s.lost).length,
      hsMax: Math.max(...samples("hs").map((s) => s.ms)),
      rssIdle,
      rssPeak,
      stallMax: Math.max(0, ...stalls),
      ms: end - start,
      note,
    };
  } finally {
    for (const child of children) child.kill();
    await Promise.all(children.map((child) => child.process.status));
  }
}

function summary(result: Record<string, unknown>): string {
  const { ms: _, ...rest } = result;
  return JSON.stringify(rest).replace(/"/g, "").slice(0, 80);
}

const ms = (value: number) =>
  !Number.isFinite(value) ? "-" : value < 10 ? value.toFixed(1) : String(Math.round(value));

console.log(`tree: ${root}; scale: ${small ? "small" : "full"}; pinned: ${taskset.length > 0}`);
for (const runtime of runtimes) {
  console.log(`\n== server on ${runtime}`);
  console.log(
    "attack | what | honest p50 ms | p99 ms | hs max ms | RSS idle -> peak MiB | stall max ms | attack s | attacker saw",
  );
  console.log("--- | --- | --: | --: | --: | --: | --: | --: | ---");
  for (const row of rows) {
    if (only.length > 0 && row.id !== "idle" && !only.some((id) => row.id === id || row.id.startsWith(id))) {
      continue;
    }
    const f = await measure(runtime, row);
    console.log(
      [
        row.id,
        row.what,
        ms(f.p50),
        ms(f.p99) + (f.lost ? ` (${f.lost} lost)` : ""),
        ms(f.hsMax),
        `${(f.rssIdle / MiB).toFixed(0)} -> ${(f.rssPeak / MiB).toFixed(0)}`,
        ms(f.stallMax),
        (f.ms / 1000).toFixed(1),
        f.note,
      ].join(" | "),
    );
  }
}
