// checkOption(): the one check of numeric options (Protocol's limits, Deflater's, Inflater's and
// permessage-deflate's settings).
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkOption } from "../../src/core/options.ts";
import { Inflater, PerMessageDeflateServer, ServerProtocol } from "../../src/core/mod.ts";
import { Deflater } from "../../src/core/deflate/deflate.ts";

test("checkOption() returns the default when absent, the value when in range", () => {
  assert.equal(checkOption("x", undefined, 7, { min: 0 }), 7);
  assert.equal(checkOption("x", undefined, Infinity, { min: 1 }), Infinity, "the default is not checked");
  assert.equal(checkOption("x", 0, 7, { min: 0 }), 0);
  assert.equal(checkOption("x", 2.5, 7, { min: 1 }), 2.5, "fractions pass unless an integer is required");
  assert.equal(checkOption("x", Infinity, 7, { min: 1 }), Infinity, "no max: Infinity passes");
  assert.equal(checkOption("x", 15, 7, { min: 8, max: 15, integer: true }), 15);
});

test("checkOption() refuses NaN, non-numbers, values out of range and fractions for integers with RangeError", () => {
  const refused: [unknown, { min: number; max?: number; integer?: boolean }][] = [
    [NaN, { min: 0 }],
    ["5", { min: 0 }],
    [null, { min: 0 }],
    [-1, { min: 0 }],
    [0, { min: 1 }],
    [16, { min: 8, max: 15 }],
    [8.5, { min: 8, max: 15, integer: true }],
    [Infinity, { min: 0, integer: true }],
  ];
  for (const [value, range] of refused) {
    assert.throws(() => checkOption("x", value as number, 1, range), RangeError, `${value}`);
  }
  assert.throws(
    () => checkOption("level", 10, 6, { min: 0, max: 9, integer: true }),
    { name: "RangeError", message: "level must be an integer from 0 to 9, got 10" },
  );
  assert.throws(
    () => checkOption("maxFragments", 0, 4096, { min: 1 }),
    { name: "RangeError", message: "maxFragments must be a number of at least 1, got 0" },
  );
});

test("Every numeric option of the core goes through the one check", () => {
  assert.throws(() => new ServerProtocol({ maxMessageSize: NaN }), RangeError);
  assert.throws(() => new Deflater({ windowBits: 16 }), RangeError);
  assert.throws(() => new Deflater({ level: 1.5 }), RangeError);
  assert.throws(() => new Inflater(7), RangeError);
  assert.throws(() => new PerMessageDeflateServer({ threshold: -1 }), RangeError);
  assert.throws(() => new PerMessageDeflateServer({ memLevel: 10 }), RangeError);
});
