/**
 * Picks the adapter for the runtime this code runs on.
 *
 * @module
 */

import type { Adapter } from "../transport.ts";
import { bunAdapter } from "./bun.ts";
import { denoAdapter } from "./deno.ts";

/**
 * The adapter for the current runtime: Bun's when `Bun` is defined, Deno's
 * when `Deno` is.
 *
 * @category Adapters
 *
 * @returns The adapter.
 * @throws {TypeError} On a runtime without raw sockets sock knows.
 *
 * @example Which runtime is this?
 * ```ts
 * import { detectAdapter } from "@sock/sock";
 * import { assert } from "@std/assert";
 *
 * assert(["deno", "bun"].includes(detectAdapter().name));
 * ```
 */
export function detectAdapter(): Adapter {
  if ("Bun" in globalThis) return bunAdapter;
  if ("Deno" in globalThis) return denoAdapter;
  throw new TypeError("no socket adapter for this runtime; pass one explicitly");
}
