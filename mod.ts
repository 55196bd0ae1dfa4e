/**
 * sock: a WebSocket toolkit for Deno and Bun with no runtime dependencies.
 *
 * At its heart is the sans-IO protocol core (RFC 6455, also `@sock/sock/core`):
 * feed it bytes, read events, write the bytes it queues; it never touches a
 * socket, so it runs the same on Deno, Bun, browsers and edge runtimes. On top
 * of it: `Connection`, the route server `Sock`, `connect()` and a web-style
 * `WebSocket` class, over small runtime adapters (`./deno`, `./bun`, `./streams`).
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
export * from "./src/transport.ts";
export {
  ConnectError,
  type ConnectErrorCode,
  ListenError,
  type ListenErrorCode,
  type NetErrorOptions,
} from "./src/net_errors.ts";
export { detectAdapter } from "./src/adapters/mod.ts";
export { Connection, type ServerHub } from "./src/connection/connection.ts";
export type { ConnectionOptions } from "./src/connection/options.ts";
export { ConnectionClosed } from "./src/connection/closed.ts";
export { type HandshakeFeed, Link } from "./src/connection/link.ts";
export type { Message, MessagePart } from "./src/connection/inbox.ts";
export * from "./src/server/sock.ts";
export * from "./src/client.ts";
export * from "./src/websocket.ts";
