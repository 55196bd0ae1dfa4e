import { test } from "node:test";
import { assertEquals } from "../assert.ts";
import { sha1 } from "../../src/core/sha1.ts";

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const encode = (text: string) => new TextEncoder().encode(text);

test("sha1() gives FIPS 180-4's digests for its examples and the empty message", () => {
  assertEquals(hex(sha1(encode("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assertEquals(hex(sha1(new Uint8Array(0))), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assertEquals(
    hex(sha1(encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
  assertEquals(hex(sha1(encode("a".repeat(1_000_000)))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
});

test("sha1() agrees with Web Crypto for every length from 0 to 300 bytes (each padding case)", async () => {
  for (let length = 0; length <= 300; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    const expected = hex(new Uint8Array(await crypto.subtle.digest("SHA-1", bytes)));
    assertEquals(hex(sha1(bytes)), expected, `${length} bytes`);
  }
});
