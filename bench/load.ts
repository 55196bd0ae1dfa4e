/**
 * A WebSocket echo load generator for Bun, light enough that the server under
 * test (not this process) is the bottleneck:
 *
 *   bun bench/load.ts --url ws://127.0.0.1:9001/ --conns 100 --inflight 16 \
 *     --size 32 --type binary --seconds 5 [--warmup 0.5]
 *
 * Opens `conns` raw TCP connections with `Bun.connect`, does the opening
 * handshake by hand, then keeps `inflight` messages outstanding on each: every
 * echo that comes back is answered with a new message. Messages are pre-built
 * masked frames (one payload, one mask key for all, built once), so sending is
 * a `write` of a slice of a static buffer. Echoes are parsed just enough to
 * count them: each frame's header must be an unmasked final frame of the type
 * and size sent, and its first and last payload bytes must match.
 *
 * Counts start after `warmup` seconds and run for `seconds`; latency is from
 * the write of a message to the read that completed its echo, per connection
 * in FIFO order. Prints one `LOAD_JSON {...}` line with messages/s, payload
 * MB/s (echoed direction, 10^6 bytes), p50/p99 latency and this process's own
 * CPU time over the measured window, then exits; exits with 1 on any error.
 *
 * @module
 */

/** The parts of Bun's API used here, declared locally instead of depending on bun-types. */
interface BunSocket {
  data: Conn;
  write(data: Uint8Array): number;
  end(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}

interface BunApi {
  version: string;
  connect(options: {
    hostname: string;
    port: number;
    data: Conn;
    socket: {
      open(socket: BunSocket): void;
      data(socket: BunSocket, data: Uint8Array): void;
      drain(socket: BunSocket): void;
      close(socket: BunSocket): void;
      error(socket: BunSocket, error: Error): void;
      connectError(socket: BunSocket, error: Error): void;
    };
  }): Promise<BunSocket>;
}

interface ProcessApi {
  argv: string[];
  cpuUsage(): { user: number; system: number };
  exit(code: number): never;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const process = (globalThis as unknown as { process: ProcessApi }).process;

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const positive = (name: string, fallback: string, integer = true) => {
  const value = Number(option(name, fallback));
  if (!(value >= 0) || (integer && !Number.isInteger(value))) throw new Error(`bad --${name}`);
  return value;
};

const url = new URL(option("url", "ws://127.0.0.1:9001/"));
const CONNS = positive("conns", "100");
const INFLIGHT = positive("inflight", "16");
const SIZE = positive("size", "32");
const TYPE = option("type", "binary");
const SECONDS = positive("seconds", "5", false);
const WARMUP = positive("warmup", "0.5", false);
if (TYPE !== "binary" && TYPE !== "text") throw new Error("--type must be binary or text");
if (CONNS < 1 || INFLIGHT < 1 || SECONDS <= 0) throw new Error("--conns, --inflight, --seconds must be > 0");
const OPCODE = TYPE === "text" ? 1 : 2;

// The payload (ASCII, so valid as text) and its frame, masked once.
const payload = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i++) payload[i] = 97 + (i * 7) % 26;
const MASK = [0x37, 0xfa, 0x21, 0x3d];
const headerLength = 2 + (SIZE < 126 ? 0 : SIZE < 65536 ? 2 : 8) + 4;
const FRAME = headerLength + SIZE;
const frame = new Uint8Array(FRAME);
frame[0] = 0x80 | OPCODE;
if (SIZE < 126) {
  frame[1] = 0x80 | SIZE;
} else if (SIZE < 65536) {
  frame[1] = 0x80 | 126;
  new DataView(frame.buffer).setUint16(2, SIZE);
} else {
  frame[1] = 0x80 | 127;
  new DataView(frame.buffer).setBigUint64(2, BigInt(SIZE));
}
frame.set(MASK, headerLength - 4);
for (let i = 0; i < SIZE; i++) frame[headerLength + i] = payload[i] ^ MASK[i & 3];
/** `INFLIGHT` copies of the frame back to back: n messages are `batch.subarray(0, n * FRAME)`. */
const batch = new Uint8Array(FRAME * INFLIGHT);
for (let i = 0; i < INFLIGHT; i++) batch.set(frame, i * FRAME);
const FIRST = SIZE ? payload[0] : 0;
const LAST = SIZE ? payload[SIZE - 1] : 0;

// The RFC 6455 sample key; one for all connections is fine in a benchmark.
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const request = new TextEncoder().encode(
  `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
);

// Latency histogram: 10 µs buckets up to 10 s, the last bucket catching the rest.
const BUCKET_MS = 0.01;
const histogram = new Uint32Array(1_000_001);
let measuring = false;
let stopping = false;
let messages = 0;
let bytes = 0;
let checksum = 0;
const errors: string[] = [];

function fail(message: string): void {
  if (errors.length < 10) errors.push(message);
}

class Conn {
  socket: BunSocket | undefined;
  open = false;
  handshaken = false;
  response = "";
  ready: () => void = () => {};
  // Frame parser state.
  header = new Uint8Array(10);
  headerHave = 0;
  headerNeed = 2;
  inPayload = false;
  remaining = 0;
  offset = 0;
  // Send times of the messages in flight, oldest at `head`.
  sent = new Float64Array(INFLIGHT);
  head = 0;
  tail = 0;
  pending: Uint8Array[] = [];

  constructor(readonly id: number) {}

  write(bytes: Uint8Array): void {
    if (this.pending.length) {
      this.pending.push(bytes);
      return;
    }
    const written = this.socket!.write(bytes);
    if (written < bytes.length) this.pending.push(bytes.subarray(Math.max(written, 0)));
  }

  drain(): void {
    while (this.pending.length) {
      const bytes = this.pending[0];
      const written = this.socket!.write(bytes);
      if (written < bytes.length) {
        this.pending[0] = bytes.subarray(Math.max(written, 0));
        return;
      }
      this.pending.shift();
    }
  }

  /** Sends `n` messages, stamped `now`. */
  send(n: number, now: number): void {
    for (let i = 0; i < n; i++) {
      this.sent[this.tail] = now;
      this.tail = this.tail + 1 === INFLIGHT ? 0 : this.tail + 1;
    }
    this.write(n === INFLIGHT ? batch : batch.subarray(0, n * FRAME));
  }

  data(chunk: Uint8Array): void {
    if (!this.handshaken) {
      this.response += latin1.decode(chunk);
      const end = this.response.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.response.slice(0, end);
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (!head.startsWith("HTTP/1.1 101") || accept !== ACCEPT) {
        fail(`connection ${this.id}: bad handshake response: ${JSON.stringify(head.slice(0, 200))}`);
        this.socket!.end();
        return;
      }
      this.handshaken = true;
      const rest = chunk.subarray(chunk.length - (this.response.length - end - 4));
      this.response = "";
      this.ready();
      if (rest.length) this.data(rest);
      return;
    }
    let done = 0;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.inPayload) {
        const take = Math.min(this.remaining, n - i);
        if (this.offset === 0 && chunk[i] !== FIRST) fail(`connection ${this.id}: first byte ${chunk[i]}`);
        this.offset += take;
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) {
          const last = chunk[i - 1];
          if (last !== LAST) fail(`connection ${this.id}: last byte ${last}`);
          checksum = (Math.imul(checksum, 31) + last) >>> 0;
          this.inPayload = false;
          done++;
        }
        continue;
      }
      const header = this.header;
      header[this.headerHave++] = chunk[i++];
      if (this.headerHave === 2) {
        if (header[0] !== (0x80 | OPCODE) || header[1] & 0x80) {
          fail(`connection ${this.id}: unexpected frame header ${header[0]} ${header[1]}`);
          this.socket!.end();
          return;
        }
        const length7 = header[1] & 0x7f;
        this.headerNeed = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
      }
      if (this.headerHave >= 2 && this.headerHave === this.headerNeed) {
        const length7 = header[1] & 0x7f;
        const length = length7 === 126
          ? (header[2] << 8) | header[3]
          : length7 === 127
          ? Number(new DataView(header.buffer).getBigUint64(2))
          : length7;
        if (length !== SIZE) {
          fail(`connection ${this.id}: echo of ${length} bytes, sent ${SIZE}`);
          this.socket!.end();
          return;
        }
        this.headerHave = 0;
        this.headerNeed = 2;
        if (length === 0) {
          done++;
        } else {
          this.inPayload = true;
          this.remaining = length;
          this.offset = 0;
        }
      }
    }
    if (done === 0) return;
    const now = performance.now();
    if (measuring) {
      messages += done;
      bytes += done * SIZE;
    }
    for (let k = 0; k < done; k++) {
      if (measuring) {
        const bucket = Math.floor((now - this.sent[this.head]) / BUCKET_MS);
        histogram[bucket < histogram.length ? bucket : histogram.length - 1]++;
      }
      this.head = this.head + 1 === INFLIGHT ? 0 : this.head + 1;
    }
    if (!stopping) this.send(done, now);
  }
}

const latin1 = new TextDecoder("latin1");

const handlers = {
  open(socket: BunSocket) {
    socket.data.open = true;
    socket.setNoDelay?.(true);
  },
  data(socket: BunSocket, chunk: Uint8Array) {
    socket.data.data(chunk);
  },
  drain(socket: BunSocket) {
    socket.data.drain();
  },
  close(socket: BunSocket) {
    const conn = socket.data;
    conn.open = false;
    if (!stopping) fail(`connection ${conn.id} closed by the server`);
  },
  error(socket: BunSocket, error: Error) {
    if (!stopping) fail(`connection ${socket.data.id}: ${error.message}`);
  },
  connectError(socket: BunSocket, error: Error) {
    fail(`connection ${socket.data.id} failed: ${error.message}`);
  },
};

function finish(code: number, report?: Record<string, unknown>): void {
  stopping = true;
  measuring = false;
  if (report) console.log(`LOAD_JSON ${JSON.stringify(report)}`);
  for (const message of errors) console.error(message);
  for (const conn of conns) if (conn.open) conn.socket?.end();
  process.exit(code);
}

const conns: Conn[] = [];
const handshakes: Promise<void>[] = [];
for (let id = 0; id < CONNS; id++) {
  const conn = new Conn(id);
  conns.push(conn);
  handshakes.push(
    new Promise<void>((resolve) => (conn.ready = resolve)),
  );
  Bun.connect({ hostname: url.hostname, port: Number(url.port || 80), data: conn, socket: handlers })
    .then((socket) => {
      conn.socket = socket;
      socket.write(request);
    }, (error) => fail(`connection ${id} failed: ${error}`));
}
const giveUp = setTimeout(() => {
  fail(`handshakes not done after 10 s`);
  finish(1);
}, 10_000);
const poll = setInterval(() => errors.length && finish(1), 50);
await Promise.all(handshakes);
clearTimeout(giveUp);

const started = performance.now();
for (const conn of conns) conn.send(INFLIGHT, started);
let cpuStart = process.cpuUsage();
let measureStart = started;
setTimeout(() => {
  cpuStart = process.cpuUsage();
  measureStart = performance.now();
  measuring = true;
}, WARMUP * 1000);
setTimeout(() => {
  const elapsed = (performance.now() - measureStart) / 1000;
  const cpu = process.cpuUsage();
  measuring = false;
  stopping = true;
  clearInterval(poll);
  const percentile = (p: number) => {
    const rank = Math.ceil(messages * p);
    let seen = 0;
    for (let b = 0; b < histogram.length; b++) {
      seen += histogram[b];
      if (seen >= rank) return (b + 0.5) * BUCKET_MS;
    }
    return NaN;
  };
  const user = (cpu.user - cpuStart.user) / 1e6;
  const system = (cpu.system - cpuStart.system) / 1e6;
  finish(errors.length || messages === 0 ? 1 : 0, {
    url: url.href,
    runtime: `bun ${Bun.version}`,
    conns: CONNS,
    inflight: INFLIGHT,
    size: SIZE,
    type: TYPE,
    seconds: Number(elapsed.toFixed(3)),
    messages,
    msgs_per_s: Math.round(messages / elapsed),
    mb_per_s: Number((bytes / 1e6 / elapsed).toFixed(2)),
    p50_ms: Number(percentile(0.5).toFixed(3)),
    p99_ms: Number(percentile(0.99).toFixed(3)),
    cpu_user_s: Number(user.toFixed(3)),
    cpu_system_s: Number(system.toFixed(3)),
    cpu_share: Number(((user + system) / elapsed).toFixed(3)),
    checksum,
    errors: errors.length,
  });
}, (WARMUP + SECONDS) * 1000);
