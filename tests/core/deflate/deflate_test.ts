import { test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Deflater, type DeflaterOptions } from "../../../src/core/deflate/deflate.ts";
import { joinBytes, Rng, SYNC_TAIL } from "../../_helpers.ts";

/** A seeded integer source: `next(n)` is in [0, n), the same on every run. */
function prng(seed: number): (n: number) => number {
  const rng = new Rng(seed);
  return (n) => rng.int(n);
}

function randomBytes(size: number, seed = 1): Uint8Array {
  return new Rng(seed).bytes(size);
}

/** Chatty JSON: arrays of records with repeated keys, numbers and short strings. */
function json(size: number, seed = 1): Uint8Array {
  const next = prng(seed);
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];
  const pick = () => words[next(words.length)];
  let text = "";
  for (let id = 0; text.length < size; id++) {
    const records = Array.from({ length: 1 + next(4) }, (_, i) => ({
      id: id * 10 + i,
      user: `${pick()}_${next(1000)}`,
      score: next(100000) / 100,
      tags: [pick(), pick()],
      text: `${pick()} ${pick()} ${pick()}`,
      active: next(2) === 1,
    }));
    text += JSON.stringify({ type: "update", seq: id, records }) + "\n";
  }
  return new TextEncoder().encode(text.slice(0, size));
}

/** Decodes a stream of sync-flushed messages with node:zlib, given the window it was made for. */
function zlibInflate(stream: Uint8Array, windowBits = 15): Uint8Array {
  return new Uint8Array(
    zlib.inflateRawSync(stream, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  );
}

/**
 * A small raw DEFLATE decoder after zlib's puff, reporting the furthest
 * back-reference: zlib's inflate only rejects references before the data it
 * has seen, not ones beyond its window, so it can't check the window bound.
 */
function inflateChecked(stream: Uint8Array): { output: Uint8Array; maxDistance: number } {
  let at = 0;
  let bitBuffer = 0;
  let bitCount = 0;
  const bits = (n: number) => {
    while (bitCount < n) {
      if (at >= stream.length) throw new Error("stream ends mid-block");
      bitBuffer |= stream[at++] << bitCount;
      bitCount += 8;
    }
    const value = bitBuffer & ((1 << n) - 1);
    bitBuffer >>>= n;
    bitCount -= n;
    return value;
  };
  let output = new Uint8Array(1024);
  let length = 0;
  const push = (byte: number) => {
    if (length === output.length) {
      const grown = new Uint8Array(output.length * 2);
      grown.set(output);
      output = grown;
    }
    output[length++] = byte;
  };
  type Code = { counts: number[]; symbols: number[] };
  const huffman = (lengths: number[]): Code => {
    const counts = new Array(16).fill(0);
    for (const l of lengths) counts[l]++;
    const offsets = [0, 0];
    for (let l = 1; l < 15; l++) offsets.push(offsets[l] + counts[l]);
    const symbols: number[] = [];
    for (let symbol = 0; symbol < lengths.length; symbol++) {
      if (lengths[symbol] !== 0) symbols[offsets[lengths[symbol]]++] = symbol;
    }
    return { counts, symbols };
  };
  const decode = ({ counts, symbols }: Code) => {
    for (let l = 1, value = 0, first = 0, index = 0; l <= 15; l++) {
      value |= bits(1);
      if (value - counts[l] < first) return symbols[index + value - first];
      index += counts[l];
      first = (first + counts[l]) << 1;
      value <<= 1;
    }
    throw new Error("invalid code");
  };
  // RFC 1951 §3.2.5: the extra bits grow by one every 4 length codes and every 2 distance codes.
  const lengthExtra = (code: number) => (code < 8 || code === 28 ? 0 : (code >> 2) - 1);
  const distExtra = (code: number) => (code < 4 ? 0 : (code >> 1) - 1);
  const lengthBase = [3];
  const distBase = [1];
  for (let code = 1; code < 30; code++) {
    lengthBase.push(lengthBase[code - 1] + (1 << lengthExtra(code - 1)));
    distBase.push(distBase[code - 1] + (1 << distExtra(code - 1)));
  }
  lengthBase[28] = 258;
  const fixedLit = huffman(
    Array.from({ length: 288 }, (_, s) => s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8),
  );
  const fixedDist = huffman(Array(30).fill(5));
  let maxDistance = 0;
  while (at < stream.length) {
    assert.equal(bits(1), 0, "BFINAL is never set");
    const type = bits(2);
    if (type === 0) {
      bitBuffer = bitCount = 0;
      const size = stream[at] | (stream[at + 1] << 8);
      assert.equal(size ^ (stream[at + 2] | (stream[at + 3] << 8)), 0xffff);
      for (const byte of stream.subarray(at + 4, at + 4 + size)) push(byte);
      at += 4 + size;
      continue;
    }
    let lit = fixedLit;
    let dist = fixedDist;
    if (type === 2) {
      const litCount = bits(5) + 257;
      const distCount = bits(5) + 1;
      const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
      const codeLengths = Array(19).fill(0);
      for (let i = 0, n = bits(4) + 4; i < n; i++) codeLengths[order[i]] = bits(3);
      const lengthCode = huffman(codeLengths);
      const lengths: number[] = [];
      while (lengths.length < litCount + distCount) {
        const symbol = decode(lengthCode);
        if (symbol < 16) lengths.push(symbol);
        else if (symbol === 16) lengths.push(...Array(3 + bits(2)).fill(lengths.at(-1)));
        else lengths.push(...Array(symbol === 17 ? 3 + bits(3) : 11 + bits(7)).fill(0));
      }
      lit = huffman(lengths.slice(0, litCount));
      dist = huffman(lengths.slice(litCount));
    } else {
      assert.equal(type, 1, "reserved block type");
    }
    for (let symbol = decode(lit); symbol !== 256; symbol = decode(lit)) {
      if (symbol < 256) {
        push(symbol);
        continue;
      }
      const size = lengthBase[symbol - 257] + bits(lengthExtra(symbol - 257));
      const d = decode(dist);
      const distance = distBase[d] + bits(distExtra(d));
      assert.ok(distance <= length, "distance before the start of the stream");
      maxDistance = Math.max(maxDistance, distance);
      for (let i = 0; i < size; i++) push(output[length - distance]);
    }
  }
  return { output: output.slice(0, length), maxDistance };
}

/** Compresses each message with a sync flush, checking each ends with 00 00 ff ff. */
function compressMessages(deflater: Deflater, messages: readonly Uint8Array[]): Uint8Array[] {
  return messages.map((message) => {
    const out = deflater.write(message, true);
    assert.deepEqual(out.subarray(-4), SYNC_TAIL);
    return out;
  });
}

test("context is kept across messages at every window size, never reaching past the window", () => {
  const pool = json(6000, 3);
  for (let windowBits = 8; windowBits <= 15; windowBits++) {
    // Later messages repeat pieces of earlier ones, from near and far back.
    const next = prng(windowBits);
    const messages = Array.from({ length: 24 }, (_, i) => {
      const start = next(pool.length - 600);
      return i % 3 === 2 ? pool.subarray(start, start + 50 + next(500)) : json(200 + next(1500), i);
    });
    const deflater = new Deflater({ windowBits });
    const outputs = compressMessages(deflater, messages);
    const stream = joinBytes(outputs);
    const input = joinBytes(messages);
    assert.deepEqual(zlibInflate(stream, windowBits), input, `windowBits ${windowBits}`);
    const { output, maxDistance } = inflateChecked(stream);
    assert.deepEqual(output, input);
    assert.ok(maxDistance <= 1 << windowBits, `windowBits ${windowBits}: distance ${maxDistance}`);

    // A message sent again while still in the window refers back to it: a few bytes.
    const repeat = messages[23].length < 1 << windowBits ? messages[23] : messages[23].subarray(0, 200);
    deflater.write(repeat, true);
    assert.ok(deflater.write(repeat, true).length < 16, `windowBits ${windowBits}: repeat`);
  }
});

test("data repeating just beyond the window is not referred to; just within, it is", () => {
  for (const windowBits of [8, 9, 12, 15]) {
    const size = 1 << windowBits;
    const block = randomBytes(size + 40, windowBits);
    const beyond = joinBytes([block, block, block]);
    const half = block.subarray(0, size - Math.min(300, size / 4));
    const within = joinBytes([half, half]);
    for (const input of [beyond, within]) {
      const out = new Deflater({ windowBits }).write(input, true);
      const { output, maxDistance } = inflateChecked(out);
      assert.deepEqual(output, input);
      assert.ok(maxDistance <= size, `windowBits ${windowBits}: distance ${maxDistance}`);
      assert.deepEqual(zlibInflate(out, windowBits), input);
    }
    // Only the repetition within the window compresses.
    assert.ok(new Deflater({ windowBits }).write(beyond, true).length > beyond.length * 0.99);
    assert.ok(new Deflater({ windowBits }).write(within, true).length < within.length * 0.6);
  }
});

test("a sync-flushed message with a final empty block appended decodes with DecompressionStream", async () => {
  const input = json(20000, 5);
  const out = new Deflater().write(input, true);
  const stream = new Blob([out, new Uint8Array([0x03, 0x00])]).stream()
    .pipeThrough(new DecompressionStream("deflate-raw"));
  assert.deepEqual(new Uint8Array(await new Response(stream).arrayBuffer()), input);
});

test("after reset() the output refers to nothing earlier: it decodes alone, as a new deflater's does", () => {
  const deflater = new Deflater({ windowBits: 12 });
  const message = json(1000, 9);
  // Starts with the end of `message`, which a hash table not quite cleared would still point into.
  const next = joinBytes([message.subarray(900), message]);
  // A short stream and a long one (past a slide of the window) before the reset.
  for (const before of [message, json(100_000, 2)]) {
    compressMessages(deflater, [before]);
    deflater.reset();
    const out = deflater.write(next, true);
    assert.deepEqual(zlibInflate(out, 12), next);
    assert.deepEqual(out, new Deflater({ windowBits: 12 }).write(next, true));
    deflater.reset();
  }
});

test("deflaters reset after every message and ones keeping context interleave correctly", () => {
  // Reset deflaters hand their buffers on; one mid-message, and one keeping context, keep theirs.
  const keeping = new Deflater();
  const streaming = new Deflater();
  const resetting = [new Deflater(), new Deflater()];
  const kept: Uint8Array[] = [];
  const streamed: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    const message = json(500 + i * 300, i);
    streamed.push(streaming.write(message, false));
    for (const deflater of resetting) {
      const out = deflater.write(message, true);
      assert.deepEqual(zlibInflate(out), message);
      deflater.reset();
    }
    kept.push(keeping.write(message, true));
  }
  streamed.push(streaming.write(new Uint8Array(0), true));
  const all = joinBytes(Array.from({ length: 6 }, (_, i) => json(500 + i * 300, i)));
  assert.deepEqual(zlibInflate(joinBytes(kept)), all);
  assert.deepEqual(zlibInflate(joinBytes(streamed)), all);
});

test("empty writes: a flush alone is an empty stored block; without flush, nothing", () => {
  for (const level of [0, 6]) {
    const deflater = new Deflater({ level });
    assert.deepEqual([...deflater.write(new Uint8Array(0), false)], []);
    assert.deepEqual([...deflater.write(new Uint8Array(0), true)], [0x00, ...SYNC_TAIL]);
    const out = deflater.write(new TextEncoder().encode("hello"), true);
    assert.deepEqual(
      new TextDecoder().decode(zlibInflate(joinBytes([new Uint8Array([0x00, ...SYNC_TAIL]), out]))),
      "hello",
    );
    assert.deepEqual(deflater.write(new Uint8Array(0), true).subarray(-4), SYNC_TAIL);
  }
});

test("pieces written without flush, then flushed, decode as one message", () => {
  for (const level of [0, 1, 6]) {
    const input = json(50_000, 4);
    const deflater = new Deflater({ level });
    const outputs = [];
    for (let at = 0; at < input.length; at += 7000) {
      outputs.push(deflater.write(input.subarray(at, at + 7000), false));
    }
    outputs.push(deflater.write(new Uint8Array(0), true));
    assert.deepEqual(zlibInflate(joinBytes(outputs)), input, `level ${level}`);
  }
  // With a small window and few hash heads the window slides by little, so the end of a
  // flushed message can be more than one slide from where new input fits.
  const first = json(770, 1);
  const second = json(2000, 2);
  const small = new Deflater({ windowBits: 8, memLevel: 1 });
  const outputs = [small.write(first, true)];
  for (let at = 0; at < second.length; at += 1000) {
    outputs.push(small.write(second.subarray(at, at + 1000), false));
  }
  outputs.push(small.write(new Uint8Array(0), true));
  assert.deepEqual(zlibInflate(joinBytes(outputs), 8), joinBytes([first, second]));
  // Input stays buffered until enough of it has come: no output for a small first piece.
  const input = json(200, 4);
  const deflater = new Deflater();
  assert.equal(deflater.write(input.subarray(0, 100), false).length, 0);
  assert.deepEqual(zlibInflate(deflater.write(input.subarray(100), true)), input);
});

test("1 MiB of random bytes is stored, hardly expanding", () => {
  const input = randomBytes(1 << 20, 7);
  for (const windowBits of [8, 15]) {
    const out = new Deflater({ windowBits }).write(input, true);
    // A 5-byte header per stored block: 0.1% at most.
    assert.ok(out.length < input.length * 1.001, `windowBits ${windowBits}: ${out.length} bytes`);
    assert.deepEqual(zlibInflate(out, windowBits), input);
  }
});

test("1 MiB of zeros compresses to about 1 KiB", () => {
  const input = new Uint8Array(1 << 20);
  for (const windowBits of [8, 15]) {
    const out = new Deflater({ windowBits }).write(input, true);
    assert.ok(out.length < 1100, `${out.length} bytes`);
    const { output, maxDistance } = inflateChecked(out);
    assert.deepEqual(output, input);
    assert.ok(maxDistance <= 1 << windowBits);
  }
});

test("compresses JSON within 10% of zlib level 6 at the same window size", () => {
  const input = json(200_000, 11);
  for (const windowBits of [9, 12, 15]) {
    const ours = new Deflater({ windowBits }).write(input, true);
    const theirs = zlib.deflateRawSync(input, { level: 6, windowBits });
    assert.ok(
      ours.length <= theirs.length * 1.1,
      `windowBits ${windowBits}: ${ours.length} vs ${theirs.length}`,
    );
    assert.deepEqual(zlibInflate(ours, windowBits), input);
  }
});

test("levels 0 to 9 and memory levels 1 to 9 all round-trip; higher levels compress better", () => {
  const input = joinBytes([
    json(60_000, 6),
    randomBytes(3000),
    new Uint8Array(5000).fill(32),
    json(20_000, 6),
  ]);
  const sizes: number[] = [];
  for (let level = 0; level <= 9; level++) {
    const out = new Deflater({ level }).write(input, true);
    assert.deepEqual(zlibInflate(out), input, `level ${level}`);
    sizes.push(out.length);
  }
  // Level 0 stores: a 5-byte header per 65535 bytes, then the flush.
  assert.equal(sizes[0], input.length + 5 * Math.ceil(input.length / 65535) + 5);
  assert.ok(sizes[9] <= sizes[6] && sizes[6] < sizes[1] && sizes[1] < sizes[0] / 3, `${sizes}`);
  for (const memLevel of [1, 5, 9]) {
    for (const windowBits of [8, 15]) {
      const options: DeflaterOptions = { memLevel, windowBits, level: 9 };
      const out = new Deflater(options).write(input, true);
      const { output, maxDistance } = inflateChecked(out);
      assert.deepEqual(output, input, JSON.stringify(options));
      assert.ok(maxDistance <= 1 << windowBits);
    }
  }
});

test("options out of range throw RangeError", () => {
  const invalid: DeflaterOptions[] = [
    { windowBits: 7 },
    { windowBits: 16 },
    { windowBits: 9.5 },
    { windowBits: NaN },
    { memLevel: 0 },
    { memLevel: 10 },
    { level: -1 },
    { level: 10 },
  ];
  for (const options of invalid) {
    assert.throws(() => new Deflater(options), RangeError, JSON.stringify(options));
  }
  new Deflater({ windowBits: 8, memLevel: 1, level: 0 });
  new Deflater({ windowBits: 15, memLevel: 9, level: 9 });
});
