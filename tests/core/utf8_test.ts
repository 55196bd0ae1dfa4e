// The UTF-8 paths for short texts (ASCII by hand; the rest by the platform, or in script with
// scriptedTextDecoding) against TextEncoder and a fatal TextDecoder: every 1- and 2-byte input, the
// edges of every 3- and 4-byte form, and seeded random inputs and strings, lone surrogates included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeUtf8, encodeUtf8Into, unmaskShortText, utf8Length } from "../../src/core/utf8.ts";
import { ProtocolError } from "../../src/core/errors.ts";
import { mask } from "../../src/core/mask.ts";
import { Rng } from "../_helpers.ts";

const reference = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What the platform decodes, or `undefined` where it refuses. */
function expected(bytes: Uint8Array): string | undefined {
  try {
    return reference.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The short-text path (an unmasked frame: key 0), in script or with TextDecoder, else decodeUtf8. */
const scripted = (bytes: Uint8Array) =>
  unmaskShortText(bytes, 0, bytes.length, 0, 0, true) ?? decodeUtf8(bytes);
const platform = (bytes: Uint8Array) =>
  unmaskShortText(bytes, 0, bytes.length, 0, 0, false) ?? decodeUtf8(bytes);

function agrees(bytes: Uint8Array): void {
  const want = expected(bytes);
  for (const decode of [decodeUtf8, scripted, platform]) {
    let got: string | undefined;
    try {
      got = decode(bytes);
    } catch (error) {
      assert.ok(error instanceof ProtocolError && error.code === 1007, String(error));
    }
    assert.equal(got, want, `${decode.name}: bytes ${[...bytes].map((b) => b.toString(16)).join(" ")}`);
  }
}

test("decodeUtf8 and the short-text paths agree with the fatal TextDecoder on every 1- and 2-byte input", () => {
  for (let a = 0; a < 256; a++) {
    agrees(new Uint8Array([a]));
    for (let b = 0; b < 256; b++) agrees(new Uint8Array([a, b]));
  }
});

test("decodeUtf8 agrees on the edges of every 3- and 4-byte form, whole, cut short and in ASCII", () => {
  const edges = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
  const leads = [0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8];
  for (const lead of leads) {
    for (const b1 of edges) {
      for (const b2 of edges) {
        agrees(new Uint8Array([lead, b1, b2]));
        agrees(new Uint8Array([0x61, lead, b1, b2, 0x62]));
        for (const b3 of edges) agrees(new Uint8Array([lead, b1, b2, b3]));
      }
    }
  }
});

test("decodeUtf8 agrees on seeded random short inputs, mostly valid text", () => {
  const rng = new Rng(7);
  const encoder = new TextEncoder();
  const alphabet = ["a", "Z", " ", "é", "ß", "€", "中", "\u{ffff}", "😀", "\u{10ffff}", "\u0000"];
  for (let round = 0; round < 20000; round++) {
    let text = "";
    while (text.length < rng.int(40)) text += rng.pick(alphabet);
    const bytes = encoder.encode(text);
    if (rng.chance(0.5) && bytes.length > 0) bytes[rng.int(bytes.length)] = rng.int(256);
    agrees(bytes.subarray(0, rng.chance(0.2) ? rng.int(bytes.length + 1) : bytes.length));
  }
  for (let round = 0; round < 20000; round++) agrees(rng.bytes(1 + rng.int(70)));
});

test("encodeUtf8Into writes what TextEncoder does, surrogate pairs as 4 bytes, lone surrogates as U+FFFD", () => {
  const rng = new Rng(11);
  const encoder = new TextEncoder();
  const units = [
    0x41,
    0x7f,
    0x80,
    0x7ff,
    0x800,
    0xd7ff,
    0xd800,
    0xdbff,
    0xdc00,
    0xdfff,
    0xe000,
    0xfffd,
    0xffff,
  ];
  const out = new Uint8Array(3 * 128);
  for (let round = 0; round < 20000; round++) {
    const codes = Array.from({ length: rng.int(128) }, () => rng.pick(units));
    const text = String.fromCharCode(...codes);
    const length = encodeUtf8Into(text, out);
    assert.deepEqual(out.subarray(0, length), encoder.encode(text), `units ${codes.join(",")}`);
  }
});

test("utf8Length counts what TextEncoder writes, surrogate pairs as 4 bytes, lone surrogates as 3", () => {
  const rng = new Rng(12);
  const encoder = new TextEncoder();
  const units = [0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xffff];
  assert.equal(utf8Length(""), 0);
  assert.equal(utf8Length("\ud83d"), 3, "a lone high surrogate at the end");
  assert.equal(utf8Length("\ud83d\ude00"), 4);
  for (let round = 0; round < 20000; round++) {
    const codes = Array.from({ length: rng.int(200) }, () => rng.pick(units));
    const text = String.fromCharCode(...codes);
    assert.equal(utf8Length(text), encoder.encode(text).length, `units ${codes.join(",")}`);
  }
});

test("unmaskShortText unmasks and decodes as the fatal TextDecoder does, and leaves long texts alone", () => {
  const rng = new Rng(23);
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const alphabet = ["a", "Z", "~", "é", "€", "😀", "\u0800", "\uffff"];
  for (let round = 0; round < 5000; round++) {
    let text = "";
    while (text.length < rng.int(40)) text += rng.pick(alphabet);
    const bytes = new TextEncoder().encode(text);
    if (rng.chance(0.3) && bytes.length > 0) bytes[rng.int(bytes.length)] = rng.int(256);
    const key = rng.int(0x100000000) >>> 0;
    const phase = rng.int(4);
    const start = rng.int(5);
    const chunk = new Uint8Array(start + bytes.length + 3);
    chunk.set(bytes, start);
    mask(chunk, key, chunk, start, phase, start, start + bytes.length);
    const before = chunk.slice();
    let expected: string | number;
    try {
      expected = fatal.decode(bytes);
    } catch {
      expected = 1007;
    }
    for (const scripted of [false, true]) {
      let got: string | number | undefined;
      try {
        got = unmaskShortText(chunk, start, start + bytes.length, key, phase, scripted);
      } catch (error) {
        got = (error as ProtocolError).code;
      }
      assert.equal(got, bytes.length < 64 ? expected : undefined, `${scripted} ${[...bytes]}`);
    }
    assert.deepEqual(chunk, before, "chunk modified");
  }
});
