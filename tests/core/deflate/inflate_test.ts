import { test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Inflater, ProtocolError } from "../../../src/core/mod.ts";
import { joinBytes, jsonRecords, randomPieces, RFC7692, Rng, splits, SYNC_TAIL } from "../../_helpers.ts";

const encoder = new TextEncoder();

/** Chatty JSON records as bytes. */
function json(size: number, seed = 1): Uint8Array {
  return encoder.encode(jsonRecords(size, seed));
}

function inflateAll(inflater: Inflater, chunks: readonly Uint8Array[], limit?: number): Uint8Array {
  return joinBytes(chunks.map((chunk) => inflater.write(chunk, limit)));
}

function rejects(run: () => unknown, code: number, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

test("Inflater decodes the RFC 7692 §7.2.3 examples byte for byte", () => {
  const cases: [string, Uint8Array][] = [
    ["§7.2.3.1 one block, sync flush", RFC7692.hello],
    ["§7.2.3.3 stored block", RFC7692.stored],
    ["§7.2.3.4 BFINAL set", RFC7692.final],
    ["§7.2.3.5 two blocks", RFC7692.twoBlocks],
  ];
  for (const [label, bytes] of cases) {
    for (const split of splits(joinBytes([bytes, SYNC_TAIL]))) {
      const inflater = new Inflater();
      assert.equal(
        new TextDecoder().decode(inflateAll(inflater, split.chunks)),
        "Hello",
        `${label}, ${split.label}`,
      );
      assert.equal(inflater.atBoundary, true, `${label}, ${split.label}`);
    }
  }
});

test("Inflater keeps the window across messages (RFC 7692 §7.2.3.2) and forgets it on reset()", () => {
  const inflater = new Inflater();
  const first = joinBytes([RFC7692.hello, SYNC_TAIL]);
  const second = joinBytes([RFC7692.helloAgain, SYNC_TAIL]);
  assert.equal(new TextDecoder().decode(inflater.write(first)), "Hello");
  assert.equal(new TextDecoder().decode(inflater.write(second)), "Hello");
  inflater.reset();
  assert.equal(inflater.bufferSize, 0);
  rejects(() => inflater.write(second), 1007, /too far back/);
});

test("Inflater restarts after a final block and keeps referring to the window", () => {
  const inflater = new Inflater();
  inflater.write(joinBytes([RFC7692.final, SYNC_TAIL]));
  // Input after the final block is ignored until restart().
  assert.equal(inflater.write(new Uint8Array([0xf2, 0x48, 0x05, 0x00])).length, 0);
  inflater.restart();
  const out = inflater.write(joinBytes([RFC7692.helloAgain, SYNC_TAIL]));
  assert.equal(new TextDecoder().decode(out), "Hello");
});

test("Inflater decodes zlib's output at every window size and level, whole and in random pieces", () => {
  const data = json(100_000);
  const rng = new Rng(7);
  for (let windowBits = 9; windowBits <= 15; windowBits++) {
    for (const level of [0, 1, 6, 9]) {
      const compressed = new Uint8Array(zlib.deflateRawSync(data, { windowBits, level }));
      const label = `windowBits ${windowBits}, level ${level}`;
      assert.deepEqual(new Inflater(windowBits).write(compressed), data, label);
      const pieces = randomPieces(rng, compressed, 64);
      assert.deepEqual(inflateAll(new Inflater(windowBits), pieces), data, `${label}, in pieces`);
    }
  }
});

test("Inflater decodes a dynamic block cut at every offset and fed one byte at a time", () => {
  const data = json(3000, 3);
  const compressed = new Uint8Array(zlib.deflateRawSync(data));
  for (const split of splits(compressed)) {
    assert.deepEqual(inflateAll(new Inflater(), split.chunks), data, split.label);
  }
});

test("Inflater decodes a zlib stream of sync-flushed messages with context takeover, one by one", async () => {
  const deflate = zlib.createDeflateRaw({ windowBits: 15 });
  const chunks: Uint8Array[] = [];
  deflate.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  const inflater = new Inflater();
  for (let i = 0; i < 30; i++) {
    const message = json(200 + i * 97, i % 3);
    deflate.write(message);
    await new Promise<void>((resolve) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
    const compressed = joinBytes(chunks.splice(0));
    assert.deepEqual(inflater.write(compressed), message, `message ${i}`);
    assert.equal(inflater.atBoundary, true, `message ${i}`);
  }
  deflate.close();
});

test("Inflater decodes CompressionStream('deflate-raw') output, random and empty data too", async () => {
  const random = new Uint8Array(70_000);
  for (let at = 0; at < random.length; at += 65536) crypto.getRandomValues(random.subarray(at, at + 65536));
  for (
    const data of [json(50_000), random, new Uint8Array(0), new Uint8Array(300_000)] as Uint8Array<
      ArrayBuffer
    >[]
  ) {
    const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate-raw"));
    const compressed = new Uint8Array(await new Response(stream).arrayBuffer());
    const inflater = new Inflater();
    assert.deepEqual(inflater.write(compressed), data);
    assert.equal(inflater.atBoundary, true);
  }
});

test("Inflater refuses distances beyond its window with 1007", () => {
  // zlib with a 32 KiB window refers 20,000 bytes back; a 9-bit inflater may not follow.
  const chunk = json(20_000, 5);
  const compressed = new Uint8Array(zlib.deflateRawSync(joinBytes([chunk, chunk]), { windowBits: 15 }));
  rejects(() => new Inflater(9).write(compressed), 1007, /too far back/);
  assert.equal(new Inflater(15).write(compressed).length, 40_000);
});

test("Inflater reports corrupt streams with 1007", () => {
  const cases: [string, number[]][] = [
    ["reserved block type", [0x07]],
    ["stored length check", [0x00, 0x05, 0x00, 0xfa, 0xfe]],
    ["distance before the start", [0x02, 0x02, 0x00]], // Fixed block: length 3 at distance 1 with no output yet.
    // Dynamic block whose code length code has three codes of one bit.
    [
      "over-subscribed code",
      new BitWriter().put(0b100, 3).put(0, 14).put(1, 3).put(1, 3).put(1, 3).put(0, 11).bytes,
    ],
    ["too many length codes", [0xfc, 0x07, 0x00]],
  ];
  for (const [label, bytes] of cases) {
    assert.throws(() => new Inflater().write(new Uint8Array(bytes)), (error: unknown) => {
      assert.ok(error instanceof ProtocolError, label);
      assert.equal(error.code, 1007, label);
      return true;
    }, label);
  }
});

test("Inflater checks its window bits", () => {
  for (const bits of [7, 16, 9.5, NaN]) assert.throws(() => new Inflater(bits), RangeError);
});

/** Packs bit fields, least significant bit first, as DEFLATE does. */
class BitWriter {
  bytes: number[] = [];
  #bits = 0;
  #count = 0;

  put(value: number, n: number): this {
    this.#bits |= value << this.#count;
    this.#count += n;
    while (this.#count >= 8) {
      this.bytes.push(this.#bits & 0xff);
      this.#bits >>>= 8;
      this.#count -= 8;
    }
    return this;
  }

  /** A Huffman code: most significant bit first, so written reversed. */
  code(value: number, n: number): this {
    let reversed = 0;
    for (let i = 0; i < n; i++) reversed |= ((value >> i) & 1) << (n - 1 - i);
    return this.put(reversed, n);
  }

  /** Ends with a sync flush: an empty stored block on a byte boundary. */
  syncFlush(): Uint8Array {
    this.put(0, 3);
    if (this.#count > 0) this.put(0, 8 - this.#count);
    return new Uint8Array([...this.bytes, 0x00, 0x00, 0xff, 0xff]);
  }
}

/** A dynamic block that repeats one zero byte 258 bytes at a time: 2 bits per 258 bytes of output. */
function bomb(outputBytes: number): Uint8Array {
  const w = new BitWriter();
  const put = (value: number, n: number) => w.put(value, n);
  const code = (value: number, n: number) => w.code(value, n);
  // Literal/length code: 0 → 10, 256 → 11, 285 → 0; distance code: 0 → 0 (one code of one bit).
  put(0, 1), put(2, 2); // Not final, dynamic.
  put(286 - 257, 5), put(0, 5), put(18 - 4, 4);
  // Code length code: 18 → 0, 1 → 10, 2 → 11.
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
  const codeLengthLengths: Record<number, number> = { 18: 1, 1: 2, 2: 2 };
  for (const symbol of order) put(codeLengthLengths[symbol] ?? 0, 3);
  const zeros = (n: number) => (code(0, 1), put(n - 11, 7));
  code(0b11, 2); // Literal 0: length 2.
  zeros(138), zeros(117); // Literals 1–255: unused.
  code(0b11, 2); // 256: length 2.
  zeros(28); // Lengths 257–284: unused.
  code(0b10, 2); // 285 (length 258): length 1.
  code(0b10, 2); // Distance 0 (distance 1): length 1.
  // Codes: 285 → 0, 0 → 10, 256 → 11; distance 0 → 0.
  code(0b10, 2); // Literal 0.
  for (let made = 1; made + 258 <= outputBytes; made += 258) put(0, 2); // Length 258, distance 1.
  code(0b11, 2); // End of block.
  return w.syncFlush();
}

test("Inflater stops a decompression bomb at the limit without allocating past it", () => {
  const small = bomb(1 << 20);
  assert.equal(new Inflater().write(small).length, 1 + Math.floor(((1 << 20) - 1) / 258) * 258);
  const huge = bomb(1 << 30); // About 1 MiB that inflates to 1 GiB.
  assert.ok(huge.length < 1_100_000);
  const inflater = new Inflater();
  rejects(() => inflater.write(huge, 16 << 20), 1009);
  assert.ok(inflater.bufferSize <= (16 << 20) + 65536, `holds ${inflater.bufferSize} bytes`);
});

test("Inflater holds a window only while it keeps one", () => {
  const inflater = new Inflater(10);
  assert.equal(inflater.bufferSize, 0);
  inflater.write(new Uint8Array(zlib.deflateRawSync(json(1 << 20), { windowBits: 10 })));
  assert.ok(inflater.bufferSize <= 2048 + 320, `holds ${inflater.bufferSize} bytes`);
  inflater.reset();
  assert.equal(inflater.bufferSize, 0);
});

/** A dynamic block header whose literal code is complete but whose distance code is over-subscribed. */
function badDistanceCodeHeader(): Uint8Array {
  const bytes: number[] = [];
  let acc = 0, n = 0;
  const put = (value: number, bits: number) => {
    acc |= value << n;
    n += bits;
    for (; n >= 8; n -= 8, acc >>>= 8) bytes.push(acc & 0xff);
  };
  // BFINAL, dynamic; 257 literal/length codes, 3 distance codes, 18 code-length codes.
  put(1, 1), put(2, 2), put(0, 5), put(2, 5), put(14, 4);
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const codeLengths = new Array(19).fill(0);
  codeLengths[1] = codeLengths[9] = codeLengths[16] = 2; // Symbols 1, 9, 16: codes 00, 01, 10.
  for (let i = 0; i < 18; i++) put(codeLengths[order[i]], 3);
  const code = (c: number) => put(((c & 1) << 1) | (c >> 1), 2); // Huffman codes go MSB first.
  const repeat = (times: number) => (code(2), put(times - 3, 2));
  // 257 literal/length lengths of 9 bits (complete), then three distance lengths of 1 bit (too many).
  code(1);
  for (let i = 0; i < 42; i++) repeat(6);
  repeat(4);
  code(0), code(0), code(0);
  if (n > 0) bytes.push(acc);
  return new Uint8Array(bytes);
}

test("Inflater paused in a dynamic block survives another inflater failing to build its tables", () => {
  const data = json(60_000, 5);
  const compressed = new Uint8Array(zlib.deflateRawSync(data));
  const paused = new Inflater();
  const half = compressed.length >> 1;
  const first = paused.write(compressed.subarray(0, half));
  // The shared tables are half rebuilt when the distance code turns out over-subscribed.
  rejects(() => new Inflater().write(badDistanceCodeHeader()), 1007);
  const second = paused.write(compressed.subarray(half));
  assert.deepEqual(joinBytes([first, second]), data);
});
