/**
 * How the end of a connection reaches the application: `ConnectionClosed`, and promises that
 * settle with it.
 *
 * @module
 */

import { CloseCode, type CloseInfo } from "../core/close.ts";
import type { CloseResult } from "../core/protocol.ts";

/**
 * Thrown by `receive()` and iteration once the connection closed abnormally,
 * and by `send()` after close. It carries the close frames both ways.
 *
 * @category Connection
 *
 * @example A handler that fails reaches the client as 1011
 * ```ts
 * import { connect, ConnectionClosed, Sock } from "@sock/sock";
 * import { assertEquals, assertInstanceOf } from "@std/assert";
 *
 * const app = new Sock();
 * app.route("/", () => {
 *   throw new Error("oops");
 * });
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 * const ws = await connect(`ws://127.0.0.1:${port}/`);
 * const error = await ws.receive().catch((e) => e);
 * assertInstanceOf(error, ConnectionClosed);
 * assertEquals(error.code, 1011);
 * await app.close();
 * ```
 */
export class ConnectionClosed extends Error {
  /** The close code (1006 when the connection dropped without a close frame). */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** The peer's close frame, if one arrived. */
  readonly received: CloseInfo | undefined;
  /** Our close frame, if one was sent. */
  readonly sent: CloseInfo | undefined;

  /** Creates the error from how the connection ended. */
  constructor(closed: CloseResult) {
    super(`connection closed: ${closed.code}${closed.reason ? ` ${closed.reason}` : ""}`);
    this.name = "ConnectionClosed";
    this.code = closed.code;
    this.reason = closed.reason;
    this.received = closed.received;
    this.sent = closed.sent;
  }
}

const NORMAL = new Set<number>([CloseCode.Normal, CloseCode.GoingAway, CloseCode.NoStatusReceived]);

/**
 * What waiting for a message gives once the connection is closed: `undefined` after a normal,
 * clean close, else a rejection with {@linkcode ConnectionClosed}.
 */
export function ended(closed: CloseResult): Promise<undefined> {
  return NORMAL.has(closed.code) && closed.wasClean
    ? Promise.resolve(undefined)
    : Promise.reject(new ConnectionClosed(closed));
}

/** Does nothing: the handler of a rejection nobody needs to see. */
export const ignore = (): void => {};

/**
 * Marks a promise the public API hands out as handled, so that a call nobody awaits (a
 * fire-and-forget `send()` after the peer left, say) never becomes an unhandled rejection that
 * ends the process; a caller that awaits it still gets the rejection.
 */
export function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}
