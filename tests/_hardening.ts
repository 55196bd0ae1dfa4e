/**
 * Helpers for the hardening tests (`hardening_*_test.ts`, `nothing_lost_test.ts`):
 * child processes measured through `/proc`, raw TCP peers that misbehave, a
 * seeded random source and a reader for the frames a server sends.
 *
 * @module
 */

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import * as net from "node:net";
import { connect } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";
import type { Stats } from "./fixtures/hardening_server.ts";
import { latin1Bytes, latin1Text, upgradeRequest } from "./_helpers.ts";

/** The runtime running the tests. */
export const RUNTIME: "deno" | "bun" = "Bun" in globalThis ? "bun" : "deno";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A number from the environment, for longer soak runs than the suite's
 * (`SOCK_FUZZ_MS=600000 deno test -A tests/hardening/frames_test.ts`).
 */
export function fromEnv(name: string, fallback: number): number {
  const process =
    (globalThis as unknown as { process?: { env: Record<string, string | undefined> } }).process;
  const value = Number(process?.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const MB = 1024 * 1024;

/** Bytes as MiB with one decimal, for the figures the tests print. */
export function mib(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MiB`;
}

// ---- Child processes ----

/** The part of `Bun.spawn` used here, declared locally instead of depending on bun-types. */
interface BunSpawn {
  spawn(cmd: string[], options: { stdin: "ignore"; stdout: "pipe"; stderr: "inherit" }): {
    pid: number;
    stdout: ReadableStream<Uint8Array>;
    exited: Promise<number>;
    kill(signal?: string): void;
  };
}

/** A script running on this runtime in a child process. */
export interface Child {
  pid: number;
  /** Resolves with the first stdout line (from the start) matching `pattern`; rejects after `ms` or at exit. */
  line(pattern: RegExp, ms: number): Promise<RegExpExecArray>;
  /** Everything printed to stdout so far. */
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number>;
  /** Kills the process (SIGKILL); safe to call after it exited. */
  kill(): void;
}

function execPath(): string {
  return RUNTIME === "bun"
    ? (globalThis as unknown as { process: { execPath: string } }).process.execPath
    : Deno.execPath();
}

/**
 * Starts `script` (a URL, or a path relative to this file) on this runtime, through bash so that the file-descriptor limit can be raised
 * first (to 65536 where allowed, else to the hard limit). Deno runs with `-A`, `--unstable-net` (for
 * `reusePort`) and `gc()` exposed.
 */
export function spawnScript(script: string | URL, args: string[]): Child {
  const path = decodeURIComponent(new URL(script, import.meta.url).pathname);
  const runtime = RUNTIME === "deno"
    ? [execPath(), "run", "-A", "--unstable-net", "--v8-flags=--expose-gc", path]
    : [execPath(), path];
  const raise = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  const command = ["bash", "-c", raise, "bash", ...runtime, ...args];
  let pid: number, stdout: ReadableStream<Uint8Array>, exited: Promise<number>, kill: () => void;
  if (RUNTIME === "bun") {
    const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
    const proc = bun.spawn(command, { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
    ({ pid, stdout, exited } = proc);
    kill = () => proc.kill("SIGKILL");
  } else {
    const child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    ({ pid, stdout } = child);
    exited = child.status.then((status) => status.code);
    kill = () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    };
  }
  let text = "";
  let changed = Promise.withResolvers<void>();
  const pumped = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stdout) {
      text += decoder.decode(chunk, { stream: true });
      changed.resolve();
      changed = Promise.withResolvers<void>();
    }
  })().catch(() => {});
  const done = Promise.all([exited, pumped]);
  return {
    pid,
    exited,
    kill,
    output: () => text,
    async line(pattern, ms) {
      const deadline = performance.now() + ms;
      while (true) {
        for (const line of text.split("\n")) {
          const match = pattern.exec(line);
          if (match) return match;
        }
        const left = deadline - performance.now();
        const ended = await Promise.race([
          changed.promise.then(() => false),
          done.then(() => true),
          sleep(Math.max(0, left)).then(() => true),
        ]);
        if (ended && !pattern.test(text)) {
          throw new Error(`no line matching ${pattern} within ${ms} ms; stdout: ${JSON.stringify(text)}`);
        }
      }
    },
  };
}

/** The resident set size of a process, in bytes, from `/proc/PID/status`. */
export function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** How many file descriptors a process holds open (sockets, pipes, files). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * How many TCP sockets a process holds open (its listener included): its socket file descriptors
 * that `/proc/PID/net/tcp` knows. Runtimes open other sockets of their own (Deno a Unix socket
 * pair, at some point), which `openFds` counts and this does not.
 */
export function tcpSockets(pid: number): number {
  const inodes = new Set<string>();
  for (const file of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${file}`, "utf8").split("\n").slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode) inodes.add(inode);
    }
  }
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode && inodes.has(inode)) count++;
    } catch {
      // Closed meanwhile.
    }
  }
  return count;
}

/**
 * Whether every byte sent on the loopback connection from `clientPort` to `serverPort` has been read
 * by the server's process: the client's send queue is empty (all acknowledged) and so is the
 * server's receive queue (`/proc/net/tcp`, which lists the sockets of every process on this host).
 */
export function delivered(clientPort: number, serverPort: number): boolean {
  let sending: number | undefined, unread: number | undefined;
  for (const file of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/self/net/${file}`, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5) continue;
      const local = parseInt(fields[1].split(":")[1], 16), remote = parseInt(fields[2].split(":")[1], 16);
      const [tx, rx] = fields[4].split(":").map((n) => parseInt(n, 16));
      if (local === clientPort && remote === serverPort) sending = tx;
      if (local === serverPort && remote === clientPort) unread = rx;
    }
  }
  return sending === 0 && unread === 0;
}

/** A server fixture (`tests/fixtures/hardening_server.ts` by default) running in a child process. */
export interface ServerChild<S = Stats> extends Child {
  port: number;
  /** `ws://127.0.0.1:PORT`. */
  url: string;
  /** Sends a `/control` command and returns the server's answer (`Stats` for the hardening server). */
  control(command: string): Promise<S>;
  /** Kills the server if it still runs and waits for it. */
  stop(): Promise<void>;
}

/**
 * Starts a server fixture with these `Sock` options: the hardening server unless `script` names
 * another that prints `listening on ws://…` and answers `/control` commands with JSON.
 */
export async function startServer<S = Stats>(
  options: Record<string, unknown> = {},
  { script = "./fixtures/hardening_server.ts" as string | URL, controlTimeout = 10000 } = {},
): Promise<ServerChild<S>> {
  const child = spawnScript(script, ["--options", JSON.stringify(options)]);
  let port: number;
  try {
    port = Number((await child.line(/^listening on ws:\/\/[\d.]+:(\d+)/, 20000))[1]);
  } catch (error) {
    child.kill();
    throw error;
  }
  const url = `ws://127.0.0.1:${port}`;
  let control: Connection | undefined;
  return {
    ...child,
    port,
    url,
    async control(command) {
      control ??= await connect(`${url}/control`, { pingInterval: 0, timeout: 10000 });
      await control.send(command);
      return JSON.parse(await control.receive({ timeout: controlTimeout }) as string);
    },
    async stop() {
      control?.terminate();
      child.kill();
      await child.exited;
    },
  };
}

// ---- Raw peers ----

/** How a raw peer's connection ended, as it saw it. */
export type Ending = "fin" | "reset" | "closed";

/**
 * A TCP client (node:net, on both runtimes) that sends whatever bytes it is
 * given and keeps everything it receives: it can half-close, reset (RST) or
 * stop reading.
 */
export class RawPeer {
  #socket: net.Socket;
  /** Everything received, in its first `#size` bytes; grows by doubling, so each byte is copied about once. */
  #buffer = new Uint8Array(4096);
  #size = 0;
  /** `#buffer`'s first `#decoded` bytes as text: only what arrived since is decoded on the next read of `text`. */
  #text = "";
  #decoded = 0;
  #changed = Promise.withResolvers<void>();
  #ending: Ending | undefined;
  /** Resolves when the connection ended, and how. */
  readonly ended: Promise<Ending>;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    const ended = Promise.withResolvers<Ending>();
    this.ended = ended.promise;
    const end = (how: Ending) => {
      this.#ending ??= how;
      ended.resolve(this.#ending);
      this.#notify();
    };
    socket.on("data", (data: Uint8Array) => {
      if (this.#size + data.byteLength > this.#buffer.length) {
        const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#size + data.byteLength));
        grown.set(this.#buffer.subarray(0, this.#size));
        this.#buffer = grown;
      }
      this.#buffer.set(data, this.#size);
      this.#size += data.byteLength;
      this.#notify();
    });
    socket.on("end", () => end("fin"));
    socket.on("error", (error: { code?: string }) => end(error.code === "ECONNRESET" ? "reset" : "closed"));
    socket.on("close", () => end("closed"));
  }

  /** Opens a connection to 127.0.0.1:`port`. */
  static open(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.setNoDelay(true);
        resolve(new RawPeer(socket));
      });
    });
  }

  /** Opens a connection and completes the opening handshake to `target`. */
  static async upgraded(port: number, target = "/echo", extra: [string, string][] = []): Promise<RawPeer> {
    const peer = await RawPeer.open(port);
    await peer.write(latin1Bytes(upgradeRequest({ target, extra })));
    if (!await peer.until((text) => text.includes("\r\n\r\n"), 10000)) {
      peer.destroy();
      throw new Error(`no handshake answer: ${JSON.stringify(peer.text)}`);
    }
    if (!peer.text.startsWith("HTTP/1.1 101 ")) throw new Error(`not upgraded: ${peer.text.slice(0, 200)}`);
    return peer;
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  /**
   * Everything received, joined: a view that later bytes do not change (they go after its end, or
   * into a larger buffer).
   */
  get received(): Uint8Array {
    return this.#buffer.subarray(0, this.#size);
  }

  /** Everything received, as ISO-8859-1 text. */
  get text(): string {
    if (this.#decoded < this.#size) {
      this.#text += latin1Text(this.#buffer.subarray(this.#decoded, this.#size));
      this.#decoded = this.#size;
    }
    return this.#text;
  }

  /** The local port of this peer's connection. */
  get localPort(): number {
    return this.#socket.localPort!;
  }

  /** How the connection ended, once it did. */
  get ending(): Ending | undefined {
    return this.#ending;
  }

  /** Writes bytes; resolves `false` when the connection is already broken. */
  write(bytes: Uint8Array | string): Promise<boolean> {
    if (this.#socket.destroyed || !this.#socket.writable) return Promise.resolve(false);
    return new Promise((resolve) => this.#socket.write(bytes, (error) => resolve(!error)));
  }

  /**
   * Waits until `test` holds for what was received (as text), or the connection ends, at most `ms`.
   *
   * @returns Whether `test` held.
   */
  async until(test: (text: string) => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (true) {
      if (test(this.text)) return true;
      const left = deadline - performance.now();
      if (left <= 0 || this.#ending) return test(this.text);
      await Promise.race([this.#changed.promise, sleep(left)]);
    }
  }

  /** Waits for the connection to end, at most `ms`; resolves `undefined` if it did not. */
  endedWithin(ms: number): Promise<Ending | undefined> {
    return Promise.race([this.ended, sleep(ms).then(() => undefined)]);
  }

  /** Half-closes: sends FIN, keeps reading. */
  end(): void {
    this.#socket.end();
  }

  /** Stops reading: the server's writes back up into its own buffers. */
  pause(): void {
    this.#socket.pause();
  }

  /** Reads again after `pause()`. */
  resume(): void {
    this.#socket.resume();
  }

  /** Drops the connection with a TCP RST. */
  reset(): void {
    this.#socket.resetAndDestroy();
  }

  /** Closes the socket. */
  destroy(): void {
    this.#socket.destroy();
  }
}

// ---- Frames a server sends ----

/** How a slow peer's connection ended: after how long, how, and what the server answered. */
export interface SlowPeerResult {
  /** Milliseconds from the connect to the end. */
  ms: number;
  /** How the server ended the connection, if it did (within 20 s). */
  ending: Ending | undefined;
  /** Everything the server sent. */
  answer: string;
}

/**
 * Three slow peers at once, as slowloris attacks: one writes `head` a byte every 100 ms, one writes
 * all of it but its final CRLF and waits, one writes nothing. Each waits up to 20 s for the server
 * to end its connection.
 */
export function slowPeers(port: number, head: Uint8Array): Promise<SlowPeerResult[]> {
  const trickle = async (): Promise<SlowPeerResult> => {
    const peer = await RawPeer.open(port);
    const start = performance.now();
    for (let i = 0; i < head.length && !peer.ending; i++) {
      await peer.write(head.subarray(i, i + 1));
      await Promise.race([sleep(100), peer.ended]);
    }
    await peer.endedWithin(20000);
    peer.destroy();
    return { ms: performance.now() - start, ending: peer.ending, answer: peer.text };
  };
  const stall = async (sent: Uint8Array): Promise<SlowPeerResult> => {
    const peer = await RawPeer.open(port);
    const start = performance.now();
    await peer.write(sent);
    const ending = await peer.endedWithin(20000);
    peer.destroy();
    return { ms: performance.now() - start, ending, answer: peer.text };
  };
  return Promise.all([trickle(), stall(head.subarray(0, head.length - 2)), stall(new Uint8Array(0))]);
}

/** The labels of {@linkcode slowPeers}' results, in order. */
export const SLOW_PEERS = ["one byte per 100 ms", "a head without its blank line", "silence"];

/** A frame as received from a server. */
export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/**
 * Splits what a server sent after its response head into frames (any length
 * encoding); `partial` is set when the bytes end inside a frame.
 */
export function serverFrames(received: Uint8Array): { frames: ServerFrame[]; partial: boolean } {
  let at = latin1Text(received.subarray(0, Math.min(received.length, 8192))).indexOf("\r\n\r\n");
  if (at < 0) return { frames: [], partial: received.length > 0 };
  at += 4;
  const frames: ServerFrame[] = [];
  while (at < received.length) {
    if (received.length - at < 2) return { frames, partial: true };
    const first = received[at], second = received[at + 1];
    let length = second & 0x7f, head = 2;
    if (length === 126) {
      if (received.length - at < 4) return { frames, partial: true };
      length = (received[at + 2] << 8) | received[at + 3];
      head = 4;
    } else if (length === 127) {
      if (received.length - at < 10) return { frames, partial: true };
      length = 0;
      for (let i = 2; i < 10; i++) length = length * 256 + received[at + i];
      head = 10;
    }
    if (received.length - at - head < length) return { frames, partial: true };
    frames.push({
      fin: (first & 0x80) !== 0,
      opcode: first & 0x0f,
      payload: received.subarray(at + head, at + head + length),
    });
    at += head + length;
  }
  return { frames, partial: false };
}

/** The close code in a close frame's payload; 1005 for an empty one. */
export function closeCode(payload: Uint8Array): number {
  return payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
}

/** The close frame among a server's frames, if any. */
export function closeFrameOf(received: Uint8Array): ServerFrame | undefined {
  return serverFrames(received).frames.find((frame) => frame.opcode === 8);
}

// ---- Processes and ports ----

/** A port free on 127.0.0.1 just now: bound to port 0 by node:net, then released. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a process with this id exists (`kill -0`; a zombie not yet reaped counts). */
export function processAlive(pid: number): boolean {
  try {
    (globalThis as unknown as { process: { kill(pid: number, signal: string | number): void } })
      .process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, but belongs to someone else.
    return (error as { code?: string }).code === "EPERM";
  }
}
