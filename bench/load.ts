/**
 * A WebSocket load generator for Bun, light enough that the server under test
 * (not this process) is the bottleneck. Four modes:
 *
 *   bun bench/load.ts --mode echo --url ws://127.0.0.1:9001/ --conns 100 \
 *     --inflight 16 --size 32 --type binary --seconds 3 [--warmup 0.5]
 *   bun bench/load.ts --mode handshake --url … --conns 50 --seconds 3
 *   bun bench/load.ts --mode idle --url … --conns 10000 [--cycles 2]
 *   bun bench/load.ts --mode fanout --url …[,…] --conns 1000 --size 256 --interval 10
 *
 * Connections are raw TCP (`Bun.connect`) with the opening handshake done by
 * hand (the `Sec-WebSocket-Accept` is checked), at most `--concurrency` (200)
 * handshakes at a time. Frames sent are pre-built and masked; frames received
 * are parsed in full (any length encoding, fragmented messages, pings answered
 * with pongs) and every payload byte is compared with what was sent.
 *
 * - echo: keeps `inflight` messages outstanding on each connection; each echo
 *   is answered with a new message. There are `inflight + 1` distinct payloads
 *   sent in turn, so a lost, repeated or reordered echo fails the check. Text
 *   payloads are UTF-8 with about one character in eight non-ASCII (`é`, `€`),
 *   so the server's UTF-8 validation does real work. Latency is from the write
 *   of a message to the read that completed its echo.
 * - handshake: `conns` loops of connect → upgrade → close frame → the server's
 *   close frame → next connection. Rate is completed loops per second;
 *   latency is from the connect call to the verified 101 response.
 * - idle: `cycles` times (default 1): opens `conns` connections and prints
 *   `IDLE_OPEN <cycle> {...}`, waits for a line on standard input (or its
 *   end), sends every connection a close frame, waits for all the server's
 *   close frames, prints `IDLE_CLOSED <cycle> {...}` and, before another
 *   cycle, waits for another line. bench/servers.ts reads the server's RSS in
 *   between.
 * - fanout: for a server started with `--mode broadcast` or `--mode fanout`,
 *   which sends every message it receives to all its connections (or all but
 *   the sender). A publisher connection to the first URL sends one binary
 *   message of `size` bytes every `interval` ms, carrying its sequence number
 *   and send time (`performance.now()`); all `conns` connections must receive
 *   each one, byte for byte and in order (what comes back to the publisher is
 *   ignored). With several URLs (servers joined by a backplane, bench/fanout.ts)
 *   the connections are spread over them in turn, and latencies are reported in
 *   all, for the first server's connections (local) and for the others'
 *   (remote). Reports deliveries per second, delivery latency and the
 *   deliveries missing after a grace period.
 *
 * Counts cover `seconds` after `warmup` seconds. Prints one `LOAD_JSON {...}`
 * line (rate, MB/s of payload in 10^6 bytes, p50/p99 latency in ms, this
 * process's CPU time as a share of one core over the window, and its CPU
 * seconds since it started; with `--pids 1,2` also the CPU seconds each of
 * those processes, the servers, used over the window, from /proc/PID/stat)
 * and exits; exits with 1 and the first errors on stderr if any check failed.
 * Options, the report, connections and the measured window are
 * bench/_bun.ts's, shared with bench/http_load.ts.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { option } from "../examples/args.ts";
import {
  BunClient,
  Histogram,
  InFlight,
  numberOption,
  openAll,
  run,
  sleep,
  stdinLines,
  Window,
} from "./_bun.ts";

// ---- Options ----------------------------------------------------------------

const MODE = option("mode", "echo");
/** Where to connect; fan-out takes several, comma-separated, and spreads its connections over them. */
const urls = option("url", "ws://127.0.0.1:9001/").split(",").map((text) => new URL(text));
const url = urls[0];
const CONNS = numberOption("conns", "100");
const INFLIGHT = numberOption("inflight", "16");
const SIZE = numberOption("size", MODE === "fanout" ? "256" : "32", true, true);
const TYPE = MODE === "fanout" ? "binary" : option("type", "binary");
const SECONDS = numberOption("seconds", "3", false);
const WARMUP = numberOption("warmup", "0.5", false, true);
const INTERVAL = numberOption("interval", "10", false);
const CONCURRENCY = numberOption("concurrency", "200");
const CYCLES = numberOption("cycles", "1");
if (!["echo", "handshake", "idle", "fanout"].includes(MODE)) {
  throw new Error("--mode must be echo, handshake, idle or fanout");
}
if (TYPE !== "binary" && TYPE !== "text") throw new Error("--type must be binary or text");
if (MODE === "fanout" && SIZE < 16) throw new Error("--size must be at least 16 for fanout");
const OPCODE = TYPE === "text" ? 1 : 2;
run.start({ mode: MODE, url: url.href });

// ---- Frames -----------------------------------------------------------------

const MASK = [0x37, 0xfa, 0x21, 0x3d];

/** A final, masked client frame. */
function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const headerLength = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4;
  const frame = new Uint8Array(headerLength + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else if (n < 65536) {
    frame[1] = 0x80 | 126;
    new DataView(frame.buffer).setUint16(2, n);
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(n));
  }
  frame.set(MASK, headerLength - 4);
  for (let i = 0; i < n; i++) frame[headerLength + i] = payload[i] ^ MASK[i & 3];
  return frame;
}

/** Echo payload number `k`: seeded random letters (text: with `é` and `€`) or bytes. */
function payload(k: number): Buffer {
  const bytes = Buffer.alloc(SIZE);
  let x = Math.imul(k + 1, 0x9e3779b1) | 1;
  for (let i = 0; i < SIZE;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = x >>> 0;
    if (TYPE === "binary") {
      bytes[i++] = r & 0xff;
    } else if (r % 8 === 0 && SIZE - i >= 3) {
      bytes.set([0xe2, 0x82, 0xac], i); // €
      i += 3;
    } else if (r % 8 === 1 && SIZE - i >= 2) {
      bytes.set([0xc3, 0xa9], i); // é
      i += 2;
    } else {
      bytes[i++] = 97 + (r >>> 8) % 26;
    }
  }
  return bytes;
}

/** Whether `actual[start, start + length)` equals `expected[offset, offset + length)`. */
function same(actual: Uint8Array, start: number, expected: Buffer, offset: number, length: number): boolean {
  if (length > 64) return expected.compare(actual, start, start + length, offset, offset + length) === 0;
  for (let i = 0; i < length; i++) if (actual[start + i] !== expected[offset + i]) return false;
  return true;
}

// The RFC 6455 sample key; one for all connections is fine in a benchmark.
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const requests = urls.map((url) =>
  new TextEncoder().encode(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  )
);
const CLOSE_FRAME = maskedFrame(8, new Uint8Array([0x03, 0xe8])); // 1000
const latin1 = new TextDecoder("latin1");

// ---- Measurement ------------------------------------------------------------

const latency = new Histogram();

// ---- Connections ------------------------------------------------------------

/**
 * One client connection: the opening handshake, a frame parser and writes
 * that wait for `drain`. Subclasses get data frames' payloads piece by piece
 * (`payload`), then `message` once one is complete.
 */
class Conn extends BunClient {
  upgraded = false;
  /** The close frame's status code once the server's close frame arrived. */
  closeCode: number | undefined;
  readonly connectedAt = performance.now();
  #response = "";
  // Frame parser state: the header being read, then the payload.
  #header = new Uint8Array(14);
  #headerHave = 0;
  #headerNeed = 2;
  #remaining = 0;
  #control = 0;
  #controlData = new Uint8Array(125);
  #controlLength = 0;
  /** Payload bytes of the current message so far; -1 between messages. */
  #offset = -1;
  /** Whether the data frame being read ends its message. */
  #final = false;

  /** Which of `urls` it connects to. */
  target = 0;

  connect(): void {
    const url = urls[this.target];
    this.connectTo(url.hostname, Number(url.port || 80));
  }

  /** Sends the opening handshake. */
  opened(): void {
    this.socket!.write(requests[this.target]);
  }

  /** The socket closed: before the server's close frame (and unless stopping), the run fails. */
  override lost(): void {
    if (!run.stopping && this.closeCode === undefined) {
      run.fail(`connection ${this.id} dropped by the server`);
    }
  }

  /** Starts the closing handshake. */
  close(): void {
    this.write(CLOSE_FRAME);
  }

  /** Called once the 101 response is verified. */
  upgrade(): void {
    this.upgraded = true;
    this.resolveReady();
  }

  /** Data frame payload bytes `chunk[start, end)`, at `offset` in the message. */
  payload(_chunk: Uint8Array, _start: number, _end: number, _offset: number): void {
    this.fail("unexpected data frame");
  }

  /** A complete data message of `length` bytes. */
  message(_length: number): void {}

  /** After a chunk of data is parsed. */
  parsed(): void {}

  /** The server's close frame arrived. */
  closed(): void {
    if (!run.stopping) this.fail(`closed by the server with ${this.closeCode}`);
  }

  data(chunk: Uint8Array): void {
    if (!this.upgraded) {
      this.#response += latin1.decode(chunk);
      const end = this.#response.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.#response.slice(0, end);
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (!head.startsWith("HTTP/1.1 101") || accept !== ACCEPT) {
        return this.fail(`bad handshake response: ${JSON.stringify(head.slice(0, 200))}`);
      }
      const rest = chunk.subarray(chunk.length - (this.#response.length - end - 4));
      this.#response = "";
      this.upgrade();
      if (rest.length) this.data(rest);
      return;
    }
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, n - i);
        if (this.#control) {
          this.#controlData.set(chunk.subarray(i, i + take), this.#controlLength);
          this.#controlLength += take;
        } else {
          this.payload(chunk, i, i + take, this.#offset);
          this.#offset += take;
        }
        this.#remaining -= take;
        i += take;
        if (this.#remaining === 0) this.#frameEnd();
        continue;
      }
      const header = this.#header;
      header[this.#headerHave++] = chunk[i++];
      if (this.#headerHave === 2) {
        const length7 = header[1] & 0x7f;
        this.#headerNeed = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
      }
      if (this.#headerHave === this.#headerNeed && !this.#frameStart()) return;
    }
    this.parsed();
  }

  /** Checks a complete header; false (after failing) if the frame is not acceptable. */
  #frameStart(): boolean {
    const header = this.#header;
    const fin = header[0] & 0x80;
    const opcode = header[0] & 0x0f;
    const length7 = header[1] & 0x7f;
    const length = length7 === 126
      ? (header[2] << 8) | header[3]
      : length7 === 127
      ? Number(new DataView(header.buffer).getBigUint64(2))
      : length7;
    this.#headerHave = 0;
    this.#headerNeed = 2;
    if (header[0] & 0x70 || header[1] & 0x80) {
      this.fail(`frame with RSV bits or masked: ${header[0]} ${header[1]}`);
      return false;
    }
    if (opcode >= 8) {
      if (!fin || length > 125) {
        this.fail(`bad control frame: opcode ${opcode}, ${length} bytes`);
        return false;
      }
      this.#control = opcode;
      this.#controlLength = 0;
    } else {
      const expected = this.#offset < 0 ? OPCODE : 0;
      if (opcode !== expected) {
        this.fail(`data frame with opcode ${opcode}, expected ${expected}`);
        return false;
      }
      if ((this.#offset < 0 ? 0 : this.#offset) + length > SIZE) {
        this.fail(`message longer than the ${SIZE} bytes sent`);
        return false;
      }
      this.#control = 0;
      this.#final = fin !== 0;
      if (this.#offset < 0) this.#offset = 0;
    }
    this.#remaining = length;
    if (length === 0) this.#frameEnd();
    return true;
  }

  #frameEnd(): void {
    if (this.#control === 9) {
      this.write(maskedFrame(10, this.#controlData.slice(0, this.#controlLength)));
    } else if (this.#control === 8) {
      const data = this.#controlData;
      this.closeCode = this.#controlLength >= 2 ? (data[0] << 8) | data[1] : 1005;
      this.closed();
    } else if (!this.#control && this.#final) {
      const length = this.#offset;
      this.#offset = -1;
      this.message(length);
    }
  }
}

/** Opens `count` connections, at most CONCURRENCY handshakes at a time; the run fails after 60 s. */
const openAllConns = <C extends Conn>(count: number, make: (id: number) => C) =>
  openAll(count, CONCURRENCY, make, 60);

const perSecond = (count: number, seconds: number) => Math.round(count / seconds);

// ---- echo -------------------------------------------------------------------

/** The distinct payloads sent in turn, and their frames twice over, so any run of them is one slice. */
const ECHO_KINDS = INFLIGHT + 1;
const echoPayloads = MODE === "echo" ? Array.from({ length: ECHO_KINDS }, (_, k) => payload(k)) : [];
const echoFrames = echoPayloads.map((p) => maskedFrame(OPCODE, p));
const FRAME = echoFrames[0]?.length ?? 0;
const echoRing = new Uint8Array(FRAME * ECHO_KINDS * 2);
echoFrames.forEach((frame, k) => {
  echoRing.set(frame, k * FRAME);
  echoRing.set(frame, (k + ECHO_KINDS) * FRAME);
});
let verified = 0;

class EchoConn extends Conn {
  /** The messages sent and not echoed yet; `n` of them are one write of `echoRing`'s frames. */
  readonly inFlight = new InFlight(INFLIGHT, latency, (n) => {
    this.write(echoRing.subarray(this.#next * FRAME, (this.#next + n) * FRAME));
    this.#next = (this.#next + n) % ECHO_KINDS;
  });
  /** The payload the next message carries, and the one the next echo must. */
  #next = 0;
  #expect = 0;
  /** Echoes completed in the chunk being parsed. */
  #done = 0;

  override payload(chunk: Uint8Array, start: number, end: number, offset: number): void {
    if (!same(chunk, start, echoPayloads[this.#expect], offset, end - start)) {
      this.fail(`echo differs from the message sent (bytes ${offset}–${offset + end - start})`);
    }
  }

  override message(length: number): void {
    if (length !== SIZE) this.fail(`echo of ${length} bytes, sent ${SIZE}`);
    this.#expect = this.#expect + 1 === ECHO_KINDS ? 0 : this.#expect + 1;
    this.#done++;
  }

  override parsed(): void {
    const done = this.#done;
    if (done === 0) return;
    this.#done = 0;
    verified += done;
    this.inFlight.answered(done);
  }
}

async function echo(): Promise<Record<string, unknown>> {
  const conns = await openAllConns(CONNS, (id) => new EchoConn(id));
  const now = performance.now();
  for (const conn of conns) conn.inFlight.send(INFLIGHT, now);
  const window = await run.measure(WARMUP, SECONDS);
  const echoes = latency.count;
  run.stopping = true;
  return {
    conns: CONNS,
    inflight: INFLIGHT,
    size: SIZE,
    type: TYPE,
    ...window,
    messages: echoes,
    verified,
    rate: perSecond(echoes, window.seconds),
    mb_per_s: Number((echoes * SIZE / 1e6 / window.seconds).toFixed(2)),
    ...latency.quantiles(),
  };
}

// ---- handshake --------------------------------------------------------------

let handshakes = 0;

/** Upgrades, closes at once and, once the server's close frame is back, starts its successor. */
class CycleConn extends Conn {
  override upgrade(): void {
    super.upgrade();
    if (run.measuring) latency.record(performance.now() - this.connectedAt);
    this.close();
  }

  override closed(): void {
    this.socket?.end();
    if (run.measuring) handshakes++;
    if (!run.stopping) new CycleConn(this.id).connect();
  }
}

async function handshake(): Promise<Record<string, unknown>> {
  for (let id = 0; id < CONNS; id++) new CycleConn(id).connect();
  const window = await run.measure(WARMUP, SECONDS);
  run.stopping = true;
  return {
    conns: CONNS,
    ...window,
    handshakes,
    rate: perSecond(handshakes, window.seconds),
    ...latency.quantiles(),
  };
}

// ---- idle -------------------------------------------------------------------

let closing = false;
let closedCount = 0;

class IdleConn extends Conn {
  override closed(): void {
    if (!closing) return super.closed();
    this.socket?.end();
    closedCount++;
  }
}

async function idle(): Promise<Record<string, unknown>> {
  const nextLine = stdinLines();
  const cycles = [];
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const opening = new Window();
    const conns = await openAllConns(CONNS, (id) => new IdleConn(id));
    const open_s = opening.end().seconds;
    console.log(`IDLE_OPEN ${cycle} ${JSON.stringify({ conns: conns.length, open_s })}`);
    await nextLine();
    const closingWindow = new Window();
    closing = true;
    closedCount = 0;
    for (const conn of conns) conn.close();
    for (let waited = 0; closedCount < conns.length; waited += 10) {
      if (waited > 30_000) run.fail(`${conns.length - closedCount} connections not closed after 30 s`);
      await sleep(10);
    }
    closing = false;
    const close_s = closingWindow.end().seconds;
    console.log(`IDLE_CLOSED ${cycle} ${JSON.stringify({ closed: closedCount, close_s })}`);
    cycles.push({ open_s, close_s });
    if (cycle + 1 < CYCLES) await nextLine();
  }
  run.stopping = true;
  return { conns: CONNS, cycles };
}

// ---- fanout -----------------------------------------------------------------

/** What the publisher sent, by sequence number modulo the ring's size. */
const SENT_RING = 4096;
const published: { seq: number; bytes: Buffer; measured: boolean }[] = [];
let measuredSent = 0;
let delivered = 0;
/** Latencies of the first server's connections and of the others' (through a backplane). */
const localLatency = new Histogram();
const remoteLatency = new Histogram();

/** A broadcast's send time, read from its bytes without a view per message (little-endian). */
const stampBytes = new Uint8Array(8);
const stamp = new Float64Array(stampBytes.buffer);

class FanoutConn extends Conn {
  #buffer = Buffer.alloc(SIZE);
  /** A message that came whole in one chunk is checked where it lies: that chunk, and where. */
  #chunk: Uint8Array | undefined;
  #start = 0;
  #last = -1;

  constructor(id: number) {
    super(id);
    this.target = id % urls.length;
  }

  override payload(chunk: Uint8Array, start: number, end: number, offset: number): void {
    if (offset === 0 && end - start === SIZE) {
      this.#chunk = chunk;
      this.#start = start;
    } else {
      this.#chunk = undefined;
      this.#buffer.set(chunk.subarray(start, end), offset);
    }
  }

  override message(length: number): void {
    const now = performance.now();
    const bytes = this.#chunk ?? this.#buffer;
    const at = this.#chunk ? this.#start : 0;
    this.#chunk = undefined;
    const seq = (bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24) >>> 0;
    const sent = published[seq % SENT_RING];
    if (length !== SIZE || sent?.seq !== seq || sent.bytes.compare(bytes, at, at + SIZE) !== 0) {
      return this.fail(`broadcast ${seq} (${length} bytes) differs from the message sent`);
    }
    if (seq <= this.#last) return this.fail(`broadcast ${seq} after ${this.#last}`);
    this.#last = seq;
    if (sent.measured) {
      for (let k = 0; k < 8; k++) stampBytes[k] = bytes[at + 8 + k];
      const ms = now - stamp[0];
      latency.record(ms);
      (this.target === 0 ? localLatency : remoteLatency).record(ms);
      delivered++;
    }
  }
}

/** Sends the broadcasts; what its server sends back to it (a broadcast to all) is not looked at. */
class PublisherConn extends Conn {
  override payload(): void {}
}

/** Broadcast `seq`: its number, its send time, then bytes that depend on both. */
function broadcast(publisher: Conn, seq: number): void {
  const bytes = Buffer.alloc(SIZE);
  bytes.writeUInt32LE(seq, 0);
  const now = performance.now();
  bytes.writeDoubleLE(now, 8);
  for (let i = 16; i < SIZE; i++) bytes[i] = (seq * 31 + i) & 0xff;
  published[seq % SENT_RING] = { seq, bytes, measured: run.measuring };
  if (run.measuring) measuredSent++;
  publisher.write(maskedFrame(OPCODE, bytes));
}

async function fanout(): Promise<Record<string, unknown>> {
  const conns = await openAllConns(CONNS, (id) => new FanoutConn(id));
  const [publisher] = await openAllConns(1, (id) => new PublisherConn(CONNS + id));
  // Each broadcast is due INTERVAL ms after the one before was due, so timer lateness does not
  // lower the rate; after a stall the schedule restarts from now rather than catching up in a burst.
  let due = performance.now();
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    broadcast(publisher, seq++);
    const now = performance.now();
    due = Math.max(due + INTERVAL, now);
    timer = setTimeout(tick, Math.max(0, due - now));
  };
  tick();
  const window = await run.measure(WARMUP, SECONDS);
  clearTimeout(timer);
  // Deliveries still under way get a grace period.
  for (let waited = 0; delivered < measuredSent * CONNS && waited < 2000; waited += 10) await sleep(10);
  run.stopping = true;
  const expected = measuredSent * conns.length;
  return {
    conns: CONNS,
    size: SIZE,
    interval_ms: INTERVAL,
    ...window,
    broadcasts: measuredSent,
    broadcasts_per_s: perSecond(measuredSent, window.seconds),
    delivered,
    missed: expected - delivered,
    rate: perSecond(delivered, window.seconds),
    mb_per_s: Number((delivered * SIZE / 1e6 / window.seconds).toFixed(2)),
    ...latency.quantiles(),
    ...urls.length > 1 ? { local: localLatency.quantiles(), remote: remoteLatency.quantiles() } : {},
  };
}

// ---- main -------------------------------------------------------------------

const modes = { echo, handshake, idle, fanout };
run.finish(await modes[MODE as keyof typeof modes]());
