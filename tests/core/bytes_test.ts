// concat(): the one byte joiner of the core and the layers above it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { concat } from "../../src/core/bytes.ts";
import { counting } from "../_helpers.ts";

test("concat() joins buffers in order into a new one, views included, empty ones skipped", () => {
  const base = counting(10);
  const parts = [base.subarray(2, 5), new Uint8Array(0), base.subarray(7), new Uint8Array([0xff])];
  const joined = concat(parts);
  assert.deepEqual(joined, new Uint8Array([2, 3, 4, 7, 8, 9, 0xff]));
  assert.notEqual(joined.buffer, base.buffer);
  assert.equal(joined.buffer.byteLength, 7, "allocated once, at the final size");
});

test("concat() copies even a single buffer, and makes an empty one of nothing", () => {
  const one = new Uint8Array([1, 2, 3]);
  const copy = concat([one]);
  assert.deepEqual(copy, one);
  assert.notEqual(copy, one);
  assert.equal(concat([]).length, 0);
});

test("concat() takes the total when the caller knows it", () => {
  const parts = [counting(1000), counting(24, 5)];
  assert.deepEqual(concat(parts, 1024), concat(parts));
});
