/**
 * The peers of the fairness attacks (issue 16): an honest client that measures
 * what everyone else sees, and attackers that misbehave. Raw TCP through
 * node:net and node:zlib, so the same code runs on Deno and Bun and never
 * depends on the tree under test. Used by bench/attacks.ts (in child
 * processes) and tests/hardening/fairness_test.ts (the honest client in the
 * test's process, the attacker in a child).
 *
 *   deno run -A bench/attack_peers.ts honest --port P
 *     prints `rtt AT MS` per echo and `hs AT MS` per handshake (AT: epoch ms
 *     sent) until stdin ends, then `rtt AT MS lost` for echoes never answered.
 *   deno run -A bench/attack_peers.ts attack NAME --port P [--params JSON]
 *     prints `attacking AT` when it starts and `result {JSON}` when it is done.
 *
 * Attacks (`NAME`, with the params each takes and its defaults in `ATTACKS`):
 * - `deflate-queue`: connections to a route that consumes slowly (or at once)
 *   each send `messages` compressed messages, every one inflating about
 *   1000:1 to `size` bytes, in one write, then stay for `holdMs`.
 * - `unfinished`: connections each send the first fragment of a compressed
 *   message inflating to `size` bytes, then an empty continuation and a pong
 *   every `everyMs`, never the last fragment, for `holdMs` at most.
 * - `bomb`: `count` compressed messages of `size` zeros (64 KiB for 64 MiB),
 *   one after the other, each once the previous echo came back, or all in
 *   one write with `together`.
 * - `tiny`: `frames` 1-byte messages, read back as they are echoed.
 * - `fragments`: messages of `fragments` 1-byte fragments, a ping after each,
 *   `frames` frames in all.
 * - `publish`: a room member stops reading; two `big`-byte messages published
 *   to the room cut it; then `count` small publishes during its close timeout;
 *   the member stays unread for `holdMs` more, past that timeout.
 *
 * @module
 */

import * as net from "node:net";
import { constants, deflateRawSync } from "node:zlib";

/** Milliseconds since the epoch, with performance.now()'s resolution: comparable across processes. */
export const now = (): number => performance.timeOrigin + performance.now();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const KEY = [0x37, 0xfa, 0x21, 0x3d];
const encoder = new TextEncoder();

/** A masked client frame (RFC 6455 §5.2) of any length. */
export function frame(first: number, payload: Uint8Array | string = new Uint8Array(0)): Uint8Array {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const n = data.length;
  const head = n < 126 ? 6 : n < 65536 ? 8 : 14;
  const out = new Uint8Array(head + n);
  out[0] = first;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  out.set(KEY, head - 4);
  for (let i = 0; i < n; i++) out[head + i] = data[i] ^ KEY[i & 3];
  return out;
}

/**
 * `size` zeros compressed as one permessage-deflate message (RFC 7692 §7.2.1: a sync flush with its
 * trailing `00 00 ff ff` removed): 16 MiB become about 16 KiB.
 */
export function compressedZeros(size: number): Uint8Array {
  const out = deflateRawSync(new Uint8Array(size), { finishFlush: constants.Z_SYNC_FLUSH });
  return new Uint8Array(out.buffer, out.byteOffset, out.length - 4);
}

/** Joins byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function upgradeRequest(target: string, deflate: boolean): Uint8Array {
  const lines = [
    `GET ${target} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  ];
  if (deflate) lines.push("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover");
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** A frame from the server; `payload` only for frames of 125 bytes or less (controls, short messages). */
export type FrameHandler = (fin: boolean, opcode: number, length: number, payload?: Uint8Array) => void;

/** Splits what a server sends into frames as it arrives, keeping only short payloads. */
class FrameReader {
  #head = new Uint8Array(14);
  #headLength = 0;
  #remaining = 0;
  #fin = false;
  #opcode = 0;
  #length = 0;
  #payload: Uint8Array | undefined;
  #filled = 0;
  #inPayload = false;

  constructor(private onFrame: FrameHandler) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.#inPayload) {
        this.#head[this.#headLength++] = chunk[at++];
        if (this.#headLength < 2) continue;
        const code = this.#head[1] & 0x7f;
        const need = code < 126 ? 2 : code === 126 ? 4 : 10;
        if (this.#headLength < need) continue;
        this.#fin = (this.#head[0] & 0x80) !== 0;
        this.#opcode = this.#head[0] & 0x0f;
        this.#length = code < 126
          ? code
          : code === 126
          ? (this.#head[2] << 8) | this.#head[3]
          : Number(new DataView(this.#head.buffer).getBigUint64(2));
        this.#headLength = 0;
        this.#remaining = this.#length;
        this.#payload = this.#length <= 125 ? new Uint8Array(this.#length) : undefined;
        this.#filled = 0;
        this.#inPayload = true;
      }
      const take = Math.min(this.#remaining, chunk.length - at);
      if (this.#payload) this.#payload.set(chunk.subarray(at, at + take), this.#filled);
      this.#filled += take;
      this.#remaining -= take;
      at += take;
      if (this.#remaining === 0) {
        this.#inPayload = false;
        this.onFrame(this.#fin, this.#opcode, this.#length, this.#payload);
      }
    }
  }
}

/** A raw WebSocket client over node:net that writes whatever it is given. */
export class Peer {
  /** The close code the server sent, once it did. */
  closeCode: number | undefined;
  /** When the connection ended (close frame or TCP close), epoch ms. */
  endedAt: number | undefined;
  /** Data frames with FIN received, and bytes of frames received. */
  messages = 0;
  bytes = 0;
  /** Called for each frame after the counters are updated. */
  onFrame: FrameHandler | undefined;
  readonly ended: Promise<void>;
  #socket: net.Socket;
  #reader: FrameReader;

  private constructor(socket: net.Socket, rest: Uint8Array) {
    this.#socket = socket;
    this.#reader = new FrameReader((fin, opcode, length, payload) => {
      this.bytes += length;
      if (fin && opcode < 8) this.messages++;
      // Keepalive pings are answered, as any client does (RFC 6455 §5.5.2).
      if (opcode === 9) this.write(frame(0x8a, payload));
      if (opcode === 8) {
        this.closeCode = payload && payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        this.endedAt ??= now();
      }
      this.onFrame?.(fin, opcode, length, payload);
    });
    const ended = Promise.withResolvers<void>();
    this.ended = ended.promise;
    const end = () => {
      this.endedAt ??= now();
      ended.resolve();
    };
    socket.on("data", (chunk: Uint8Array) => this.#reader.push(chunk));
    socket.on("close", end);
    socket.on("error", end);
    if (rest.length > 0) this.#reader.push(rest);
  }

  /** Connects to 127.0.0.1:`port` and completes the handshake to `target`, offering permessage-deflate if asked. */
  static open(port: number, target: string, deflate = false): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      let head: Uint8Array = new Uint8Array(0);
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        socket.setNoDelay(true);
        socket.write(upgradeRequest(target, deflate));
      });
      const onData = (chunk: Uint8Array) => {
        head = concat([head, chunk]);
        const text = new TextDecoder("latin1").decode(head.subarray(0, 8192));
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        socket.off("error", fail);
        if (!text.startsWith("HTTP/1.1 101 ")) return fail(new Error(`not upgraded: ${text.slice(0, 200)}`));
        if (deflate && !/permessage-deflate/i.test(text.slice(0, end))) {
          return fail(new Error("permessage-deflate was not accepted"));
        }
        resolve(new Peer(socket, head.subarray(end + 4)));
      };
      socket.on("data", onData);
    });
  }

  /** Writes bytes; resolves once the socket takes more (at once unless its buffer is full). */
  write(bytes: Uint8Array): Promise<void> {
    if (this.#socket.destroyed) return Promise.resolve();
    if (this.#socket.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        resolve();
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
  }

  /** Whether the connection is still open (no close frame, no TCP close). */
  get open(): boolean {
    return this.endedAt === undefined;
  }

  /** Stops reading: the server's writes back up. */
  pause(): void {
    this.#socket.pause();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

// ---- The honest client ----

/** One measurement: sent at `at` (epoch ms), answered `ms` later (or unanswered by the end, `lost`). */
export interface Sample {
  at: number;
  ms: number;
  lost?: boolean;
}

/**
 * Echoes a 32-byte message every 100 ms on one connection and opens one new
 * connection per second (handshake until the 101's head is in), recording
 * both round trips.
 */
export class Honest {
  rtts: Sample[] = [];
  handshakes: Sample[] = [];
  /** Called with each sample as it is taken. */
  onSample: ((kind: "rtt" | "hs", sample: Sample) => void) | undefined;
  #peer: Peer;
  #port: number;
  #pending = new Map<number, number>();
  #handshaking = new Set<{ at: number; socket: net.Socket }>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #sequence = 0;

  private constructor(peer: Peer, port: number) {
    this.#peer = peer;
    this.#port = port;
    peer.onFrame = (_fin, opcode, length, payload) => {
      if (opcode !== 2 || length !== 32 || !payload) return;
      const sequence = new DataView(payload.buffer).getUint32(0);
      const at = this.#pending.get(sequence);
      if (at === undefined) return;
      this.#pending.delete(sequence);
      this.#record("rtt", { at, ms: now() - at });
    };
  }

  /** Connects to `/echo` on 127.0.0.1:`port` and starts measuring. */
  static async start(port: number, path = "/echo"): Promise<Honest> {
    const honest = new Honest(await Peer.open(port, path), port);
    honest.#timers.push(setInterval(() => honest.#echo(), 100), setInterval(() => honest.#handshake(), 1000));
    return honest;
  }

  #record(kind: "rtt" | "hs", sample: Sample): void {
    (kind === "rtt" ? this.rtts : this.handshakes).push(sample);
    this.onSample?.(kind, sample);
  }

  #echo(): void {
    const payload = new Uint8Array(32);
    const sequence = this.#sequence++;
    new DataView(payload.buffer).setUint32(0, sequence);
    this.#pending.set(sequence, now());
    this.#peer.write(frame(0x82, payload));
  }

  #handshake(): void {
    const attempt = { at: now(), socket: net.connect(this.#port, "127.0.0.1") };
    this.#handshaking.add(attempt);
    let text = "";
    const finish = (ok: boolean) => {
      if (!this.#handshaking.delete(attempt)) return;
      this.#record("hs", { at: attempt.at, ms: now() - attempt.at, lost: !ok || undefined });
      attempt.socket.destroy();
    };
    attempt.socket.on("connect", () => attempt.socket.write(upgradeRequest("/echo", false)));
    attempt.socket.on("data", (chunk: Uint8Array) => {
      text += new TextDecoder("latin1").decode(chunk);
      if (text.includes("\r\n\r\n")) finish(text.startsWith("HTTP/1.1 101 "));
    });
    attempt.socket.on("error", () => finish(false));
    attempt.socket.on("close", () => finish(false));
  }

  /** Stops; echoes and handshakes still unanswered are recorded as lost, with their time so far. */
  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    const end = now();
    for (const at of this.#pending.values()) this.#record("rtt", { at, ms: end - at, lost: true });
    this.#pending.clear();
    for (const attempt of [...this.#handshaking]) {
      this.#handshaking.delete(attempt);
      this.#record("hs", { at: attempt.at, ms: end - attempt.at, lost: true });
      attempt.socket.destroy();
    }
    this.#peer.destroy();
  }
}

/** The `p`-th percentile (0–100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))];
}

// ---- Attacks ----

/** What an attack reports: how long it took and what it saw. */
export interface AttackResult {
  ms: number;
  [key: string]: unknown;
}

type Params = Record<string, number | string | boolean>;

/** Each attack with its default parameters (the full-size figures of issue 16). */
export const ATTACKS: Record<
  string,
  { defaults: Params; run: (port: number, p: Params) => Promise<AttackResult> }
> = {
  "deflate-queue": {
    defaults: { connections: 4, messages: 40, size: 16 * 1024 * 1024 - 1024, holdMs: 6000, path: "/slow" },
    async run(port, p) {
      const start = now();
      const message = frame(0xc2, compressedZeros(Number(p.size)));
      const burst = concat(Array.from({ length: Number(p.messages) }, () => message));
      const peers = await Promise.all(
        Array.from({ length: Number(p.connections) }, () => Peer.open(port, String(p.path), true)),
      );
      for (const peer of peers) peer.write(burst);
      await sleep(Number(p.holdMs));
      for (const peer of peers) peer.destroy();
      return {
        ms: now() - start,
        uploaded: burst.length * peers.length,
        closed: peers.filter((peer) => !peer.open).map((peer) => peer.closeCode ?? "tcp"),
      };
    },
  },
  unfinished: {
    defaults: { connections: 4, size: 15 * 1024 * 1024, everyMs: 100, holdMs: 20000 },
    async run(port, p) {
      const start = now();
      const first = frame(0x42, compressedZeros(Number(p.size)));
      const more = concat([frame(0x8a), frame(0x00)]);
      const peers = await Promise.all(
        Array.from({ length: Number(p.connections) }, () => Peer.open(port, "/echo", true)),
      );
      for (const peer of peers) peer.write(first);
      const deadline = start + Number(p.holdMs);
      while (now() < deadline && peers.some((peer) => peer.open)) {
        await sleep(Number(p.everyMs));
        for (const peer of peers) if (peer.open) peer.write(more);
      }
      for (const peer of peers) peer.destroy();
      return {
        ms: now() - start,
        uploaded: first.length * peers.length,
        // How long the server kept each connection, in ms; null for one still open at the end.
        kept: peers.map((peer) => peer.endedAt === undefined ? null : Math.round(peer.endedAt - start)),
        codes: peers.map((peer) => peer.closeCode ?? (peer.open ? "open" : "tcp")),
      };
    },
  },
  bomb: {
    defaults: { count: 4, size: 64 * 1024 * 1024 - 1024, together: false, path: "/echo", timeoutMs: 60000 },
    async run(port, p) {
      const start = now();
      const bomb = frame(0xc2, compressedZeros(Number(p.size)));
      const count = Number(p.count);
      const peer = await Peer.open(port, String(p.path), true);
      const deadline = start + Number(p.timeoutMs);
      const echoed = (n: number) =>
        (async () => {
          while (peer.messages < n && peer.open && now() < deadline) await sleep(5);
        })();
      if (p.together) {
        peer.write(concat(Array.from({ length: count }, () => bomb)));
        await echoed(count);
      } else {
        for (let i = 1; i <= count && peer.open; i++) {
          await peer.write(bomb);
          await echoed(i);
        }
      }
      peer.destroy();
      return {
        ms: now() - start,
        uploaded: bomb.length * count,
        echoed: peer.messages,
        code: peer.closeCode,
      };
    },
  },
  tiny: {
    defaults: { frames: 10_000_000, timeoutMs: 120000 },
    async run(port, p) {
      const start = now();
      const total = Number(p.frames);
      const batch = 10_000;
      const chunk = concat(Array.from({ length: batch }, () => frame(0x82, new Uint8Array([7]))));
      const peer = await Peer.open(port, "/echo");
      for (let sent = 0; sent < total && peer.open; sent += batch) {
        await peer.write(sent + batch <= total ? chunk : chunk.subarray(0, (total - sent) * 7));
      }
      const deadline = start + Number(p.timeoutMs);
      while (peer.messages < total && peer.open && now() < deadline) await sleep(5);
      peer.destroy();
      return { ms: now() - start, frames: total, echoed: peer.messages, code: peer.closeCode };
    },
  },
  fragments: {
    defaults: { frames: 800_000, fragments: 4000, timeoutMs: 120000 },
    async run(port, p) {
      const start = now();
      const fragments = Number(p.fragments);
      const ping = frame(0x89, new Uint8Array([1]));
      const parts: Uint8Array[] = [];
      for (let i = 0; i < fragments; i++) {
        parts.push(frame(i === 0 ? 0x02 : i === fragments - 1 ? 0x80 : 0x00, new Uint8Array([7])), ping);
      }
      const message = concat(parts);
      const count = Math.max(1, Math.round(Number(p.frames) / (2 * fragments)));
      const peer = await Peer.open(port, "/echo");
      let pongs = 0;
      peer.onFrame = (_fin, opcode) => {
        if (opcode === 10) pongs++;
      };
      for (let i = 0; i < count && peer.open; i++) await peer.write(message);
      const deadline = start + Number(p.timeoutMs);
      while (peer.messages < count && peer.open && now() < deadline) await sleep(5);
      peer.destroy();
      return {
        ms: now() - start,
        frames: count * fragments * 2,
        echoed: peer.messages,
        pongs,
        code: peer.closeCode,
      };
    },
  },
  publish: {
    defaults: { big: 9 * 1024 * 1024, count: 40_000, holdMs: 7000, timeoutMs: 60000 },
    async run(port, p) {
      const start = now();
      const member = await Peer.open(port, "/room");
      member.pause();
      const publisher = await Peer.open(port, "/publish");
      const deadline = start + Number(p.timeoutMs);
      let synced = 0;
      publisher.onFrame = (_fin, opcode) => {
        if (opcode === 1) synced++;
      };
      const sync = async (n: number) => {
        await publisher.write(frame(0x81, "sync"));
        while (synced < n && publisher.open && now() < deadline) await sleep(2);
      };
      // Let the room take the member in before publishing.
      await sleep(100);
      const big = frame(0x82, new Uint8Array(Number(p.big)));
      await publisher.write(concat([big, big]));
      await sync(1);
      const cutAt = now();
      const small = frame(0x82, new Uint8Array(32));
      await publisher.write(concat(Array.from({ length: Number(p.count) }, () => small)));
      await sync(2);
      const stormMs = now() - cutAt;
      // The member stays, unread, past the server's close timeout (5 s by default): what piled up for
      // it is settled when that runs out.
      await sleep(Number(p.holdMs));
      member.destroy();
      publisher.destroy();
      return { ms: now() - start, stormMs: Math.round(stormMs), synced };
    },
  },
};

// ---- Command line ----

function option(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

async function stdinEnded(): Promise<void> {
  if ("Deno" in globalThis) {
    for await (const _ of Deno.stdin.readable) {
      // Only the end matters.
    }
    return;
  }
  const stdin = (globalThis as unknown as { process: { stdin: AsyncIterable<unknown> } }).process.stdin;
  for await (const _ of stdin) {
    // Only the end matters.
  }
}

async function main(args: string[]): Promise<void> {
  const port = Number(option(args, "port", "0"));
  if (args[0] === "honest") {
    const honest = await Honest.start(port);
    honest.onSample = (kind, sample) =>
      console.log(`${kind} ${sample.at.toFixed(1)} ${sample.ms.toFixed(2)}${sample.lost ? " lost" : ""}`);
    await stdinEnded();
    honest.stop();
    return;
  }
  if (args[0] === "attack") {
    const attack = ATTACKS[args[1]];
    if (!attack) throw new Error(`no attack ${args[1]}; known: ${Object.keys(ATTACKS).join(", ")}`);
    const params = { ...attack.defaults, ...JSON.parse(option(args, "params", "{}")) };
    console.log(`attacking ${now().toFixed(1)}`);
    const result = await attack.run(port, params);
    console.log(`result ${JSON.stringify(result)}`);
    return;
  }
  throw new Error("usage: attack_peers.ts honest --port P | attack NAME --port P [--params JSON]");
}

if (import.meta.main) {
  const args = "Deno" in globalThis
    ? Deno.args
    : (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
  await main(args);
  // Sockets left by a server that never answers must not keep the process alive.
  if ("Deno" in globalThis) Deno.exit(0);
  else (globalThis as unknown as { process: { exit(code: number): void } }).process.exit(0);
}
