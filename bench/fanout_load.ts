/**
 * The load generator of bench/fanout.ts, on Bun: `--subscribers` WebSocket
 * connections spread evenly over the servers on `--ports` (the first port's
 * server is where publishes are made), plus one publisher connection to the
 * first port, which sends a `--size`-byte binary message every `--interval`
 * ms (its frames are read whole; the servers' pings are answered). Each message carries its send time and number; every subscriber records
 * each arrival's latency, apart for the subscribers of the first server
 * (local) and of the others (a hop through Redis).
 *
 *   bun bench/fanout_load.ts --ports 9001[,9002] [--subscribers 1000]
 *     [--interval 10] [--size 256] [--seconds 5] [--warmup 1] [--pids 1,2,3]
 *
 * After `--warmup` seconds it measures for `--seconds`, waits up to 2 s for the
 * window's messages to arrive everywhere, and prints one `LOAD_JSON {...}` line:
 * messages published in the window, deliveries expected and received, those
 * missing, deliveries per second, p50/p99 latency in all, local and remote, its
 * own CPU share, and the CPU seconds over the window of each process in `--pids`
 * (the servers and Redis, read from /proc/PID/stat).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { BunClient, Histogram, numberOption, openAll, run, sleep, Window } from "./_bun.ts";
import { option } from "../examples/args.ts";

const ports = option("ports", "9001").split(",").map(Number);
const subscribers = numberOption("subscribers", "1000");
const interval = numberOption("interval", "10", false);
const size = numberOption("size", "256");
const seconds = numberOption("seconds", "5", false);
const warmup = numberOption("warmup", "1", false, true);
const pids = option("pids", "").split(",").filter(Boolean).map(Number);
if (size < 12 || size > 65535) throw new RangeError("--size must be from 12 to 65535 bytes");

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const encoder = new TextEncoder();
const upgrade = (port: number) =>
  encoder.encode(
    `GET /room HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );

/** Latencies of arrivals in the window: all, and by where the subscriber is. */
const latency = { all: new Histogram(), local: new Histogram(), remote: new Histogram() };
/** Arrivals per message number (only those published in the window are counted). */
const arrivals = new Map<number, number>();
/** The numbers of the messages published in the measured window: set when it begins and ends. */
let windowFirst = Infinity, windowLast = Infinity;

/**
 * A subscriber: reads the 101, then binary frames of `size` bytes (unmasked,
 * 16-bit length), across chunks.
 */
class Subscriber extends BunClient {
  #upgraded = false;
  #head = "";
  /** The frame being read: its header so far and length, payload bytes seen, its first 125. */
  #headerSeen = 0;
  #headerLength = 2;
  #header = new Uint8Array(4);
  #payloadSeen = 0;
  #length = 0;
  #start = new Uint8Array(125);
  #view = new DataView(this.#start.buffer);

  constructor(id: number, readonly port: number, readonly local: boolean) {
    super(id);
  }

  connect(): void {
    this.connectTo("127.0.0.1", this.port);
  }

  opened(): void {
    this.write(upgrade(this.port));
  }

  data(chunk: Uint8Array): void {
    let i = 0;
    if (!this.#upgraded) {
      this.#head += new TextDecoder("latin1").decode(chunk);
      const end = this.#head.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!this.#head.startsWith("HTTP/1.1 101")) {
        return this.fail(`not upgraded: ${this.#head.slice(0, 60)}`);
      }
      i = chunk.length - (this.#head.length - end - 4);
      this.#upgraded = true;
      this.resolveReady();
    }
    while (i < chunk.length) {
      if (this.#headerSeen < this.#headerLength) {
        this.#header[this.#headerSeen++] = chunk[i++];
        if (this.#headerSeen === 2) {
          const length = this.#header[1] & 0x7f;
          if (length === 127) return this.fail("unexpected 64-bit frame length");
          this.#headerLength = length === 126 ? 4 : 2;
          this.#length = length;
        }
        if (this.#headerSeen === this.#headerLength) {
          if (this.#headerLength === 4) this.#length = (this.#header[2] << 8) | this.#header[3];
          this.#payloadSeen = 0;
          if (this.#length === 0) this.#frameEnd();
        }
        continue;
      }
      const take = Math.min(this.#length - this.#payloadSeen, chunk.length - i);
      for (let k = 0; k < take && this.#payloadSeen + k < 125; k++) {
        this.#start[this.#payloadSeen + k] = chunk[i + k];
      }
      this.#payloadSeen += take;
      i += take;
      if (this.#payloadSeen === this.#length) this.#frameEnd();
    }
  }

  /** A whole frame was read: a message arrived, or a ping is answered (a server's keepalive). */
  #frameEnd(): void {
    const opcode = this.#header[0] & 0x0f;
    if (opcode === 2) this.#arrived();
    else if (opcode === 9) {
      const pong = new Uint8Array(6 + this.#length);
      pong.set([0x8a, 0x80 | this.#length]); // Masked with a zero key.
      pong.set(this.#start.subarray(0, this.#length), 6);
      this.write(pong);
    }
    this.#headerSeen = 0;
    this.#headerLength = 2;
  }

  #arrived(): void {
    const sent = this.#view.getFloat64(0);
    const seq = this.#view.getUint32(8);
    if (seq < windowFirst || seq > windowLast) return;
    const ms = performance.now() - sent;
    latency.all.record(ms);
    (this.local ? latency.local : latency.remote).record(ms);
    arrivals.set(seq, (arrivals.get(seq) ?? 0) + 1);
  }
}

/** The publisher: one connection to the first server, sending stamped messages. */
class Publisher extends BunClient {
  #frame = new Uint8Array(2 + 2 + 4 + size);
  #view = new DataView(this.#frame.buffer);

  constructor() {
    super(-1);
    // FIN + binary, masked with a zero key (the payload goes as is), 16-bit length.
    this.#frame.set([0x82, 0x80 | 126, size >> 8, size & 0xff, 0, 0, 0, 0]);
  }

  connect(): void {
    this.connectTo("127.0.0.1", ports[0]);
  }

  opened(): void {
    this.write(upgrade(ports[0]));
  }

  data(chunk: Uint8Array): void {
    // The 101, then nothing (publishes leave the sender out).
    if (new TextDecoder("latin1").decode(chunk).includes("\r\n\r\n")) this.resolveReady();
  }

  publish(seq: number): void {
    this.#view.setFloat64(8, performance.now());
    this.#view.setUint32(16, seq);
    this.write(this.#frame.slice());
  }
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s).
}

run.start({ mode: "fanout", ports, subscribers, interval_ms: interval, size }, warmup + seconds + 120);
const subs = await openAll(
  subscribers,
  50,
  (id) => new Subscriber(id, ports[id % ports.length], id % ports.length === 0),
  60,
);
const publisher = (await openAll(1, 1, () => new Publisher(), 30))[0];
// Every server must have its subscriptions in effect (a Redis SUBSCRIBE is a round trip away):
// the warm-up covers it, and the window only counts messages published after it began.
let seq = 0;
const timer = setInterval(() => publisher.publish(seq++), interval);
await sleep(warmup * 1000);
windowFirst = seq;
const cpuBefore = pids.map(cpuSeconds);
const window = new Window();
run.measuring = true;
await sleep(seconds * 1000);
run.measuring = false;
windowLast = seq - 1;
const measured = window.end();
const cpuAfter = pids.map(cpuSeconds);
clearInterval(timer);
const published = windowLast - windowFirst + 1;
const expected = published * subscribers;
const received = () => [...arrivals.values()].reduce((a, b) => a + b, 0);
for (let waited = 0; waited < 2000 && received() < expected; waited += 20) await sleep(20);
const got = received();
run.finish({
  published,
  expected,
  received: got,
  missing: expected - got,
  deliveries_per_s: Math.round(got / measured.seconds),
  ...latency.all.quantiles(),
  local: latency.local.quantiles(),
  remote: latency.remote.count ? latency.remote.quantiles() : undefined,
  load_cpu_share: measured.cpu_share,
  window_s: measured.seconds,
  cpu_s: Object.fromEntries(pids.map((pid, i) => [pid, Number((cpuAfter[i] - cpuBefore[i]).toFixed(2))])),
  connections: subs.length,
});
