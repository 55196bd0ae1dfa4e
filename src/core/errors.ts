/**
 * The one error the protocol core raises for a peer's mistake.
 *
 * @module
 */

/**
 * Options for {@linkcode ProtocolError}.
 *
 * @category Errors
 */
export interface ProtocolErrorOptions {
  /** HTTP status to answer with, when the error happened during the opening handshake. */
  status?: number | undefined;
  /** Extra HTTP response headers that belong with `status` (e.g. `Sec-WebSocket-Version: 13` with 426). */
  headers?: [string, string][] | undefined;
  /** The underlying cause, if any. */
  cause?: unknown;
}

/**
 * A violation of RFC 6455 (or an exceeded limit) by the peer.
 *
 * `code` is the close code sent to the peer when the connection is failed
 * (1002 protocol error, 1007 invalid payload data, 1009 message too big, …).
 * During the opening handshake `status` carries the HTTP status to answer with.
 *
 * @category Errors
 *
 * @example Inspecting a protocol error
 * ```ts
 * import { CloseCode, ProtocolError } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const error = new ProtocolError("message too big", CloseCode.MessageTooBig);
 * assertEquals(error.code, 1009);
 * assertEquals(error.status, undefined);
 * ```
 */
export class ProtocolError extends Error {
  /** The close code that reports this error to the peer. */
  readonly code: number;
  /** HTTP status for a handshake failure; `undefined` once the connection is open. */
  readonly status: number | undefined;
  /** Headers to send along with `status`. */
  readonly headers: [string, string][];

  /**
   * Creates a protocol error.
   *
   * @param message What went wrong. It is sent to the peer (as the close reason, cut to 123 bytes, or
   *   as the body of a handshake error response), so it never quotes what the peer sent.
   * @param code The close code.
   * @param options HTTP status and headers for handshake failures.
   */
  constructor(message: string, code: number, options: ProtocolErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "ProtocolError";
    this.code = code;
    this.status = options.status;
    this.headers = options.headers ?? [];
  }
}
