/**
 * The few `@std/assert` functions the tests and doc examples use, on top of
 * `node:assert/strict`, so nothing is downloaded at test time. `deno.json`
 * maps `@std/assert` here.
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/** Asserts that `value` is truthy. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message);
}

/** Asserts deep, strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Asserts deep, strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

/** Asserts that `actual` is strictly `expected`. */
export function assertStrictEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.strictEqual(actual, expected, message);
}

/** Asserts that a string matches a pattern. */
export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  nodeAssert.match(actual, expected, message);
}

/** Asserts that `value` is an instance of `type`. */
export function assertInstanceOf<T extends abstract new (...args: never[]) => unknown>(
  value: unknown,
  type: T,
  message?: string,
): asserts value is InstanceType<T> {
  nodeAssert.ok(value instanceof type, message ?? `expected an instance of ${type.name}`);
}

/** Asserts that `fn` throws an instance of `type` (any error when omitted); returns the error. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    if (type) nodeAssert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    if (includes) {
      nodeAssert.ok(String((error as Error).message).includes(includes), `message lacks ${includes}`);
    }
    return error as E;
  }
  throw new nodeAssert.AssertionError({ message: "expected the function to throw" });
}

/** Asserts that `fn` rejects with an instance of `type` (any error when omitted); returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (type) nodeAssert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error as E;
  }
  throw new nodeAssert.AssertionError({ message: "expected the promise to reject" });
}
