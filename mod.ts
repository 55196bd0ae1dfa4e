/**
 * sock: a WebSocket toolkit for Deno and Bun with no runtime dependencies.
 *
 * This release contains the sans-IO protocol core (RFC 6455): feed it bytes,
 * read events, write the bytes it queues. It never touches a socket, so it
 * runs the same on Deno, Bun, browsers and edge runtimes.
 *
 * @example A text frame, encoded and decoded
 * ```ts
 * import { FrameEncoder, Opcode } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const encoder = new FrameEncoder();
 * encoder.frame(Opcode.Text, new TextEncoder().encode("hi"), true, 0);
 * assertEquals(encoder.take(), [new Uint8Array([0x81, 0x02, 0x68, 0x69])]);
 * ```
 *
 * @module
 */

export * from "./src/core/mod.ts";
