/**
 * sock: a WebSocket toolkit for Deno and Bun with no runtime dependencies.
 *
 * A server with WebSocket routes (and, through `fetch`, the app's other HTTP routes on the same
 * port), a client, and the web's `WebSocket` class, over small runtime adapters (`./deno`, `./bun`,
 * `./streams`). At its heart is the sans-IO protocol core (RFC 6455, RFC 7692 and HTTP/1.1, also
 * `@sock/sock/core`): feed it bytes, read events, write the bytes it queues; it never touches a
 * socket, so it runs the same on Deno, Bun, browsers and edge runtimes.
 *
 * @example A server and a client
 * ```ts
 * import { connect, Sock } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const app = new Sock();
 * app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 *
 * const ws = await connect(`ws://127.0.0.1:${port}/echo`);
 * await ws.send("hello");
 * assertEquals(await ws.receive({ timeout: 5000 }), "hello");
 * await ws.close();
 * await app.close();
 * ```
 *
 * @example A text frame, encoded and decoded by the core
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
export { Connection, type NegotiatedExtension, type ServerHub } from "./src/connection/connection.ts";
export type { ConnectionOptions } from "./src/connection/options.ts";
export { ConnectionClosed } from "./src/connection/closed.ts";
export { type HandshakeFeed, Link } from "./src/connection/link.ts";
export type { Message, MessagePart } from "./src/connection/inbox.ts";
export * from "./src/server/sock.ts";
export {
  RedisBackplane,
  type RedisBackplaneOptions,
  type RedisBackplaneStats,
} from "./src/redis/backplane.ts";
export * from "./src/client.ts";
export * from "./src/reconnect.ts";
export * from "./src/websocket.ts";
