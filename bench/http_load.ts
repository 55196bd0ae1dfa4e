/**
 * An HTTP/1.1 load generator for Bun, for bench/http.ts: light enough that
 * the server under test (not this process) is the bottleneck. Two modes:
 *
 *   bun bench/http_load.ts --mode load --port 9001 --target hello --conns 100 \
 *     --inflight 16 --seconds 3 [--warmup 0.5] [--host 127.0.0.1]
 *   bun bench/http_load.ts --mode idle --port 9001 --conns 5000
 *
 * Targets (the routes of bench/servers/http_deno.ts):
 *
 * - hello: `GET /hello`, expecting the 13-byte `Hello, World!`
 * - json: `POST /json` with a 1 KiB JSON object of 16 keys, expecting
 *   `{"ok":true,"n":16}`
 * - stream: `GET /stream`, expecting a 1 MiB body (chunked or not)
 *
 * Connections are raw TCP (`Bun.connect`), at most `--concurrency` (200)
 * connecting at a time. Requests are pre-built bytes; every response is
 * parsed just enough to frame it: the status line (which must say 200), the
 * Content-Length and Transfer-Encoding headers, then the body by its length or
 * by its chunked framing (chunk sizes, extensions, trailers), without copying
 * it. Each body's length must be the expected one; a response without framing,
 * with `Connection: close`, or a connection the server closes fails the run.
 *
 * - load: keeps `inflight` requests outstanding on each connection, pipelined
 *   when above 1, and sends a new request for each response. Latency is from
 *   the write of a request to the read that completed its response.
 * - idle: opens `conns` connections, sends one `GET /hello` on each and reads
 *   its response, then prints `IDLE_OPEN {...}` and leaves them open until a
 *   line (or the end) on standard input. bench/http.ts reads the server's RSS
 *   in between. Connections the server closed meanwhile fail the run.
 *
 * Counts cover `seconds` after `warmup` seconds. Prints one `LOAD_JSON {...}`
 * line (responses per second, MB/s of response body in 10^6 bytes, p50/p99
 * latency in ms, this process's CPU time as a share of one core over the
 * window, and its CPU seconds since it started) and exits; exits with 1 and
 * the first errors on stderr if any check failed. Options, the report,
 * connections and the measured window are bench/_bun.ts's, shared with
 * bench/load.ts.
 *
 * @module
 */

import { option } from "../examples/args.ts";
import { BunClient, Histogram, InFlight, numberOption, openAll, run, stdinLines, Window } from "./_bun.ts";

// ---- Options ----------------------------------------------------------------

const MODE = option("mode", "load");
const HOST = option("host", "127.0.0.1");
const PORT = numberOption("port", "9001");
const TARGET = MODE === "idle" ? "hello" : option("target", "hello");
const CONNS = numberOption("conns", "100");
const INFLIGHT = MODE === "idle" ? 1 : numberOption("inflight", "1");
const SECONDS = numberOption("seconds", "3", false);
const WARMUP = numberOption("warmup", "0.5", false);
const CONCURRENCY = numberOption("concurrency", "200");
if (MODE !== "load" && MODE !== "idle") throw new Error("--mode must be load or idle");
// Whatever happens, this process ends by itself.
run.start({ mode: MODE, target: TARGET }, MODE === "idle" ? 180 : WARMUP + SECONDS + 60);

// ---- Requests ---------------------------------------------------------------

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A 1 KiB JSON object of 16 string values. */
function jsonBody(): string {
  const keys = 16;
  const entries = Array.from({ length: keys }, (_, k) => [`key${String(k).padStart(2, "0")}`, ""]);
  const bare = JSON.stringify(Object.fromEntries(entries)).length;
  const fill = 1024 - bare;
  entries.forEach((entry, k) => {
    const length = Math.floor(fill / keys) + (k < fill % keys ? 1 : 0);
    entry[1] = Array.from({ length }, (_, i) => String.fromCharCode(97 + (k * 7 + i) % 26)).join("");
  });
  const body = JSON.stringify(Object.fromEntries(entries));
  if (body.length !== 1024) throw new Error(`JSON body of ${body.length} bytes`);
  return body;
}

const head = (method: string, path: string) => `${method} ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\n`;
const targets: Record<string, { request: string; body: number }> = {
  hello: { request: `${head("GET", "/hello")}\r\n`, body: "Hello, World!".length },
  json: {
    request: `${head("POST", "/json")}Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n` +
      jsonBody(),
    body: JSON.stringify({ ok: true, n: 16 }).length,
  },
  stream: { request: `${head("GET", "/stream")}\r\n`, body: 1 << 20 },
};
if (!(TARGET in targets)) throw new Error("--target must be hello, json or stream");
const REQUEST = encoder.encode(targets[TARGET].request);
const BODY = targets[TARGET].body;
/** `INFLIGHT` requests back to back: a refill of `n` is one write of its first `n`. */
const requests = new Uint8Array(REQUEST.length * INFLIGHT);
for (let k = 0; k < INFLIGHT; k++) requests.set(REQUEST, k * REQUEST.length);

// ---- Measurement ------------------------------------------------------------

const latency = new Histogram();
let verified = 0;

// ---- Responses --------------------------------------------------------------

// Parser states.
const HEAD = 0;
const BODY_BYTES = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_END = 4;
const TRAILERS = 5;

const CONTENT_LENGTH = encoder.encode("content-length:");
const TRANSFER_ENCODING = encoder.encode("transfer-encoding:");
const CONNECTION = encoder.encode("connection:");

/** Whether the header line at `start` begins with `name` (lower case), in any case. */
function named(bytes: Uint8Array, start: number, end: number, name: Uint8Array): boolean {
  if (end - start < name.length) return false;
  for (let i = 0; i < name.length; i++) if ((bytes[start + i] | 0x20) !== name[i]) return false;
  return true;
}

/** The header value `bytes[start, end)`, trimmed and in lower case (for the rare headers). */
const value = (bytes: Uint8Array, start: number, end: number) =>
  latin1.decode(bytes.subarray(start, end)).trim().toLowerCase();

/** The decimal number `bytes[start, end)` (spaces around it allowed), or -1. */
function decimal(bytes: Uint8Array, start: number, end: number): number {
  while (start < end && (bytes[start] === 0x20 || bytes[start] === 0x09)) start++;
  while (end > start && (bytes[end - 1] === 0x20 || bytes[end - 1] === 0x09)) end--;
  if (start === end || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i] - 0x30;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

/** A hex digit's value, or -1. */
function hex(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * One client connection: writes that wait for `drain`, and a response parser
 * that counts the responses completed in each chunk read (`parsed`).
 */
class Conn extends BunClient {
  /** The unparsed rest of a chunk that ended inside a response head. */
  #carry: Uint8Array | undefined;
  #state = HEAD;
  /** Bytes left of the body (BODY_BYTES) or of the chunk (CHUNK_DATA). */
  #remaining = 0;
  /** Body bytes of the response so far. */
  #body = 0;
  /** The chunk size being read, its digits, whether in its extensions; the trailer line's length. */
  #size = 0;
  #digits = 0;
  #extension = false;
  #line = 0;
  /** Responses completed in the chunk being parsed. */
  done = 0;

  connect(): void {
    this.connectTo(HOST, PORT);
  }

  opened(): void {
    this.resolveReady();
  }

  /** After a chunk of data is parsed, with `done` responses completed in it. */
  parsed(): void {}

  data(input: Uint8Array): void {
    let chunk = input;
    if (this.#carry) {
      chunk = new Uint8Array(this.#carry.length + input.length);
      chunk.set(this.#carry);
      chunk.set(input, this.#carry.length);
      this.#carry = undefined;
    }
    const n = chunk.length;
    let i = 0;
    parse: while (i < n) {
      switch (this.#state) {
        case HEAD: {
          const next = this.#head(chunk, i);
          if (next === -1) {
            // Copied: the chunk may be a view of a buffer Bun reuses.
            this.#carry = new Uint8Array(n - i);
            this.#carry.set(chunk.subarray(i));
          }
          if (next < 0) break parse;
          i = next;
          break;
        }
        case BODY_BYTES: {
          const take = Math.min(this.#remaining, n - i);
          this.#remaining -= take;
          this.#body += take;
          i += take;
          if (this.#remaining === 0) this.#complete();
          break;
        }
        case CHUNK_SIZE: {
          const byte = chunk[i++];
          const digit = hex(byte);
          if (byte === 0x0a) {
            if (this.#digits === 0) return this.fail("chunk size line without a size");
            if (this.#size === 0) {
              this.#state = TRAILERS;
              this.#line = 0;
            } else {
              this.#state = CHUNK_DATA;
              this.#remaining = this.#size;
            }
            this.#size = this.#digits = 0;
            this.#extension = false;
          } else if (this.#extension || byte === 0x0d) {
            // Chunk extensions are ignored.
          } else if (byte === 0x3b || byte === 0x20 || byte === 0x09) {
            this.#extension = true;
          } else if (digit >= 0 && this.#digits < 12) {
            this.#size = this.#size * 16 + digit;
            this.#digits++;
          } else {
            return this.fail(`bad chunk size byte ${byte}`);
          }
          break;
        }
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, n - i);
          this.#remaining -= take;
          this.#body += take;
          i += take;
          if (this.#remaining === 0) this.#state = CHUNK_END;
          break;
        }
        case CHUNK_END: {
          const byte = chunk[i++];
          if (byte === 0x0a) this.#state = CHUNK_SIZE;
          else if (byte !== 0x0d) return this.fail(`no CRLF after a chunk's data (byte ${byte})`);
          break;
        }
        case TRAILERS: {
          const byte = chunk[i++];
          if (byte === 0x0a) {
            if (this.#line === 0) this.#complete();
            this.#line = 0;
          } else if (byte !== 0x0d) {
            this.#line++;
          }
          break;
        }
      }
    }
    if (this.done) this.parsed();
  }

  /**
   * Parses the response head at `start`: the index after it, -1 if it is not complete in `bytes`,
   * -2 if it is not acceptable (after failing).
   */
  #head(bytes: Uint8Array, start: number): number {
    let newline = bytes.indexOf(0x0a, start);
    if (newline < 0) return -1;
    // "HTTP/1.x 200"
    if (
      newline - start < 13 || bytes[start] !== 0x48 || bytes[start + 5] !== 0x31 ||
      bytes[start + 8] !== 0x20 ||
      bytes[start + 9] !== 0x32 || bytes[start + 10] !== 0x30 || bytes[start + 11] !== 0x30
    ) {
      this.fail(`status line ${JSON.stringify(latin1.decode(bytes.subarray(start, newline)).trim())}`);
      return -2;
    }
    let length = -1;
    let chunked = false;
    for (let line = newline + 1;; line = newline + 1) {
      newline = bytes.indexOf(0x0a, line);
      if (newline < 0) return -1;
      const end = bytes[newline - 1] === 0x0d ? newline - 1 : newline;
      if (end === line) break;
      const first = bytes[line] | 0x20;
      if (first === 0x63 && named(bytes, line, end, CONTENT_LENGTH)) {
        length = decimal(bytes, line + CONTENT_LENGTH.length, end);
        if (length < 0) {
          this.fail(`bad Content-Length ${JSON.stringify(value(bytes, line, end))}`);
          return -2;
        }
      } else if (first === 0x74 && named(bytes, line, end, TRANSFER_ENCODING)) {
        chunked = value(bytes, line + TRANSFER_ENCODING.length, end).endsWith("chunked");
      } else if (first === 0x63 && named(bytes, line, end, CONNECTION)) {
        // Node sends `Connection: keep-alive` with every response: decoded only when it may say close.
        let c = line + CONNECTION.length;
        while (c < end && (bytes[c] | 0x20) !== 0x63) c++;
        if (c < end && value(bytes, line + CONNECTION.length, end).includes("close")) {
          this.fail("Connection: close in a response");
          return -2;
        }
      }
    }
    this.#body = 0;
    if (chunked) {
      this.#state = CHUNK_SIZE;
    } else if (length > 0) {
      this.#state = BODY_BYTES;
      this.#remaining = length;
    } else if (length === 0) {
      this.#complete();
    } else {
      this.fail("a response neither chunked nor with a Content-Length");
      return -2;
    }
    return newline + 1;
  }

  #complete(): void {
    if (this.#body !== BODY) this.fail(`a body of ${this.#body} bytes, expected ${BODY}`);
    this.#state = HEAD;
    this.done++;
  }
}

// ---- load -------------------------------------------------------------------

class LoadConn extends Conn {
  /** The requests sent and not answered yet; `n` of them are one write of `requests`' first `n`. */
  readonly inFlight = new InFlight(
    INFLIGHT,
    latency,
    (n) => this.write(n === INFLIGHT ? requests : requests.subarray(0, n * REQUEST.length)),
  );

  override parsed(): void {
    const done = this.done;
    this.done = 0;
    const outstanding = this.inFlight.count;
    if (done > outstanding) return this.fail(`${done} responses to ${outstanding} requests`);
    verified += done;
    this.inFlight.answered(done);
  }
}

async function load(): Promise<Record<string, unknown>> {
  const conns = await openAll(CONNS, CONCURRENCY, (id) => new LoadConn(id));
  const now = performance.now();
  for (const conn of conns) conn.inFlight.send(INFLIGHT, now);
  const { seconds, cpu_share } = await run.measure(WARMUP, SECONDS);
  const responses = latency.count;
  if (!responses) run.fail("no responses in the measured window");
  run.stopping = true;
  return {
    conns: CONNS,
    inflight: INFLIGHT,
    seconds,
    cpu_share,
    responses,
    verified,
    rate: Math.round(responses / seconds),
    mb_per_s: Number((responses * BODY / 1e6 / seconds).toFixed(2)),
    ...latency.quantiles(),
  };
}

// ---- idle -------------------------------------------------------------------

/** Sends one request once connected and is ready once its response is in. */
class IdleConn extends Conn {
  override opened(): void {
    this.write(REQUEST);
  }

  override parsed(): void {
    verified += this.done;
    this.done = 0;
    this.resolveReady();
  }
}

async function idle(): Promise<Record<string, unknown>> {
  const nextLine = stdinLines();
  const opening = new Window();
  const conns = await openAll(CONNS, CONCURRENCY, (id) => new IdleConn(id));
  const { seconds: open_s } = opening.end();
  console.log(`IDLE_OPEN ${JSON.stringify({ conns: conns.length, verified, open_s })}`);
  await nextLine();
  // A connection the server closed meanwhile has failed the run by now.
  run.stopping = true;
  return { conns: conns.length, verified, open_s };
}

// ---- main -------------------------------------------------------------------

run.finish(await (MODE === "idle" ? idle() : load()));
