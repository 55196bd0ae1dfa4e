/**
 * Numeric options: the one check every limit and setting goes through, so a mistyped or
 * out-of-range value fails loudly instead of silently disabling a limit.
 *
 * @module
 */

/** The values a numeric option accepts. */
export interface OptionRange {
  /** The smallest value allowed. */
  min: number;
  /** The largest value allowed. Default `Infinity`. */
  max?: number;
  /** Whether the value must be an integer. Default `false` (fractions and, without `max`, `Infinity` pass). */
  integer?: boolean;
}

/**
 * Reads a numeric option: its default when absent, the value when in range.
 *
 * @param name The option's name, for the error message.
 * @param value The value given, or `undefined` for none.
 * @param fallback The default, returned when `value` is `undefined` (it is not checked).
 * @param range What the value may be.
 * @returns The value, or the default.
 * @throws {RangeError} For a value that is not a number in `range` (NaN, a string, out of range, or
 *   a fraction where an integer is required).
 *
 * @example Reading a limit
 * ```ts
 * import { checkOption } from "./options.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(checkOption("level", undefined, 6, { min: 0, max: 9, integer: true }), 6);
 * assertEquals(checkOption("maxFragments", 16, 4096, { min: 1 }), 16);
 * assertThrows(() => checkOption("level", 10, 6, { min: 0, max: 9, integer: true }), RangeError);
 * assertThrows(() => checkOption("maxMessageSize", NaN, 1024, { min: 0 }), RangeError);
 * ```
 */
export function checkOption(
  name: string,
  value: number | undefined,
  fallback: number,
  range: OptionRange,
): number {
  if (value === undefined) return fallback;
  const { min, max = Infinity, integer = false } = range;
  if (typeof value !== "number" || !(value >= min && value <= max) || (integer && !Number.isInteger(value))) {
    const kind = integer ? "an integer" : "a number";
    const bounds = max === Infinity ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new RangeError(`${name} must be ${kind} ${bounds}, got ${value}`);
  }
  return value;
}
