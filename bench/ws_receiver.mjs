/**
 * The decode workloads of bench/frames.ts, run through ws's own frame parser
 * (the `Receiver` a `WebSocket` feeds its socket's data to) on Node, with
 * bufferutil's native unmasking:
 *
 *   node bench/ws_receiver.mjs
 *
 * The byte streams follow the same recipe as bench/frames.ts (same seed, same
 * masked frames, same 64 KiB chunks), and `digest` in the JSON line lets
 * bench/run.ts check that they are identical. Messages are counted, measured
 * and sampled in the `'message'` handler just as frames.ts does with events.
 *
 * ws unmasks payloads in place, inside the chunks it is given, so before every
 * repetition (before the clock starts) the chunks' bytes are restored to the
 * stream as sent, as a socket hands it fresh bytes. Chunks go through
 * `receiver.write()` exactly as `WebSocket` does on `'data'`; the last one
 * carries a callback and the clock stops when it runs, so the time covers the
 * stream's deferred write bookkeeping too. ws delivers text as a validated
 * `Buffer`; the `toString` variant also turns it into a string, as sock does.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import process from "node:process";
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

const require = createRequire(new URL("../tools/dev/package.json", import.meta.url));
const { Receiver } = require("ws");
const wsVersion = require("ws/package.json").version;

const MiB = 1024 * 1024;

// ---- Is bufferutil native, and does ws use it? ------------------------------

const isNative = (fn) =>
  typeof fn === "function" && /\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(fn));
let bufferutil;
let bufferutilError = "";
try {
  bufferutil = require("bufferutil");
} catch (error) {
  bufferutilError = String(error);
}
const bufferutilNative = !!bufferutil && isNative(bufferutil.mask) && isNative(bufferutil.unmask);
// An absolute path bypasses ws's "exports" map and names the very module instance ws loaded.
const wsBufferUtil = require(join(dirname(require.resolve("ws")), "lib", "buffer-util.js"));
const wsUsesBufferutil = /bufferUtil\.unmask/.test(String(wsBufferUtil.unmask)) &&
  !process.env.WS_NO_BUFFER_UTIL;

/**
 * `count` masked frames with random payloads (binary) or random printable
 * ASCII (text); for each frame the payload is drawn first, then the key.
 * The frames are built by hand here; frames.ts uses sock's `FrameEncoder`.
 */
function buildStream(seed, opcode, count, size) {
  const next = prng(seed);
  const headerLength = 2 + (size < 126 ? 0 : size < 65536 ? 2 : 8) + 4;
  const bytes = Buffer.alloc(count * (headerLength + size));
  const frames = [];
  let check = 0;
  let at = 0;
  const payload = new Uint8Array(size);
  for (let f = 0; f < count; f++) {
    if (opcode === 1) {
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
    const key = next();
    const start = at;
    bytes[at++] = 0x80 | opcode;
    if (size < 126) {
      bytes[at++] = 0x80 | size;
    } else if (size < 65536) {
      bytes[at++] = 0x80 | 126;
      bytes[at++] = size >>> 8;
      bytes[at++] = size & 0xff;
    } else {
      bytes[at++] = 0x80 | 127;
      at += 4; // High 32 bits of the length: zero.
      bytes[at++] = size >>> 24;
      bytes[at++] = (size >>> 16) & 0xff;
      bytes[at++] = (size >>> 8) & 0xff;
      bytes[at++] = size & 0xff;
    }
    const k = [key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
    for (let i = 0; i < 4; i++) bytes[at++] = k[i];
    for (let i = 0; i < size; i++) bytes[at + i] = payload[i] ^ k[i & 3];
    at += size;
    frames.push([start, at]);
  }
  return { bytes, frames, messages: count, payloadBytes: count * size, check };
}

/**
 * The stream cut into chunks (`size` bytes each, or one per frame) over a
 * working copy of its bytes, with `restore()` to bring that copy back to the
 * bytes as sent: ws unmasks payloads in place inside the chunks it is given.
 */
function chunksOf(stream, size) {
  const work = Buffer.from(stream.bytes);
  const chunks = [];
  if (size === "frame") {
    for (const [start, end] of stream.frames) chunks.push(work.subarray(start, end));
  } else {
    for (let at = 0; at < work.length; at += size) chunks.push(work.subarray(at, at + size));
  }
  return { chunks, restore: () => work.set(stream.bytes) };
}

// ---- Harness ----------------------------------------------------------------

/**
 * Feeds `chunks` to a fresh server-side Receiver, as `WebSocket` does, and
 * checks what its `'message'` handler saw; resolves to the milliseconds taken.
 */
function decode(stream, { chunks, restore }, { toString = false } = {}) {
  restore();
  const receiver = new Receiver({ isServer: true, maxPayload: 256 * MiB, binaryType: "nodebuffer" });
  let messages = 0, bytes = 0, check = 0, failure;
  receiver.on("message", (data, isBinary) => {
    if (isBinary || !toString) {
      const n = data.length;
      bytes += n;
      check = sample(check, n, data[0], data[n >> 1], data[n - 1]);
    } else {
      const s = data.toString(), n = s.length;
      bytes += n;
      check = sample(check, n, s.charCodeAt(0), s.charCodeAt(n >> 1), s.charCodeAt(n - 1));
    }
    messages++;
  });
  receiver.on("error", (error) => failure = error);
  return new Promise((resolve, reject) => {
    const last = chunks.length - 1;
    const start = performance.now();
    for (let c = 0; c < last; c++) receiver.write(chunks[c]);
    receiver.write(chunks[last], (error) => {
      const elapsed = performance.now() - start;
      if (error || failure) return reject(error ?? failure);
      if (messages !== stream.messages || bytes !== stream.payloadBytes || check !== stream.check) {
        return reject(
          new Error(
            `decode check failed: ${messages} messages, ${bytes} bytes, check ${check}; ` +
              `expected ${stream.messages}, ${stream.payloadBytes}, ${stream.check}`,
          ),
        );
      }
      resolve(elapsed);
    });
  });
}

// ---- Workloads ----------------------------------------------------------------

const runtime = `node ${process.versions.node}`;
const results = {};
const line = (label, value, unit) =>
  console.log(`${label.padEnd(48)} ${value.toFixed(unit === "msg/s" ? 0 : 1).padStart(14)} ${unit}`);
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1e3);
const perSecond = (count, ms) => count / (ms / 1e3);

console.log(`ws ${wsVersion} Receiver benchmark on ${runtime}`);
console.log(
  `bufferutil: ${
    bufferutil
      ? `loaded from ${require.resolve("bufferutil")} (${bufferutilNative ? "native" : "JS fallback"})`
      : `not loaded: ${bufferutilError}`
  }; ws unmasks with it: ${wsUsesBufferutil}`,
);
if (!bufferutilNative || !wsUsesBufferutil) console.log("WARNING: ws is not using native bufferutil");

const bin = buildStream(SEED, 2, BIN_FRAMES, BIN_SIZE);
const text = buildStream(SEED + 1, 1, TEXT_FRAMES, TEXT_SIZE);
const digests = { binary: digest(bin.bytes), text: digest(text.bytes) };
const binChunks = chunksOf(bin, CHUNK);
const binFrames = chunksOf(bin, "frame");
const textChunks = chunksOf(text, CHUNK);

// (a) 1 MiB binary frames.
results.decode_bin_64k_mbps = mbps(
  bin.payloadBytes,
  await measure(3, 15, () => decode(bin, binChunks)),
);
line("decode 1 MiB binary, 64 KiB chunks", results.decode_bin_64k_mbps, "MB/s");
results.decode_bin_frame_mbps = mbps(
  bin.payloadBytes,
  await measure(3, 15, () => decode(bin, binFrames)),
);
line("decode 1 MiB binary, whole-frame chunks", results.decode_bin_frame_mbps, "MB/s");

// (b) 32-byte text frames.
results.decode_text32_msgs = perSecond(
  text.messages,
  await measure(5, 15, () => decode(text, textChunks)),
);
line("decode 32 B text, 64 KiB chunks", results.decode_text32_msgs, "msg/s");
results.decode_text32_string_msgs = perSecond(
  text.messages,
  await measure(5, 15, () => decode(text, textChunks, { toString: true })),
);
line("decode 32 B text, 64 KiB chunks, + toString()", results.decode_text32_string_msgs, "msg/s");

// (d) bufferutil on 1 MiB, for comparison with sock's mask().
if (bufferutil) {
  const source = Buffer.from(bin.bytes.subarray(14, 14 + BIN_SIZE));
  const target = Buffer.alloc(BIN_SIZE);
  const keys = prng(SEED + 3);
  const key = Buffer.alloc(4);
  const rounds = 128;
  let sink = 0;
  const run = (inPlace) => () => {
    const start = performance.now();
    for (let i = 0; i < rounds; i++) {
      key.writeUInt32BE(keys(), 0);
      if (inPlace) bufferutil.unmask(target, key);
      else bufferutil.mask(source, key, target, 0, BIN_SIZE);
      sink ^= target[i];
    }
    return performance.now() - start;
  };
  results.mask_copy_mbps = mbps(rounds * BIN_SIZE, await measure(5, 15, run(false)));
  line("bufferutil.mask() 1 MiB into another buffer", results.mask_copy_mbps, "MB/s");
  results.mask_inplace_mbps = mbps(rounds * BIN_SIZE, await measure(5, 15, run(true)));
  line("bufferutil.unmask() 1 MiB in place", results.mask_inplace_mbps, "MB/s");
  if (sink === -1) console.log(sink);
}

for (const key of Object.keys(results)) results[key] = Math.round(results[key] * 10) / 10;
console.log(
  "BENCH_JSON " +
    JSON.stringify({
      impl: `ws ${wsVersion}`,
      runtime,
      bufferutil: bufferutilNative && wsUsesBufferutil,
      digests,
      results,
    }),
);
