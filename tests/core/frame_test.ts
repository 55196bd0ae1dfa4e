import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FrameDecoder,
  type FrameDecoderOptions,
  FrameEncoder,
  type FrameSink,
  mask,
  MaskKeys,
  Opcode,
  ProtocolError,
  RSV1,
  RSV2,
  RSV3,
} from "../../src/core/mod.ts";
import {
  buildFrame,
  counting,
  frameHeader,
  hex,
  joinBytes,
  maskFrame,
  maskPayload,
  RFC_FRAMES,
  RFC_MASK,
  type Split,
  splits,
  toHex,
} from "../_helpers.ts";

const RFC_KEY_NUMBER = 0x37fa213d;

/** A frame as a {@linkcode FrameSink} saw it, payload unmasked. */
interface Seen {
  fin: boolean;
  rsv: number;
  opcode: number;
  length: number;
  payload: Uint8Array;
  ended: boolean;
}

/** A sink that records frames, unmasking payload pieces with the key and phase it is given. */
class Recorder implements FrameSink {
  frames: Seen[] = [];
  pieces = 0;
  #parts: Uint8Array[] = [];

  frameStart(fin: boolean, rsv: number, opcode: number, length: number): void {
    const last = this.frames.at(-1);
    if (last && !last.ended) throw new Error("frameStart before the previous frameEnd");
    this.#parts = [];
    this.frames.push({ fin, rsv, opcode, length, payload: new Uint8Array(0), ended: false });
  }

  framePayload(chunk: Uint8Array, start: number, end: number, key: number, phase: number): void {
    const out = new Uint8Array(end - start);
    mask(chunk, key, out, 0, phase, start, end);
    this.#parts.push(out);
    this.pieces++;
  }

  frameEnd(): void {
    const frame = this.frames.at(-1)!;
    assert.equal(frame.ended, false, "frameEnd twice");
    frame.payload = joinBytes(this.#parts);
    frame.ended = true;
  }
}

/** Decodes the chunks with a fresh decoder; returns what the sink saw. */
function decode(chunks: readonly Uint8Array[], options: FrameDecoderOptions): Recorder {
  const recorder = new Recorder();
  const decoder = new FrameDecoder(recorder, options);
  for (const chunk of chunks) decoder.write(chunk);
  return recorder;
}

/** Decodes `bytes`, which must throw a ProtocolError; returns its code and what the sink saw first. */
function decodeError(bytes: Uint8Array, options: FrameDecoderOptions): { code: number; recorder: Recorder } {
  const recorder = new Recorder();
  const decoder = new FrameDecoder(recorder, options);
  let caught: unknown;
  try {
    decoder.write(bytes);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ProtocolError, `expected a ProtocolError for ${toHex(bytes)}, got ${caught}`);
  return { code: caught.code, recorder };
}

/** A frame that starts and ends, with its payload. */
function seen(fin: boolean, opcode: number, payload: Uint8Array | string, rsv = 0): Seen {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  return { fin, rsv, opcode, length: data.length, payload: data, ended: true };
}

const hello = "Hello";
const SERVER: FrameDecoderOptions = { expectMasked: true };
const CLIENT: FrameDecoderOptions = { expectMasked: false };

/** Cut points for a 64 KiB frame: all header offsets, the first payload words, a spread, the end. */
const BIG_CUTS = [
  ...Array.from({ length: 24 }, (_, i) => i + 1),
  ...Array.from({ length: 17 }, (_, i) => 14 + i * 4093),
  65535,
  65545,
];

const fixtures: { name: string; bytes: Uint8Array; options: FrameDecoderOptions; frames: Seen[] }[] = [
  { name: "unmasked text 'Hello'", bytes: RFC_FRAMES.text, options: CLIENT, frames: [seen(true, 1, hello)] },
  {
    name: "masked text 'Hello'",
    bytes: RFC_FRAMES.maskedText,
    options: SERVER,
    frames: [seen(true, 1, hello)],
  },
  {
    name: "fragmented unmasked text 'Hel' + 'lo'",
    bytes: RFC_FRAMES.fragmented,
    options: CLIENT,
    frames: [seen(false, 1, "Hel"), seen(true, 0, "lo")],
  },
  { name: "unmasked ping 'Hello'", bytes: RFC_FRAMES.ping, options: CLIENT, frames: [seen(true, 9, hello)] },
  {
    name: "masked pong 'Hello'",
    bytes: RFC_FRAMES.maskedPong,
    options: SERVER,
    frames: [seen(true, 10, hello)],
  },
  {
    name: "256-byte binary frame",
    bytes: RFC_FRAMES.binary256,
    options: CLIENT,
    frames: [seen(true, 2, counting(256))],
  },
  {
    name: "64 KiB binary frame",
    bytes: RFC_FRAMES.binary64k,
    options: CLIENT,
    frames: [seen(true, 2, counting(65536))],
  },
];

for (const { name, bytes, options, frames } of fixtures) {
  test(`FrameDecoder reads the RFC 6455 §5.7 ${name}, split at every offset and byte by byte`, () => {
    const ways: Split[] = splits(bytes, bytes.length > 1000 ? BIG_CUTS : undefined);
    assert.ok(ways.length >= Math.min(bytes.length, BIG_CUTS.length));
    for (const { label, chunks } of ways) {
      assert.deepEqual(decode(chunks, options).frames, frames, label);
    }
  });
}

test("FrameDecoder reads the RFC 6455 §5.7 64 KiB binary frame cut at every one of its offsets", () => {
  const bytes = RFC_FRAMES.binary64k;
  let starts = 0, ends = 0, received = 0, ok = true;
  const decoder = new FrameDecoder({
    frameStart(fin, rsv, opcode, length) {
      starts++;
      ok &&= fin && rsv === 0 && opcode === Opcode.Binary && length === 65536 && received === 0;
    },
    framePayload(chunk, start, end, key) {
      // The payload counts 0, 1, … 255: check both ends of every piece.
      ok &&= key === 0 && end > start && chunk[start] === (received & 0xff) &&
        chunk[end - 1] === ((received + end - start - 1) & 0xff);
      received += end - start;
    },
    frameEnd() {
      ends++;
      ok &&= received === 65536;
      received = 0;
    },
  }, CLIENT);
  for (let at = 1; at < bytes.length; at++) {
    decoder.write(bytes.subarray(0, at));
    decoder.write(bytes.subarray(at));
    assert.ok(ok && starts === at && ends === at, `cut at ${at}`);
  }
});

test("FrameEncoder writes every unmasked RFC 6455 §5.7 example byte for byte", () => {
  const cases: [Uint8Array, (encoder: FrameEncoder) => void][] = [
    [RFC_FRAMES.text, (e) => e.frame(Opcode.Text, new TextEncoder().encode(hello), true, 0)],
    [RFC_FRAMES.fragmented, (e) => {
      e.frame(Opcode.Text, new TextEncoder().encode("Hel"), false, 0);
      e.frame(Opcode.Continuation, new TextEncoder().encode("lo"), true, 0);
    }],
    [RFC_FRAMES.ping, (e) => e.frame(Opcode.Ping, new TextEncoder().encode(hello), true, 0)],
    [RFC_FRAMES.binary256, (e) => e.frame(Opcode.Binary, counting(256), true, 0)],
    [RFC_FRAMES.binary64k, (e) => e.frame(Opcode.Binary, counting(65536), true, 0)],
  ];
  for (const [expected, write] of cases) {
    const encoder = new FrameEncoder();
    write(encoder);
    assert.equal(encoder.pending, expected.length);
    assert.deepEqual(joinBytes(encoder.take()), expected);
    assert.equal(encoder.pending, 0);
  }
});

test("FrameEncoder writes the masked RFC 6455 §5.7 examples byte for byte with key 37 fa 21 3d", () => {
  const encoder = new FrameEncoder({ next: () => RFC_KEY_NUMBER });
  encoder.frame(Opcode.Text, new TextEncoder().encode(hello), true, 0);
  assert.deepEqual(joinBytes(encoder.take()), RFC_FRAMES.maskedText);
  encoder.frame(Opcode.Pong, new TextEncoder().encode(hello), true, 0);
  assert.deepEqual(joinBytes(encoder.take()), RFC_FRAMES.maskedPong);
  encoder.frame(Opcode.Binary, counting(256), true, 0);
  assert.deepEqual(joinBytes(encoder.take()), maskFrame(RFC_FRAMES.binary256, RFC_MASK));
  encoder.frame(Opcode.Binary, counting(65536), true, 0);
  assert.deepEqual(joinBytes(encoder.take()), maskFrame(RFC_FRAMES.binary64k, RFC_MASK));
});

for (const length of [0, 1, 125, 126, 127, 65535, 65536, 65537, 70000]) {
  const kind = length < 126 ? "7-bit" : length < 65536 ? "16-bit" : "64-bit";
  test(`FrameEncoder and FrameDecoder agree on a ${length}-byte payload with a ${kind} length`, () => {
    const payload = counting(length, 7);
    const expectedHead = frameHeader(0x82, length);
    assert.equal(expectedHead.length, kind === "7-bit" ? 2 : kind === "16-bit" ? 4 : 10);
    for (const masked of [false, true]) {
      const encoder = new FrameEncoder(masked ? { next: () => 0x01020304 } : undefined);
      encoder.frame(Opcode.Binary, payload, true, 0);
      const bytes = joinBytes(encoder.take());
      const expected = masked
        ? maskFrame(buildFrame(0x82, payload), [1, 2, 3, 4])
        : buildFrame(0x82, payload);
      assert.deepEqual(
        bytes.subarray(0, expectedHead.length + 4),
        expected.subarray(0, expectedHead.length + 4),
      );
      assert.deepEqual(bytes, expected);
      const frames = decode([bytes], { expectMasked: masked }).frames;
      assert.deepEqual(frames, [seen(true, 2, payload)]);
    }
  });
}

test("FrameDecoder reads a 64-bit length above 4 GiB from the header alone", () => {
  const length = 0x100000000 + 5;
  const recorder = decode([frameHeader(0x82, length, RFC_MASK)], SERVER);
  assert.equal(recorder.frames.length, 1);
  assert.equal(recorder.frames[0].length, length);
  assert.equal(recorder.frames[0].ended, false);
  assert.equal(recorder.pieces, 0);
});

test("FrameDecoder reports no empty payload piece when a header ends the chunk", () => {
  const payload = counting(10);
  const frame = buildFrame(0x82, payload, RFC_MASK);
  const recorder = decode([frame.subarray(0, 6), frame.subarray(6, 9), frame.subarray(9)], SERVER);
  assert.deepEqual(recorder.frames, [seen(true, 2, payload)]);
  assert.equal(recorder.pieces, 2);
});

test("FrameDecoder rejects a 64-bit length with its top bit set with 1002, from the header", () => {
  for (const top of [0x80, 0xff]) {
    const header = hex(`82 ff ${top.toString(16)} 00 00 00 00 00 00 05 37 fa 21 3d`);
    const { code, recorder } = decodeError(header, SERVER);
    assert.equal(code, 1002);
    assert.equal(recorder.frames.length, 0);
  }
  // 0x7f… is legal on the wire but beyond what a number holds exactly: the default limit refuses it.
  const largest = decodeError(hex("82 ff 7f ff ff ff ff ff ff ff 37 fa 21 3d"), SERVER);
  assert.equal(largest.code, 1009);
  const safe = decode([hex("82 ff 00 1f ff ff ff ff ff ff 37 fa 21 3d")], SERVER);
  assert.equal(safe.frames[0].length, Number.MAX_SAFE_INTEGER);
});

test("FrameDecoder refuses a frame over maxFrameSize with 1009 from the header, before any payload", () => {
  const options = { expectMasked: true, maxFrameSize: 100 };
  for (const length of [101, 126, 65536, 2 ** 40]) {
    const { code, recorder } = decodeError(frameHeader(0x82, length, RFC_MASK), options);
    assert.equal(code, 1009, `length ${length}`);
    assert.equal(recorder.frames.length, 0);
  }
  const atLimit = decode([buildFrame(0x82, counting(100), RFC_MASK)], options);
  assert.deepEqual(atLimit.frames, [seen(true, 2, counting(100))]);
});

test("FrameDecoder as a server rejects an unmasked frame with 1002", () => {
  for (const frame of [RFC_FRAMES.text, RFC_FRAMES.ping, hex("88 00"), hex("82 00")]) {
    const { code, recorder } = decodeError(frame.subarray(0, 2), SERVER);
    assert.equal(code, 1002, toHex(frame));
    assert.equal(recorder.frames.length, 0);
  }
});

test("FrameDecoder as a client rejects a masked frame with 1002", () => {
  for (const frame of [RFC_FRAMES.maskedText, RFC_FRAMES.maskedPong, hex("88 80 01 02 03 04")]) {
    const { code, recorder } = decodeError(frame.subarray(0, 6), CLIENT);
    assert.equal(code, 1002, toHex(frame));
    assert.equal(recorder.frames.length, 0);
  }
});

test("FrameDecoder rejects each RSV bit with 1002 when no extension claims it", () => {
  for (const rsv of [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3]) {
    for (const opcode of [Opcode.Text, Opcode.Binary, Opcode.Continuation]) {
      const { code } = decodeError(frameHeader(0x80 | rsv | opcode, 0, RFC_MASK), SERVER);
      assert.equal(code, 1002, `rsv ${rsv} opcode ${opcode}`);
    }
  }
});

test("FrameDecoder accepts RSV bits an extension claims on data frames, and only those", () => {
  const options = { expectMasked: true, allowedRsv: RSV1 };
  const frames = decode([buildFrame(0x80 | RSV1 | Opcode.Text, "x", RFC_MASK)], options).frames;
  assert.deepEqual(frames, [seen(true, Opcode.Text, "x", RSV1)]);
  assert.equal(decodeError(frameHeader(0x80 | RSV2 | Opcode.Text, 0, RFC_MASK), options).code, 1002);
  assert.equal(decodeError(frameHeader(0x80 | RSV1 | RSV3 | Opcode.Binary, 0, RFC_MASK), options).code, 1002);
});

test("FrameDecoder rejects RSV bits on control frames with 1002 even when an extension claims them", () => {
  const options = { expectMasked: true, allowedRsv: RSV1 | RSV2 | RSV3 };
  for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
    for (const rsv of [RSV1, RSV2, RSV3]) {
      assert.equal(decodeError(frameHeader(0x80 | rsv | opcode, 0, RFC_MASK), options).code, 1002);
    }
  }
});

test("FrameDecoder rejects every reserved opcode (0x3–0x7, 0xB–0xF) with 1002", () => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    for (const fin of [0x80, 0]) {
      const { code, recorder } = decodeError(frameHeader(fin | opcode, 1, RFC_MASK), SERVER);
      assert.equal(code, 1002, `opcode ${opcode}`);
      assert.equal(recorder.frames.length, 0);
    }
  }
});

test("FrameDecoder rejects a control frame over 125 bytes with 1002 and accepts one of 125", () => {
  for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
    for (const length of [126, 127, 65536]) {
      assert.equal(decodeError(frameHeader(0x80 | opcode, length, RFC_MASK), SERVER).code, 1002);
    }
    const payload = opcode === Opcode.Close ? joinBytes([hex("03 e8"), counting(123, 0x41)]) : counting(125);
    assert.deepEqual(decode([buildFrame(0x80 | opcode, payload, RFC_MASK)], SERVER).frames, [
      seen(true, opcode, payload),
    ]);
  }
});

test("FrameDecoder rejects a fragmented control frame with 1002", () => {
  for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
    const { code, recorder } = decodeError(frameHeader(opcode, 2, RFC_MASK), SERVER);
    assert.equal(code, 1002);
    assert.equal(recorder.frames.length, 0);
  }
});

test("FrameDecoder reports empty frames with frameStart and frameEnd and no payload call", () => {
  const bytes = joinBytes([
    buildFrame(0x81, "", RFC_MASK),
    buildFrame(0x89, "", RFC_MASK),
    buildFrame(0x02, "", RFC_MASK),
    buildFrame(0x80, "", RFC_MASK),
  ]);
  for (const { label, chunks } of splits(bytes)) {
    const recorder = decode(chunks, SERVER);
    assert.deepEqual(recorder.frames, [
      seen(true, 1, ""),
      seen(true, 9, ""),
      seen(false, 2, ""),
      seen(true, 0, ""),
    ], label);
    assert.equal(recorder.pieces, 0, label);
  }
});

test("FrameDecoder reads many frames from one chunk, in order, at every split", () => {
  const expected: Seen[] = [];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 60; i++) {
    const length = [0, 1, 5, 125, 126, 300][i % 6];
    const opcode = i % 7 === 3 ? Opcode.Ping : i % 2 ? Opcode.Binary : Opcode.Text;
    const payload = counting(opcode === Opcode.Ping ? length % 126 : length, i);
    const key = [i, 0xff - i, 0x5a, i * 3 & 0xff];
    parts.push(buildFrame(0x80 | opcode, payload, key));
    expected.push(seen(true, opcode, payload));
  }
  const stream = joinBytes(parts);
  const whole = decode([stream], SERVER);
  assert.deepEqual(whole.frames, expected);
  // Payloads that sit in the one chunk are handed over in one piece per frame.
  assert.equal(whole.pieces, expected.filter((f) => f.length > 0).length);
  for (const { label, chunks } of splits(stream)) {
    assert.deepEqual(decode(chunks, SERVER).frames, expected, label);
  }
});

test("FrameDecoder hands out ranges of the chunk itself and never modifies it", () => {
  const frame = maskFrame(RFC_FRAMES.binary256, RFC_MASK);
  const copy = frame.slice();
  const pieces: [Uint8Array, number, number][] = [];
  const decoder = new FrameDecoder({
    frameStart() {},
    framePayload(chunk, start, end) {
      pieces.push([chunk, start, end]);
    },
    frameEnd() {},
  }, SERVER);
  decoder.write(frame);
  assert.deepEqual(frame, copy);
  assert.deepEqual(pieces, [[frame, 8, 264]]);
  assert.equal(pieces[0][0], frame);
});

test("FrameDecoder passes the mask phase so every split payload unmasks correctly", () => {
  const payload = counting(37, 100);
  const frame = buildFrame(0x82, payload, [0xde, 0xad, 0xbe, 0xef]);
  for (let a = 8; a < frame.length; a++) {
    for (let b = a + 1; b < frame.length; b++) {
      const recorder = decode([frame.subarray(0, a), frame.subarray(a, b), frame.subarray(b)], SERVER);
      assert.deepEqual(recorder.frames, [seen(true, 2, payload)], `cuts ${a} ${b}`);
    }
  }
});

/** The reference mask: byte by byte. */
function referenceMask(source: Uint8Array, key: number, phase: number): Uint8Array {
  const k = [key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
  return source.map((b, i) => b ^ k[(i + phase) & 3]);
}

test("mask() matches byte-wise XOR for every length, phase, alignment and offset", () => {
  const key = 0x9c3f5a17;
  for (let length = 0; length <= 80; length++) {
    for (let phase = 0; phase < 8; phase++) {
      for (const sourceShift of [0, 1, 3]) {
        for (const targetShift of [0, 1, 2, 3]) {
          for (const offset of [0, 1, 2, 5]) {
            const sourceBuffer = counting(length + sourceShift, length * 7);
            const source = sourceBuffer.subarray(sourceShift);
            const before = source.slice();
            const target = new Uint8Array(length + offset + targetShift + 3).subarray(targetShift);
            target.fill(0xee);
            mask(source, key, target, offset, phase);
            const where =
              `length ${length} phase ${phase} shifts ${sourceShift}/${targetShift} offset ${offset}`;
            assert.deepEqual(
              target.subarray(offset, offset + length),
              referenceMask(before, key, phase),
              where,
            );
            assert.ok(target.subarray(0, offset).every((b) => b === 0xee), `before the offset: ${where}`);
            assert.ok(target.subarray(offset + length).every((b) => b === 0xee), `after the end: ${where}`);
            assert.deepEqual(source, before, `source modified: ${where}`);
          }
        }
      }
    }
  }
});

test("mask() takes a range of the source, into another buffer or in place", () => {
  const key = 0x9c3f5a17;
  for (const length of [0, 1, 5, 31, 127, 128, 200, 1000]) {
    for (const start of [0, 1, 6, 13]) {
      for (const phase of [0, 1, 3]) {
        const source = counting(start + length + 7, length);
        const before = source.slice();
        const expected = referenceMask(before.subarray(start, start + length), key, phase);
        const target = new Uint8Array(length + 2).fill(0xee);
        mask(source, key, target, 1, phase, start, start + length);
        const where = `length ${length} start ${start} phase ${phase}`;
        assert.deepEqual(target.subarray(1, 1 + length), expected, where);
        assert.equal(target[0], 0xee, where);
        assert.equal(target[length + 1], 0xee, where);
        assert.deepEqual(source, before, `source modified: ${where}`);
        mask(source, key, source, start, phase, start, start + length);
        assert.deepEqual(source.subarray(start, start + length), expected, `in place: ${where}`);
        assert.deepEqual(source.subarray(0, start), before.subarray(0, start), `in place, before: ${where}`);
        assert.deepEqual(
          source.subarray(start + length),
          before.subarray(start + length),
          `in place, after: ${where}`,
        );
      }
    }
  }
});

test("mask() unmasks the RFC 6455 §5.7 'Hello' and round-trips in place", () => {
  const masked = hex("7f 9f 4d 51 58");
  const out = new Uint8Array(5);
  mask(masked, RFC_KEY_NUMBER, out, 0, 0);
  assert.equal(new TextDecoder().decode(out), hello);
  const data = counting(100).subarray(3);
  const original = data.slice();
  mask(data, RFC_KEY_NUMBER, data, 0, 2);
  assert.deepEqual(data, referenceMask(original, RFC_KEY_NUMBER, 2));
  mask(data, RFC_KEY_NUMBER, data, 0, 2);
  assert.deepEqual(data, original);
});

test("mask() with key 0 copies the bytes unchanged", () => {
  const source = counting(50);
  const target = new Uint8Array(52);
  mask(source, 0, target, 2, 1);
  assert.deepEqual(target.subarray(2), source);
});

test("MaskKeys hands out big-endian keys from a pool, calling the source once per 1024 keys", () => {
  let calls = 0;
  const keys = new MaskKeys((target) => {
    calls++;
    for (let i = 0; i < target.length; i++) target[i] = (i + calls) & 0xff;
  });
  assert.equal(keys.next(), 0x01020304);
  assert.equal(keys.next(), 0x05060708);
  assert.equal(calls, 1);
  for (let i = 2; i < 1024; i++) keys.next();
  assert.equal(calls, 1);
  assert.equal(keys.next(), 0x02030405);
  assert.equal(calls, 2);
});

test("FrameEncoder packs a burst of small frames into one buffer, in order", () => {
  const encoder = new FrameEncoder();
  const expected: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const payload = counting(i % 130, i);
    encoder.frame(Opcode.Binary, payload, true, 0);
    expected.push(buildFrame(0x82, payload));
  }
  const chunks = encoder.take();
  assert.equal(chunks.length, 1);
  assert.deepEqual(chunks[0], joinBytes(expected));
  assert.deepEqual(encoder.take(), []);
});

test("FrameEncoder.take(true) hands out its buffer and fills the other one until the next call", () => {
  const encoder = new FrameEncoder();
  encoder.frame(Opcode.Text, new TextEncoder().encode("one"), true, 0);
  const [first] = encoder.take(true);
  assert.deepEqual(first, buildFrame(0x81, new TextEncoder().encode("one")));
  // Frames queued while `first` is being written do not touch it.
  encoder.frame(Opcode.Text, new TextEncoder().encode("two"), true, 0);
  assert.deepEqual(first, buildFrame(0x81, new TextEncoder().encode("one")));
  const [second] = encoder.take(true);
  assert.deepEqual(second, buildFrame(0x81, new TextEncoder().encode("two")));
  assert.notEqual(second.buffer, first.buffer);
  // The first buffer is free again after that call: the next frames go into it.
  encoder.frame(Opcode.Text, new TextEncoder().encode("six"), true, 0);
  const [third] = encoder.take(true);
  assert.equal(third.buffer, first.buffer);
  assert.deepEqual(third, buildFrame(0x81, new TextEncoder().encode("six")));
  assert.deepEqual(second, buildFrame(0x81, new TextEncoder().encode("two")));
  // Without reuse, a copy: later frames never change what was taken.
  encoder.frame(Opcode.Text, new TextEncoder().encode("four"), true, 0);
  const [fourth] = encoder.take();
  assert.notEqual(fourth.buffer, first.buffer);
  assert.notEqual(fourth.buffer, second.buffer);
});

test("FrameEncoder.take(true) hands out the same view of a buffer again for the same length, with the new bytes", () => {
  const encoder = new FrameEncoder();
  const take = (text: string) => {
    encoder.frame(Opcode.Text, new TextEncoder().encode(text), true, 0);
    const [chunk] = encoder.take(true);
    assert.deepEqual(chunk, buildFrame(0x81, new TextEncoder().encode(text)));
    return chunk;
  };
  const first = take("one"), second = take("two");
  const third = take("six");
  assert.equal(third, first, "same buffer, same length: the view made before");
  assert.deepEqual(first, buildFrame(0x81, new TextEncoder().encode("six")));
  assert.equal(take("ten"), second);
  const shorter = take("hi");
  assert.notEqual(shorter, first, "another length: another view");
  assert.equal(shorter.buffer, first.buffer);
  // A staging buffer that grows (a large frame) is a new buffer: no stale view of the old one.
  encoder.frame(Opcode.Binary, counting(5000), true, 0);
  const [large] = encoder.take(true);
  assert.equal(large.length, 5004);
  assert.notEqual(large.buffer, second.buffer);
  assert.equal(take("abc").buffer, shorter.buffer);
  const after = take("xyz");
  assert.equal(after.buffer, large.buffer);
  assert.deepEqual(after, buildFrame(0x81, new TextEncoder().encode("xyz")));
});

test("FrameEncoder queues a payload of 256 KiB by reference after its header, and copies smaller ones", () => {
  const encoder = new FrameEncoder();
  encoder.frame(Opcode.Text, new TextEncoder().encode("a"), true, 0);
  const payload = counting(262144);
  encoder.frame(Opcode.Binary, payload, true, 0);
  encoder.frame(Opcode.Ping, new Uint8Array(0), true, 0);
  const chunks = encoder.take();
  assert.equal(chunks.length, 3);
  assert.deepEqual(chunks[0], hex("81 01 61 82 7f 00 00 00 00 00 04 00 00"));
  assert.equal(chunks[1], payload);
  assert.deepEqual(chunks[2], hex("89 00"));
  const smaller = counting(262143);
  encoder.frame(Opcode.Binary, smaller, true, 0);
  const [copied, ...rest] = encoder.take();
  assert.equal(rest.length, 0);
  assert.deepEqual(copied.subarray(0, 10), hex("82 7f 00 00 00 00 00 03 ff ff"));
  assert.deepEqual(copied.subarray(10), smaller);
});

/** Sends one frame of `length` bytes through `encoder.take(true)`; returns the size of the buffer it went out in. */
function sentInBuffer(encoder: FrameEncoder, opcode: number, length: number): number {
  encoder.frame(opcode, counting(length), true, 0);
  const [chunk] = encoder.take(true);
  return chunk.buffer.byteLength;
}

test("FrameEncoder.shrink lets go of large staging buffers once everything taken is written", () => {
  const encoder = new FrameEncoder();
  const burst = (length: number) => sentInBuffer(encoder, Opcode.Binary, length);
  burst(200000);
  burst(200000);
  encoder.shrink();
  // Bursts of 30,000 bytes would reuse a 200 KB buffer kept (it is under 8 times their size): both are gone.
  assert.ok(burst(30000) < 65536);
  assert.ok(burst(30000) < 65536);
});

test("FrameEncoder packs a quiet connection's odd frame into a buffer its size, and shrink() lets go of any", () => {
  const encoder = new FrameEncoder();
  const send = (length: number) => sentInBuffer(encoder, Opcode.Ping, length);
  assert.equal(send(20), 22, "the first buffer holds just the first frame");
  assert.equal(send(20), 22, "and so does the other one");
  // Two frames in one burst: a buffer grows to 1 KiB at least, not to each frame's size.
  encoder.frame(Opcode.Ping, counting(20), true, 0);
  assert.equal(send(20), 1024);
  assert.equal(send(20), 22);
  assert.equal(send(20), 1024, "the grown buffer is kept while bursts use it");
  encoder.shrink();
  assert.equal(send(10), 12, "after shrink(), new buffers as small as the frames");
  assert.equal(send(10), 12);
});

test("FrameEncoder sends exactly a view's bytes, copied: the buffer under a small one can be filled again at once", () => {
  const encoder = new FrameEncoder();
  const scratch = new TextEncoder().encode("Hello, world");
  encoder.frame(Opcode.Text, scratch.subarray(0, 5), true, 0);
  scratch.fill(0x21);
  assert.deepEqual(encoder.take(), [hex("81 05 48 65 6c 6c 6f")]);
});

test("FrameEncoder lets go of a large staging buffer once bursts become small", () => {
  const encoder = new FrameEncoder();
  const sizes = [200000, 200000, 10, 10, 10].map((length) => sentInBuffer(encoder, Opcode.Binary, length));
  // Two large buffers take turns; once bursts are small, each is replaced by a small one in turn.
  assert.ok(sizes[0] >= 200000 && sizes[1] >= 200000, `${sizes}`);
  assert.ok(sizes[3] < 65536 && sizes[4] < 65536, `${sizes}`);
});

test("FrameEncoder never modifies the caller's payload when masking", () => {
  let key = 0x11223344;
  const encoder = new FrameEncoder({ next: () => key++ });
  for (const length of [5, 200, 65536, 100000]) {
    const payload = counting(length, 9);
    const copy = payload.slice();
    encoder.frame(Opcode.Binary, payload, true, 0);
    const bytes = joinBytes(encoder.take());
    assert.deepEqual(payload, copy, `length ${length}`);
    assert.deepEqual(decode([bytes], SERVER).frames, [seen(true, 2, copy)]);
  }
});

test("FrameEncoder draws a fresh key for every frame and writes it after the length", () => {
  const keys = [0x01020304, 0xa0b0c0d0, 0xffffffff];
  let i = 0;
  const encoder = new FrameEncoder({ next: () => keys[i++] });
  for (let n = 0; n < 3; n++) encoder.frame(Opcode.Text, new TextEncoder().encode("abcdef"), true, 0);
  const bytes = joinBytes(encoder.take());
  assert.equal(i, 3);
  const frames = [bytes.subarray(0, 12), bytes.subarray(12, 24), bytes.subarray(24)];
  for (let n = 0; n < 3; n++) {
    const keyBytes = [keys[n] >>> 24, (keys[n] >>> 16) & 0xff, (keys[n] >>> 8) & 0xff, keys[n] & 0xff];
    assert.deepEqual(frames[n].subarray(0, 6), joinBytes([hex("81 86"), new Uint8Array(keyBytes)]));
    assert.deepEqual(frames[n].subarray(6), maskPayload(new TextEncoder().encode("abcdef"), keyBytes));
  }
});

test("FrameEncoder sets the FIN bit and RSV bits in the first byte", () => {
  const encoder = new FrameEncoder();
  encoder.frame(Opcode.Text, new Uint8Array(0), false, RSV1);
  encoder.frame(Opcode.Continuation, new Uint8Array(0), false, 0);
  encoder.frame(Opcode.Continuation, new Uint8Array(0), true, 0);
  encoder.frame(Opcode.Binary, new Uint8Array(0), true, RSV1 | RSV2 | RSV3);
  assert.deepEqual(joinBytes(encoder.take()), hex("41 00 00 00 80 00 f2 00"));
});

test("FrameEncoder keeps raw bytes in order with frames and counts them as pending", () => {
  const encoder = new FrameEncoder();
  encoder.raw(new TextEncoder().encode("HTTP"));
  encoder.frame(Opcode.Text, new TextEncoder().encode("Hi"), true, 0);
  assert.equal(encoder.pending, 8);
  assert.deepEqual(joinBytes(encoder.take()), hex("48 54 54 50 81 02 48 69"));
  assert.equal(encoder.pending, 0);
});

test("FrameEncoder output decodes back to the same frames for a mix of sizes, masked and unmasked", () => {
  const sizes = [0, 3, 125, 126, 1000, 65535, 65536, 131072];
  for (const masked of [false, true]) {
    const encoder = new FrameEncoder(masked ? { next: () => 0x5a5a0f0f } : undefined);
    const expected: Seen[] = [];
    for (const [i, size] of sizes.entries()) {
      const payload = counting(size, i);
      encoder.frame(Opcode.Binary, payload, true, 0);
      expected.push(seen(true, Opcode.Binary, payload));
    }
    const bytes = joinBytes(encoder.take());
    assert.deepEqual(decode([bytes], { expectMasked: masked }).frames, expected);
  }
});
