/**
 * Joining bytes: the one joiner of the core and the layers above it, and what it counts.
 *
 * @module
 */

/**
 * Joins buffers into one new buffer, allocated once at its final size (as Deno std's `concat`).
 *
 * @param chunks The buffers, in order; not modified, not kept.
 * @param size Their total length, when the caller already counts it; by default it is summed here.
 *   It must be that sum.
 * @returns A new buffer holding the chunks one after another, owned by the caller.
 *
 * @example Joining three pieces
 * ```ts
 * import { concat } from "./bytes.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const joined = concat([new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])]);
 * assertEquals(joined, new Uint8Array([1, 2, 3]));
 * ```
 */
export function concat(chunks: readonly Uint8Array[], size?: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size ?? byteLength(chunks));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * The bytes in `chunks`, all together.
 *
 * @param chunks The buffers.
 * @returns The sum of their lengths.
 *
 * @example Counting what a write holds
 * ```ts
 * import { byteLength } from "./bytes.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(byteLength([new Uint8Array(3), new Uint8Array(0), new Uint8Array(2)]), 5);
 * ```
 */
export function byteLength(chunks: readonly Uint8Array[]): number {
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  return size;
}
