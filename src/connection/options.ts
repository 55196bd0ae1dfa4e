/**
 * The options of a connection, and the settings read from them: defaults filled in, each value
 * checked.
 *
 * @module
 */

import { checkOption } from "../core/options.ts";

/**
 * Options of a {@linkcode Connection}.
 *
 * @category Connection
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
}

/** A connection's options with every default filled in and every value checked. */
export type ConnectionSettings = Readonly<Required<ConnectionOptions>>;

/**
 * The options of a connection with their defaults, each checked: a mistyped or out-of-range value
 * throws a `RangeError` naming it, instead of disabling a limit.
 *
 * @param options The options given.
 * @returns Every option's value; the same object again for the same options object, so a server
 *   that passes one options object to every connection has them checked once, and shared.
 * @throws {RangeError} For a value that is not a number in its range.
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
  settingsByOptions.set(options, settings);
  return settings;
}

/** Settings already checked, by the options object they came from: a server's are checked once. */
const settingsByOptions = new WeakMap<ConnectionOptions, ConnectionSettings>();
