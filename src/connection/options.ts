/**
 * The options of a connection, and the settings read from them: defaults filled in, each value
 * checked.
 *
 * @module
 */

import { checkOption } from "../core/options.ts";
import type { Connection } from "./connection.ts";

/**
 * Options of a {@linkcode Connection}.
 *
 * @category Connection
 *
 * @example Seeing the pings and pongs a peer sends
 * ```ts
 * import { connect, Sock } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const text = (data: Uint8Array) => new TextDecoder().decode(data);
 * const pongs: string[] = [];
 * const app = new Sock({ onPong: (data) => void pongs.push(text(data)) });
 * app.route("/", (ws) => ws.ping("are you there?").then(() => ws.close(1000)));
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 * const pings: string[] = [];
 * const ws = await connect(`ws://127.0.0.1:${port}/`, { onPing: (data) => void pings.push(text(data)) });
 * await ws.closed;
 * assertEquals([pings, pongs], [["are you there?"], ["are you there?"]]);
 * await app.close();
 * ```
 */
export interface ConnectionOptions {
  /** How long `close()` waits for the peer's close frame, in ms. Default 5000. */
  closeTimeout?: number;
  /**
   * Send a keepalive ping this often, in ms; 0 disables it. Default 20000. The first goes out
   * between three quarters of an interval and one interval after the open.
   */
  pingInterval?: number;
  /** Drop the connection (reported as 1006) when a keepalive pong takes longer, in ms. Default 20000. */
  pongTimeout?: number;
  /** Messages received but not yet consumed before reading pauses (TCP pushes back). Default 16. */
  receiveQueueSize?: number;
  /** Close with 1001 when nothing arrives from the peer for this long, in ms; 0 disables it. Default 0. */
  idleTimeout?: number;
  /**
   * Fail the connection with 1008 when a message that started arriving is not complete this long
   * after, in ms, so a peer cannot hold a partial message (up to `maxMessageSize`) open for ever;
   * 0 disables it. Default 120000: a 16 MiB message at 140 KB/s.
   */
  messageTimeout?: number;
  /** Bytes `bufferedAmount` may hold before `send()` waits for the socket. Default 1 MiB. */
  sendHighWaterMark?: number;
  /**
   * Bytes `bufferedAmount` may hold when `send()` is called. Past it the peer is not
   * reading fast enough: what is still queued is dropped and the connection is closed
   * with 1008 (`"send buffer full"`). A single message of any size is always taken;
   * `Infinity` disables the limit. Default 16 MiB.
   */
  maxBufferedAmount?: number;
  /**
   * Called with the payload of every ping the peer sends, in order with the messages: at once when
   * the application has taken every message read before it, else when, having taken them, it asks
   * for the next (`receive()`, iteration, or `forEach()` once its callback is done with the last),
   * so pings, pongs and messages reach it in the order they arrived. The pong is sent as the ping
   * is read, whatever the callback does. Called with the connection, so one callback serves a
   * whole server. When it throws (or, async, rejects), the connection is closed with 1011, as when
   * a `forEach()` callback does.
   */
  onPing?: ((data: Uint8Array, connection: Connection) => void) | undefined;
  /**
   * Called with the payload of every pong the peer sends, in order with the messages as `onPing`
   * is: unsolicited pongs (heartbeats) and the answers to `ping()` and to keepalive pings alike
   * (`ping()` settles as the pong is read). Called with the connection; when it throws or
   * rejects, the connection is closed with 1011.
   */
  onPong?: ((data: Uint8Array, connection: Connection) => void) | undefined;
}

/** The callbacks among the options: no default, absent from the settings when not given. */
type Callbacks = "onPing" | "onPong";

/** A connection's options with every default filled in and every value checked. */
export type ConnectionSettings =
  & Readonly<Required<Omit<ConnectionOptions, Callbacks>>>
  & Readonly<Pick<ConnectionOptions, Callbacks>>;

/**
 * The options of a connection with their defaults, each checked: a mistyped or out-of-range value
 * throws a `RangeError` naming it, instead of disabling a limit.
 *
 * @param options The options given.
 * @returns Every option's value; the same object again for the same options object, so a server
 *   that passes one options object to every connection has them checked once, and shared.
 * @throws {RangeError} For a value that is not a number in its range.
 * @throws {TypeError} For an `onPing` or `onPong` that is not a function.
 */
export function connectionSettings(options: ConnectionOptions): ConnectionSettings {
  let settings = settingsByOptions.get(options);
  if (settings) return settings;
  const time = { min: 0 };
  settings = {
    closeTimeout: checkOption("closeTimeout", options.closeTimeout, 5000, time),
    pingInterval: checkOption("pingInterval", options.pingInterval, 20000, time),
    pongTimeout: checkOption("pongTimeout", options.pongTimeout, 20000, time),
    receiveQueueSize: checkOption("receiveQueueSize", options.receiveQueueSize, 16, {
      min: 1,
      integer: true,
    }),
    idleTimeout: checkOption("idleTimeout", options.idleTimeout, 0, time),
    messageTimeout: checkOption("messageTimeout", options.messageTimeout, 120000, time),
    sendHighWaterMark: checkOption("sendHighWaterMark", options.sendHighWaterMark, 1048576, { min: 0 }),
    maxBufferedAmount: checkOption("maxBufferedAmount", options.maxBufferedAmount, 16 * 1024 * 1024, {
      min: 0,
    }),
  };
  // Only those given: the settings of options without them are as they were.
  if (options.onPing !== undefined) {
    settings = { ...settings, onPing: checkCallback("onPing", options.onPing) };
  }
  if (options.onPong !== undefined) {
    settings = { ...settings, onPong: checkCallback("onPong", options.onPong) };
  }
  settingsByOptions.set(options, settings);
  return settings;
}

/** Settings already checked, by the options object they came from: a server's are checked once. */
const settingsByOptions = new WeakMap<ConnectionOptions, ConnectionSettings>();

/** A callback option: a function. */
function checkCallback<T>(name: string, value: T): T {
  if (typeof value !== "function") throw new TypeError(`${name} must be a function`);
  return value;
}
