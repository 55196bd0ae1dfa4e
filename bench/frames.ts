/**
 * Frame throughput of sock's protocol core, on whichever runtime runs it:
 *
 *   deno run bench/frames.ts
 *   bun bench/frames.ts
 *
 * Workloads (the median of several timed repetitions after warm-up):
 *
 * - decode: an OPEN `ServerProtocol` is fed a stream of client frames (masked
 *   with random keys), in 64 KiB chunks as socket reads would deliver them, or
 *   one whole frame per chunk; `events()` is drained after every chunk and the
 *   messages are counted, measured and sampled against the plaintext.
 *   1 MiB binary frames are reported in MB/s of payload (1 MB = 10^6 bytes),
 *   32-byte text frames in messages/s.
 * - encode: a server sends 32-byte texts (`dataToSend()` every 100 messages)
 *   and 1 MiB binaries (`dataToSend()` after each).
 * - mask: `mask()` over 1 MiB, into another buffer and in place.
 *
 * The byte streams are built from a seeded generator with the same recipe as
 * bench/ws_receiver.mjs, so both decode identical bytes (`digest` proves it).
 * The last line is `BENCH_JSON {...}` for bench/run.ts.
 *
 * @module
 */

import { concat } from "../src/core/bytes.ts";
import { FrameEncoder, mask, Opcode, ServerProtocol } from "../src/core/mod.ts";
import {
  BIN_FRAMES,
  BIN_SIZE,
  CHUNK,
  digest,
  measure,
  prng,
  sample,
  SEED,
  TEXT_FRAMES,
  TEXT_SIZE,
} from "./recipe.mjs";

const MiB = 1024 * 1024;

interface Stream {
  bytes: Uint8Array;
  /** One view per frame. */
  frames: Uint8Array[];
  messages: number;
  payloadBytes: number;
  check: number;
}

/**
 * `count` masked frames with random payloads (binary) or random printable
 * ASCII (text); for each frame the payload is drawn first, then the key.
 */
function buildStream(seed: number, opcode: number, count: number, size: number): Stream {
  const next = prng(seed);
  const encoder = new FrameEncoder({ next });
  const lengths: number[] = [];
  let check = 0;
  const parts: Uint8Array[] = [];
  for (let f = 0; f < count; f++) {
    const payload = new Uint8Array(size);
    if (opcode === Opcode.Text) {
      for (let i = 0; i < size; i++) payload[i] = 0x20 + next() % 95;
    } else {
      for (let i = 0; i < size; i += 4) {
        const r = next();
        payload[i] = r & 0xff;
        payload[i + 1] = (r >>> 8) & 0xff;
        payload[i + 2] = (r >>> 16) & 0xff;
        payload[i + 3] = r >>> 24;
      }
    }
    check = sample(check, size, payload[0], payload[size >> 1], payload[size - 1]);
    const before = encoder.pending;
    encoder.frame(opcode, payload, true, 0);
    lengths.push(encoder.pending - before);
    if (encoder.pending >= 8 * MiB) parts.push(...encoder.take());
  }
  parts.push(...encoder.take());
  const bytes = concat(parts);
  const frames: Uint8Array[] = [];
  let at = 0;
  for (const length of lengths) {
    frames.push(bytes.subarray(at, at + length));
    at += length;
  }
  return { bytes, frames, messages: count, payloadBytes: count * size, check };
}

function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

// ---- Harness ----------------------------------------------------------------

const UPGRADE = new TextEncoder().encode(
  "GET /bench HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

function openServer(): ServerProtocol {
  const server = new ServerProtocol({ maxMessageSize: 64 * MiB });
  // A copy, as a transport hands over bytes it read: the core parses the head where it is, and on
  // Deno a TextEncoder-made array seen there slows later text decoding by a sixth (V8 type feedback).
  server.receiveData(UPGRADE.slice());
  const [event] = server.events();
  if (event?.type !== "request") throw new Error(`expected a request event, got ${event?.type}`);
  server.accept();
  server.dataToSend();
  if (server.readyState !== 1) throw new Error("server did not open");
  return server;
}

/**
 * Feeds `chunks` to a fresh OPEN server, draining and checking events after every chunk; returns ms.
 * With `transfer`, each chunk is handed over (and may be unmasked in place), so fresh copies are
 * made before the clock starts.
 */
async function decode(stream: Stream, chunks: Uint8Array[], transfer = false): Promise<number> {
  const server = await openServer();
  if (transfer) chunks = chunks.map((chunk) => chunk.slice());
  const options = { transfer };
  let messages = 0, bytes = 0, check = 0;
  const start = performance.now();
  for (let c = 0; c < chunks.length; c++) {
    server.receiveData(chunks[c], options);
    const events = server.events();
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      if (event.type === "binary") {
        const d = event.data, n = d.length;
        bytes += n;
        check = sample(check, n, d[0], d[n >> 1], d[n - 1]);
      } else if (event.type === "text") {
        const s = event.data, n = s.length;
        bytes += n;
        check = sample(check, n, s.charCodeAt(0), s.charCodeAt(n >> 1), s.charCodeAt(n - 1));
      } else {
        throw new Error(`unexpected ${event.type} event: ${JSON.stringify(event)}`);
      }
      messages++;
    }
  }
  const elapsed = performance.now() - start;
  if (messages !== stream.messages || bytes !== stream.payloadBytes || check !== stream.check) {
    throw new Error(
      `decode check failed: ${messages} messages, ${bytes} bytes, check ${check}; ` +
        `expected ${stream.messages}, ${stream.payloadBytes}, ${stream.check}`,
    );
  }
  return elapsed;
}

// ---- Workloads ----------------------------------------------------------------

const runtime = typeof Deno !== "undefined"
  ? `deno ${Deno.version.deno}`
  : (globalThis as { Bun?: { version: string } }).Bun
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : "unknown";
const results: Record<string, number> = {};
const line = (label: string, value: number, unit: string) =>
  console.log(`${label.padEnd(48)} ${value.toFixed(unit === "msg/s" ? 0 : 1).padStart(14)} ${unit}`);
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1e3);
const perSecond = (count: number, ms: number) => count / (ms / 1e3);

console.log(`sock frames benchmark on ${runtime}`);

const bin = buildStream(SEED, Opcode.Binary, BIN_FRAMES, BIN_SIZE);
const text = buildStream(SEED + 1, Opcode.Text, TEXT_FRAMES, TEXT_SIZE);
const digests = { binary: digest(bin.bytes), text: digest(text.bytes) };

// (a) 1 MiB binary frames.
{
  const chunks = chunked(bin.bytes, CHUNK);
  const ms = await measure(3, 15, () => decode(bin, chunks));
  results.decode_bin_64k_mbps = mbps(bin.payloadBytes, ms);
  line("decode 1 MiB binary, 64 KiB chunks", results.decode_bin_64k_mbps, "MB/s");
  const ms2 = await measure(3, 15, () => decode(bin, bin.frames));
  results.decode_bin_frame_mbps = mbps(bin.payloadBytes, ms2);
  line("decode 1 MiB binary, whole-frame chunks", results.decode_bin_frame_mbps, "MB/s");
  const ms3 = await measure(3, 15, () => decode(bin, bin.frames, true));
  results.decode_bin_frame_transfer_mbps = mbps(bin.payloadBytes, ms3);
  line("  same, chunks transferred (unmasked in place)", results.decode_bin_frame_transfer_mbps, "MB/s");
}

// (b) 32-byte text frames.
{
  const chunks = chunked(text.bytes, CHUNK);
  const ms = await measure(5, 15, () => decode(text, chunks));
  results.decode_text32_msgs = perSecond(text.messages, ms);
  line("decode 32 B text, 64 KiB chunks", results.decode_text32_msgs, "msg/s");
}

// (c) Encoding on the server side (no masking).
{
  const next = prng(SEED + 2);
  const strings = Array.from({ length: 1000 }, () => {
    let s = "";
    for (let i = 0; i < TEXT_SIZE; i++) s += String.fromCharCode(0x20 + next() % 95);
    return s;
  });
  const server = await openServer();
  const sendTexts = () => {
    let bytes = 0;
    const start = performance.now();
    for (let i = 0; i < TEXT_FRAMES; i++) {
      server.send(strings[i % strings.length]);
      if (i % 100 === 99) { for (const chunk of server.dataToSend()) bytes += chunk.length; }
    }
    for (const chunk of server.dataToSend()) bytes += chunk.length;
    const elapsed = performance.now() - start;
    if (bytes !== TEXT_FRAMES * (2 + TEXT_SIZE)) throw new Error(`encode check failed: ${bytes} bytes`);
    return elapsed;
  };
  results.encode_text32_msgs = perSecond(TEXT_FRAMES, await measure(5, 15, sendTexts));
  line("encode 32 B text (server)", results.encode_text32_msgs, "msg/s");

  const payload = bin.bytes.subarray(0, BIN_SIZE);
  const sends = 256;
  const sendBinaries = () => {
    let bytes = 0;
    const start = performance.now();
    for (let i = 0; i < sends; i++) {
      server.send(payload);
      for (const chunk of server.dataToSend()) bytes += chunk.length;
    }
    const elapsed = performance.now() - start;
    if (bytes !== sends * (10 + BIN_SIZE)) throw new Error(`encode check failed: ${bytes} bytes`);
    return elapsed;
  };
  results.encode_bin_mbps = mbps(sends * BIN_SIZE, await measure(5, 15, sendBinaries));
  line("encode 1 MiB binary (server, by reference)", results.encode_bin_mbps, "MB/s");
}

// (d) mask() on 1 MiB.
{
  const source = bin.bytes.slice(14, 14 + BIN_SIZE);
  const target = new Uint8Array(BIN_SIZE);
  const keys = prng(SEED + 3);
  const rounds = 128;
  let sink = 0;
  const maskCopy = () => {
    const start = performance.now();
    for (let i = 0; i < rounds; i++) {
      mask(source, keys(), target, 0, 0);
      sink ^= target[i];
    }
    return performance.now() - start;
  };
  results.mask_copy_mbps = mbps(rounds * BIN_SIZE, await measure(5, 15, maskCopy));
  line("mask() 1 MiB into another buffer", results.mask_copy_mbps, "MB/s");
  const maskInPlace = () => {
    const start = performance.now();
    for (let i = 0; i < rounds; i++) {
      mask(target, keys(), target, 0, 0);
      sink ^= target[i];
    }
    return performance.now() - start;
  };
  results.mask_inplace_mbps = mbps(rounds * BIN_SIZE, await measure(5, 15, maskInPlace));
  line("mask() 1 MiB in place", results.mask_inplace_mbps, "MB/s");
  if (sink === -1) console.log(sink);
}

for (const key of Object.keys(results)) results[key] = Math.round(results[key] * 10) / 10;
console.log(
  "BENCH_JSON " + JSON.stringify({ impl: "sock", runtime, digests, results }),
);
