import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import process from "node:process";
import {
  encodeCommand,
  RespDecoder,
  type RespDecoderOptions,
  RespError,
  RespProtocolError,
  RespPush,
  respText,
  type RespValue,
  RespVerbatim,
} from "../../src/redis/resp.ts";

const encoder = new TextEncoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

/** Decodes `wire` in one chunk. */
function decode(wire: Uint8Array | string, options?: RespDecoderOptions): RespValue[] {
  return new RespDecoder(options).write(typeof wire === "string" ? bytes(wire) : wire);
}

/** Decodes `wire` in the given pieces (lengths), one decoder. */
function decodePieces(wire: Uint8Array, cuts: number[], options?: RespDecoderOptions): RespValue[] {
  const decoder = new RespDecoder(options);
  const out: RespValue[] = [];
  let at = 0;
  for (const cut of [...cuts, wire.length]) {
    // A fresh copy per piece, overwritten after the call: the decoder must not keep it.
    const piece = wire.slice(at, cut);
    out.push(...decoder.write(piece));
    piece.fill(0x3f);
    at = cut;
  }
  assert.equal(decoder.pending, false);
  return out;
}

/** Asserts that `wire` decodes to `expected` whole, split at every offset, split at every pair of offsets (short inputs) and byte by byte. */
function assertDecodes(wire: Uint8Array | string, expected: RespValue[], options?: RespDecoderOptions): void {
  const data = typeof wire === "string" ? bytes(wire) : wire;
  assert.deepStrictEqual(decode(data, options), expected);
  for (let cut = 0; cut <= data.length; cut++) {
    assert.deepStrictEqual(decodePieces(data, [cut], options), expected, `split at ${cut}`);
  }
  if (data.length <= 80) {
    for (let a = 1; a < data.length; a++) {
      for (let b = a + 1; b < data.length; b++) {
        assert.deepStrictEqual(decodePieces(data, [a, b], options), expected, `split at ${a} and ${b}`);
      }
    }
  }
  const every = Array.from({ length: Math.max(0, data.length - 1) }, (_, i) => i + 1);
  assert.deepStrictEqual(decodePieces(data, every, options), expected, "byte by byte");
}

function assertProtocolError(wire: Uint8Array | string, pattern: RegExp, options?: RespDecoderOptions): void {
  assert.throws(() => decode(wire, options), (error: unknown) => {
    assert.ok(error instanceof RespProtocolError, `expected RespProtocolError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

/** Valid replies and what they decode to: one of every type and form. */
const CORPUS: [string, RespValue][] = [
  ["+OK\r\n", "OK"],
  ["+\r\n", ""],
  ["+héllo wörld\r\n", "héllo wörld"],
  ["-ERR unknown command 'FOO'\r\n", new RespError("ERR unknown command 'FOO'")],
  ["-WRONGTYPE\r\n", new RespError("WRONGTYPE")],
  [":0\r\n", 0],
  [":1000\r\n", 1000],
  [":-42\r\n", -42],
  [":+7\r\n", 7],
  [":9007199254740991\r\n", Number.MAX_SAFE_INTEGER],
  [":9007199254740992\r\n", 9007199254740992n],
  [":-9223372036854775808\r\n", -(2n ** 63n)],
  [":9223372036854775807\r\n", 2n ** 63n - 1n],
  ["$5\r\nhello\r\n", bytes("hello")],
  ["$0\r\n\r\n", new Uint8Array(0)],
  ["$4\r\na\r\nb\r\n", bytes("a\r\nb")],
  ["$-1\r\n", null],
  ["*0\r\n", []],
  ["*-1\r\n", null],
  ["*3\r\n:1\r\n:2\r\n:3\r\n", [1, 2, 3]],
  ["*2\r\n$3\r\nfoo\r\n$-1\r\n", [bytes("foo"), null]],
  ["*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n", [[1, 2], ["x"]]],
  ["_\r\n", null],
  ["#t\r\n", true],
  ["#f\r\n", false],
  [",1.23\r\n", 1.23],
  [",-10\r\n", -10],
  [",1.5e3\r\n", 1500],
  [",.5E-1\r\n", 0.05],
  [",inf\r\n", Infinity],
  [",-inf\r\n", -Infinity],
  [",nan\r\n", NaN],
  ["(3492890328409238509324850943850943825024385\r\n", 3492890328409238509324850943850943825024385n],
  ["(-12\r\n", -12n],
  ["!21\r\nSYNTAX invalid syntax\r\n", new RespError("SYNTAX invalid syntax", true)],
  ["=15\r\ntxt:Some string\r\n", new RespVerbatim("txt", "Some string")],
  ["=4\r\nmkd:\r\n", new RespVerbatim("mkd", "")],
  ["%0\r\n", new Map()],
  ["%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", new Map<RespValue, RespValue>([["first", 1], ["second", 2]])],
  ["~0\r\n", new Set()],
  ["~3\r\n+a\r\n:1\r\n#f\r\n", new Set<RespValue>(["a", 1, false])],
  [">0\r\n", new RespPush([])],
  [
    ">3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n",
    new RespPush([bytes("message"), bytes("room"), bytes("hello")]),
  ],
  // Attributes are dropped, at the top level and inside aggregates.
  ["|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n", [2039123, 9543892]],
  ["|0\r\n+plain\r\n", "plain"],
  ["*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", [1, 2]],
  [
    "%1\r\n$4\r\nlist\r\n*3\r\n~1\r\n_\r\n>1\r\n#t\r\n%1\r\n(1\r\n=5\r\ntxt:x\r\n",
    new Map<RespValue, RespValue>([
      [bytes("list"), [new Set([null]), new RespPush([true]), new Map([[1n, new RespVerbatim("txt", "x")]])]],
    ]),
  ],
];

test("every type decodes whole, split at every offset and byte by byte", () => {
  for (const [wire, expected] of CORPUS) assertDecodes(wire, [expected]);
});

test("several replies in one chunk, split at every offset", () => {
  const wire = CORPUS.map(([w]) => w).join("");
  const expected = CORPUS.map(([, value]) => value);
  assert.deepStrictEqual(decode(wire), expected);
  assertDecodes(wire, expected);
});

test("a binary bulk string holds every byte value", () => {
  const payload = Uint8Array.from({ length: 256 }, (_, i) => i);
  const wire = new Uint8Array([...bytes("$256\r\n"), ...payload, 13, 10]);
  assertDecodes(wire, [payload]);
});

test("a large bulk split in many chunks is assembled once and exactly", () => {
  const payload = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff);
  const wire = new Uint8Array([...bytes(`$${payload.length}\r\n`), ...payload, 13, 10, ...bytes(":1\r\n")]);
  for (const size of [1000, 4096, 65536, 99_999]) {
    const cuts: number[] = [];
    for (let at = size; at < wire.length; at += size) cuts.push(at);
    const [value, next] = decodePieces(wire, cuts);
    assert.ok(value instanceof Uint8Array);
    assert.equal(value.length, payload.length);
    assert.deepStrictEqual(value, payload);
    assert.equal(next, 1);
  }
});

test("deep but allowed nesting decodes without recursion", () => {
  const depth = 32;
  let expected: RespValue = 7;
  for (let i = 0; i < depth; i++) expected = [expected];
  assertDecodes("*1\r\n".repeat(depth) + ":7\r\n", [expected]);
  const deeper = 5000;
  const value = decode("*1\r\n".repeat(deeper) + ":7\r\n", { maxDepth: deeper })[0];
  let level = 0;
  let at: RespValue | undefined = value;
  while (Array.isArray(at)) {
    at = at[0];
    level++;
  }
  assert.equal(level, deeper);
  assert.equal(at, 7);
});

test("null forms", () => {
  assertDecodes("$-1\r\n*-1\r\n_\r\n", [null, null, null]);
  assertProtocolError("%-1\r\n", /length/);
  assertProtocolError("~-1\r\n", /length/);
  assertProtocolError("!-1\r\n", /length/);
  assertProtocolError("$-2\r\n", /length/);
  assertProtocolError("$-0\r\n", /length/);
  assertProtocolError("$--1\r\n", /length/);
  assertProtocolError("$1-\r\n", /length/);
  assertProtocolError("_x\r\n", /null/);
});

test("error replies are values, never thrown", () => {
  const decoder = new RespDecoder();
  const [simple, bulk, after] = decoder.write(
    bytes("-NOAUTH Authentication required.\r\n!8\r\nERR a\r\nb\r\n+OK\r\n"),
  );
  assert.ok(simple instanceof RespError && simple instanceof Error);
  assert.equal(simple.prefix, "NOAUTH");
  assert.equal(simple.message, "NOAUTH Authentication required.");
  assert.equal(simple.bulk, false);
  assert.ok(bulk instanceof RespError);
  assert.equal(bulk.message, "ERR a\r\nb");
  assert.equal(bulk.bulk, true);
  assert.equal(after, "OK");
});

test("respText decodes string-like replies", () => {
  assert.equal(respText(bytes("grüße")), "grüße");
  assert.equal(respText("OK"), "OK");
  assert.equal(respText(new RespVerbatim("txt", "hi")), "hi");
  assert.equal(respText(null), null);
  assert.equal(respText(new Uint8Array([0xff])), "\ufffd");
  assert.throws(() => respText(1), TypeError);
  assert.throws(() => respText([bytes("a")]), TypeError);
});

test("encodeCommand produces an array of bulk strings that decodes back", () => {
  assert.equal(
    new TextDecoder().decode(encodeCommand(["SET", "k", "välue"])),
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nvälue\r\n",
  );
  assert.equal(new TextDecoder().decode(encodeCommand([])), "*0\r\n");
  const random = seeded(7);
  const cases: (string | Uint8Array)[][] = [
    ["PING"],
    ["PUBLISH", "room:1", ""],
    ["PUBLISH", "chan", "\r\n$-1\r\n*0\r\n"],
    ["SET", "emoji", "🎉 ünïcödé", Uint8Array.from({ length: 256 }, (_, i) => i)],
    ["X", "a".repeat(10_000), new Uint8Array(12_345)],
    // Lone surrogates become U+FFFD, as TextEncoder writes them.
    ["\ud800", "a\udc00b", "😀\ud83d", "\ud83d😀", "é".repeat(3000), "x".repeat(1025)],
  ];
  for (let n = 0; n < 50; n++) {
    const args: (string | Uint8Array)[] = [];
    for (let k = Math.floor(random() * 6); k >= 0; k--) {
      const length = Math.floor(random() ** 3 * 300);
      const raw = Uint8Array.from({ length }, () => Math.floor(random() * 256));
      args.push(random() < 0.5 ? raw : String.fromCharCode(...raw));
    }
    cases.push(args);
  }
  for (const args of cases) {
    const wire = encodeCommand(args);
    const expected = args.map((arg) => typeof arg === "string" ? encoder.encode(arg) : arg);
    const [decoded] = decode(wire);
    assert.deepStrictEqual(decoded, expected);
    if (wire.length < 400) {
      assert.deepStrictEqual(decodePieces(wire, [Math.floor(wire.length / 2)]), [expected]);
    }
  }
});

test("chunks are not kept: values survive the caller reusing its buffer, Node Buffers included", () => {
  const wire = "$5\r\nhello\r\n+simple\r\n";
  const buffer = Buffer.from(wire);
  const decoder = new RespDecoder();
  const [bulk, simple] = decoder.write(buffer);
  buffer.fill(0);
  assert.deepStrictEqual(bulk, bytes("hello"));
  assert.equal(Object.getPrototypeOf(bulk), Uint8Array.prototype);
  assert.equal(simple, "simple");
  // Split lines and bulks are copied too.
  assert.deepStrictEqual(decodePieces(bytes(wire), [3, 6, 13, 15]), [bytes("hello"), "simple"]);
});

test("integers beyond 64 bits and malformed numbers are refused", () => {
  assertProtocolError(":9223372036854775808\r\n", /64-bit/);
  assertProtocolError(":-9223372036854775809\r\n", /64-bit/);
  assertProtocolError(":12a\r\n", /integer/);
  assertProtocolError(":\r\n", /integer/);
  assertProtocolError(": 1\r\n", /integer/);
  assertProtocolError(":1.5\r\n", /integer/);
  assertProtocolError(":0x10\r\n", /integer/);
  assertProtocolError(":-\r\n", /integer/);
  assertProtocolError(":" + "1".repeat(20) + "\r\n", /integer/);
  assertProtocolError(",\r\n", /double/);
  assertProtocolError(",1.2.3\r\n", /double/);
  assertProtocolError(",Infinity\r\n", /double/);
  assertProtocolError(",0x1\r\n", /double/);
  assertProtocolError(", 1\r\n", /double/);
  assertProtocolError(",1e\r\n", /double/);
  assertProtocolError("(\r\n", /big number/);
  assertProtocolError("(1.0\r\n", /big number/);
  assertProtocolError("(+\r\n", /big number/);
  assertProtocolError("#x\r\n", /boolean/);
  assertProtocolError("#tt\r\n", /boolean/);
  assertProtocolError("#\r\n", /boolean/);
  assertProtocolError("=3\r\ntxt\r\n", /verbatim/);
  assertProtocolError("=5\r\ntxtxx\r\n", /verbatim/);
});

test("hostile: a huge declared bulk length fails as its digits arrive, before any allocation", () => {
  const decoder = new RespDecoder();
  // 999,999,999,999 exceeds 64 MiB by the ninth digit: refused before CRLF.
  assert.throws(() => decoder.write(bytes("$999999999")), RespProtocolError);
  assertProtocolError("$999999999999\r\n", /maxBulkLength/);
  assertProtocolError("$67108865\r\n", /maxBulkLength/);
  assertProtocolError("$" + "9".repeat(400) + "\r\n", /maxBulkLength/);
  // Leading zeros cannot stall the check forever.
  assertProtocolError("$" + "0".repeat(30) + "1\r\n", /length/);
  // At the limit is fine.
  assert.deepStrictEqual(decode("$3\r\nabc\r\n", { maxBulkLength: 3 }), [bytes("abc")]);
  assertProtocolError("$4\r\nabcd\r\n", /maxBulkLength/, { maxBulkLength: 3 });
  assertProtocolError("!4\r\nabcd\r\n", /maxBulkLength/, { maxBulkLength: 3 });
  assertProtocolError("=8\r\ntxt:abcd\r\n", /maxBulkLength/, { maxBulkLength: 7 });
});

test("hostile: declared bulks allocate only as their bytes arrive", () => {
  const before = process.memoryUsage().external;
  const decoders: RespDecoder[] = [];
  for (let i = 0; i < 40; i++) {
    const decoder = new RespDecoder();
    decoder.write(bytes("$60000000\r\n" + "x".repeat(100)));
    assert.equal(decoder.pending, true);
    decoders.push(decoder);
  }
  const grown = process.memoryUsage().external - before;
  // 40 × 60 MB would be 2.4 GB; what arrived needs 40 × 16 KiB.
  assert.ok(grown < 64 * 1024 * 1024, `external memory grew by ${grown} bytes`);
  assert.equal(decoders.length, 40);
});

test("hostile: aggregates over maxAggregateLength fail at once", () => {
  assertProtocolError("*99999999\r\n", /maxAggregateLength/);
  assert.throws(() => new RespDecoder().write(bytes("*9999999")), /maxAggregateLength/);
  assertProtocolError("%1048577\r\n", /maxAggregateLength/);
  assertProtocolError("~1048577\r\n", /maxAggregateLength/);
  assertProtocolError(">1048577\r\n", /maxAggregateLength/);
  assertProtocolError("|1048577\r\n", /maxAggregateLength/);
  assert.deepStrictEqual(decode("*2\r\n:1\r\n:2\r\n", { maxAggregateLength: 2 }), [[1, 2]]);
  assertProtocolError("*3\r\n", /maxAggregateLength/, { maxAggregateLength: 2 });
  // A declared length allocates nothing up front: a million-element array that never comes costs nothing.
  const decoder = new RespDecoder();
  assert.deepStrictEqual(decoder.write(bytes("*1048576\r\n:1\r\n")), []);
  assert.equal(decoder.pending, true);
});

test("hostile: nesting 10,000 deep fails at maxDepth without a stack overflow", () => {
  assertProtocolError("*1\r\n".repeat(10_000), /maxDepth/);
  assertProtocolError("*1\r\n".repeat(33) + ":1\r\n", /maxDepth/);
  assertProtocolError(">1\r\n%1\r\n~1\r\n|1\r\n*1\r\n", /maxDepth/, { maxDepth: 4 });
  // The error comes at the header that goes one level too deep, not later.
  const decoder = new RespDecoder({ maxDepth: 3 });
  assert.deepStrictEqual(decoder.write(bytes("*1\r\n*1\r\n*1\r\n")), []);
  assert.throws(() => decoder.write(bytes("*1\r\n")), /maxDepth/);
  // Empty aggregates do not open a level.
  assert.deepStrictEqual(decode("*1\r\n*0\r\n", { maxDepth: 1 }), [[[]]]);
  // Byte by byte, it still fails at the limit.
  const deep = new RespDecoder();
  const wire = bytes("*1\r\n".repeat(100));
  assert.throws(() => {
    for (let i = 0; i < wire.length; i++) deep.write(wire.subarray(i, i + 1));
  }, /maxDepth/);
});

test("hostile: bad type bytes", () => {
  for (const type of ["?", "a", " ", "\r\n", "\0", "\xff", "@", ";", "."]) {
    assertProtocolError(type + "1\r\n", /type byte/);
  }
  // Streamed strings and aggregates are not supported.
  assertProtocolError("$?\r\n;4\r\nabcd\r\n;0\r\n", /length/);
  assertProtocolError("*?\r\n:1\r\n.\r\n", /length/);
  // The byte after a complete reply is a type byte too.
  assertProtocolError("+OK\r\nX", /type byte/);
});

test("hostile: missing or stray CR and LF", () => {
  assertProtocolError("+OK\rX\r\n", /CR without LF/);
  assertProtocolError("+OK\n", /LF without CR/);
  assertProtocolError("+O\nK\r\n", /LF without CR/);
  assertProtocolError("$3\r\nabc\n", /bulk string longer than declared/);
  assertProtocolError("$3\r\nabcd\r\n", /bulk string longer than declared/);
  assertProtocolError("$3\r\nabc\rX", /CR without LF/);
  assertProtocolError("$3\rX", /CR without LF/);
  assertProtocolError("$3\n", /LF without CR/);
  assertProtocolError("*1\r:1\r\n", /CR without LF/);
  // Split right after the CR.
  const decoder = new RespDecoder();
  assert.deepStrictEqual(decoder.write(bytes("+OK\r")), []);
  assert.throws(() => decoder.write(bytes("+")), /CR without LF/);
});

test("hostile: a line over maxLineLength fails as soon as it is too long, without its CRLF", () => {
  const decoder = new RespDecoder();
  assert.throws(() => decoder.write(bytes("+" + "a".repeat(64 * 1024 + 1))), /maxLineLength/);
  assert.deepStrictEqual(decode("+" + "a".repeat(65536) + "\r\n"), ["a".repeat(65536)]);
  assertProtocolError("-" + "e".repeat(11) + "\r\n", /maxLineLength/, { maxLineLength: 10 });
  assertProtocolError(":" + "1".repeat(11), /maxLineLength/, { maxLineLength: 10 });
  // Across chunks.
  const split = new RespDecoder({ maxLineLength: 10 });
  assert.deepStrictEqual(split.write(bytes("+aaaaa")), []);
  assert.deepStrictEqual(split.write(bytes("aaaaa")), []);
  assert.throws(() => split.write(bytes("a")), /maxLineLength/);
  assertDecodes("+aaaaaaaaaa\r\n", ["aaaaaaaaaa"], { maxLineLength: 10 });
});

test("a failed decoder stays failed", () => {
  const decoder = new RespDecoder();
  assert.throws(() => decoder.write(bytes("?")), RespProtocolError);
  assert.throws(() => decoder.write(bytes("+OK\r\n")), /already failed/);
});

test("pending tracks partial replies", () => {
  const decoder = new RespDecoder();
  assert.equal(decoder.pending, false);
  assert.deepStrictEqual(decoder.write(new Uint8Array(0)), []);
  assert.deepStrictEqual(decoder.write(bytes("*2\r\n:1\r\n")), []);
  assert.equal(decoder.pending, true);
  assert.deepStrictEqual(decoder.write(bytes(":2\r\n+")), [[1, 2]]);
  assert.equal(decoder.pending, true);
  assert.deepStrictEqual(decoder.write(bytes("x\r\n")), ["x"]);
  assert.equal(decoder.pending, false);
});

test("options are validated", () => {
  assert.throws(() => new RespDecoder({ maxDepth: -1 }), RangeError);
  assert.throws(() => new RespDecoder({ maxBulkLength: NaN }), RangeError);
  assert.doesNotThrow(() => new RespDecoder({ maxBulkLength: Infinity }));
  assertProtocolError("$" + "9".repeat(17) + "\r\n", /maxBulkLength/, { maxBulkLength: Infinity });
});

/** mulberry32: a small seeded generator, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("fuzz: mutated replies throw nothing but RespProtocolError, never hang, and decode the same however split", () => {
  const seed = 0x5eed;
  const random = seeded(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const interesting = [...bytes("\r\n\r\n0123456789-+?$*%~|>_#,(!=:.;tfinaInfNaN")];
  const valid = CORPUS.map(([wire]) => bytes(wire));
  const limits: RespDecoderOptions[] = [
    {},
    { maxDepth: 2, maxAggregateLength: 3, maxBulkLength: 8, maxLineLength: 6 },
  ];
  const started = Date.now();
  let threw = 0, decoded = 0;
  for (let round = 0; round < 20_000; round++) {
    const parts: number[] = [];
    for (let k = 1 + Math.floor(random() * 3); k > 0; k--) parts.push(...pick(valid));
    for (let m = 1 + Math.floor(random() * 4); m > 0; m--) {
      const at = Math.floor(random() * (parts.length + 1));
      const op = random();
      if (op < 0.3) parts[at] = pick(interesting);
      else if (op < 0.5) parts[at] = Math.floor(random() * 256);
      else if (op < 0.7) parts.splice(at, 0, pick(interesting));
      else if (op < 0.85) parts.splice(at, 1 + Math.floor(random() * 3));
      else if (op < 0.95) parts.splice(at, 0, ...parts.slice(at, at + 1 + Math.floor(random() * 8)));
      else parts.length = at;
    }
    const wire = Uint8Array.from(parts);
    const options = pick(limits);
    const whole = outcome(() => decode(wire, options), seed, round);
    const cuts: number[] = [];
    for (let at = 0; at < wire.length; at += 1 + Math.floor(random() * 6)) cuts.push(at);
    const split = outcome(
      () => {
        const decoder = new RespDecoder(options);
        const out: RespValue[] = [];
        let from = 0;
        for (const cut of [...cuts, wire.length]) {
          out.push(...decoder.write(wire.subarray(from, cut)));
          from = cut;
        }
        return out;
      },
      seed,
      round,
    );
    assert.deepStrictEqual(split, whole, `seed ${seed} round ${round}`);
    if (whole === "error") threw++;
    else decoded++;
  }
  assert.ok(threw > 2000 && decoded > 2000, `threw ${threw}, decoded ${decoded}`);
  assert.ok(Date.now() - started < 20_000, "fuzzing took too long");
});

/** What decoding gave: the replies, or "error" for a RespProtocolError; anything else fails the test. */
function outcome(run: () => RespValue[], seed: number, round: number): RespValue[] | "error" {
  try {
    return run();
  } catch (error) {
    if (error instanceof RespProtocolError) return "error";
    throw new Error(`seed ${seed} round ${round}: threw ${error}`, { cause: error });
  }
}
