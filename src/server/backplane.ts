/**
 * The interface between a server and a broker that carries `publish` to the server's other
 * processes (and machines): sock ships one for Redis; any broker fits.
 *
 * @module
 */

import type { Message } from "../connection/inbox.ts";

/**
 * Carries published messages between the processes of one application. A server calls `start`
 * when it first listens, `publish` for every `Sock.publish`, `subscribe`/`unsubscribe` when a
 * topic gains its first local member or loses its last, and `close` at `Sock.close()`. A backplane
 * hands back only messages published by *other* processes (never the caller's own), each once.
 *
 * @example Two servers joined by a backplane of a few lines (in one process, for the example)
 * ```ts
 * import { type Backplane, connect, type Message, Sock } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const receivers = new Set<(topic: string, message: Message) => void>();
 * const bus = (): Backplane => {
 *   let mine: ((topic: string, message: Message) => void) | undefined;
 *   return {
 *     start(deliver) {
 *       mine = deliver;
 *       receivers.add(deliver);
 *     },
 *     publish(topic, message) {
 *       for (const receiver of receivers) if (receiver !== mine) receiver(topic, message);
 *     },
 *     close() {
 *       if (mine) receivers.delete(mine);
 *     },
 *   };
 * };
 * const a = new Sock({ backplane: bus() });
 * const b = new Sock({ backplane: bus() });
 * b.route("/news", async (ws) => {
 *   ws.subscribe("news");
 *   await ws.send("subscribed");
 *   await ws.closed;
 * });
 * await a.listen({ hostname: "127.0.0.1", port: 0 });
 * const { port } = await b.listen({ hostname: "127.0.0.1", port: 0 });
 * const ws = await connect(`ws://127.0.0.1:${port}/news`);
 * assertEquals(await ws.receive({ timeout: 5000 }), "subscribed");
 * assertEquals(a.publish("news", "from a"), 0); // no member on a's own process
 * assertEquals(await ws.receive({ timeout: 5000 }), "from a");
 * await ws.close(1000);
 * await a.close();
 * await b.close();
 * ```
 *
 * @category Server
 */
export interface Backplane {
  /**
   * Starts carrying messages; `deliver` takes every message another process published.
   *
   * @param deliver Called with each message from elsewhere: the server sends it to its local
   *   members of `topic`.
   */
  start(deliver: (topic: string, message: Message) => void): void | Promise<void>;
  /**
   * Carries `message` to the other processes' members of `topic`.
   *
   * @param topic The topic.
   * @param message Text or bytes: delivered as the same type.
   */
  publish(topic: string, message: Message): void;
  /** A topic gained its first local member: messages for it are wanted from now on. */
  subscribe?(topic: string): void;
  /** A topic lost its last local member. */
  unsubscribe?(topic: string): void;
  /** Stops: no more deliveries. */
  close(): void | Promise<void>;
}
