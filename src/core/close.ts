/**
 * Close codes (RFC 6455 §7.4) and what a close frame carries: the registry by name, the codes valid
 * on the wire and the reason's size limit. Data only, with no imports, so every file of the core can
 * name a code (the payloads themselves are built and parsed in `close_frame.ts`).
 *
 * @module
 */

/**
 * The close codes registered by RFC 6455 §7.4.1 and the IANA registry, by name.
 *
 * 1005, 1006 and 1015 are reported locally and never sent on the wire.
 *
 * @category Frames
 *
 * @example Using a close code
 * ```ts
 * import { CloseCode } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(CloseCode.Normal, 1000);
 * assertEquals(CloseCode.MessageTooBig, 1009);
 * ```
 */
export const CloseCode = {
  /** 1000: the purpose of the connection was fulfilled. */
  Normal: 1000,
  /** 1001: the endpoint is going away (server shutdown, page navigation). */
  GoingAway: 1001,
  /** 1002: the peer broke the protocol. */
  ProtocolError: 1002,
  /** 1003: a data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** 1005: reported locally when a close frame carried no code. */
  NoStatusReceived: 1005,
  /** 1006: reported locally when the connection dropped without a close frame. */
  AbnormalClosure: 1006,
  /** 1007: a text message or close reason that is not valid UTF-8. */
  InvalidPayloadData: 1007,
  /** 1008: a message that violates the endpoint's policy. */
  PolicyViolation: 1008,
  /** 1009: a message or frame over the configured size limit. */
  MessageTooBig: 1009,
  /** 1010: the client expected an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** 1011: the server met an unexpected condition. */
  InternalError: 1011,
  /** 1012: the service is restarting. */
  ServiceRestart: 1012,
  /** 1013: try again later. */
  TryAgainLater: 1013,
  /** 1014: a gateway got an invalid response upstream. */
  BadGateway: 1014,
  /** 1015: reported locally when the TLS handshake failed. */
  TlsHandshake: 1015,
} as const;

/**
 * Maximum length in bytes of a close reason: a control frame's 125 minus the 2-byte code
 * (RFC 6455 §5.5). The one limit every close checks: the core's, and sock's `WebSocket`.
 *
 * @category Frames
 */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame on the wire
 * (1000–1003, 1007–1014 and 3000–4999; RFC 6455 §7.4).
 *
 * @category Frames
 *
 * @param code The close code to check.
 * @returns `true` when the code may be sent and received.
 *
 * @example Checking close codes
 * ```ts
 * import { isValidCloseCode } from "@sock/sock";
 * import { assert } from "@std/assert";
 *
 * assert(isValidCloseCode(1000));
 * assert(isValidCloseCode(4000));
 * assert(!isValidCloseCode(1005));
 * assert(!isValidCloseCode(2999));
 * ```
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= CloseCode.Normal && code <= CloseCode.UnsupportedData) ||
    (code >= CloseCode.InvalidPayloadData && code <= CloseCode.BadGateway) ||
    (code >= 3000 && code <= 4999);
}

/**
 * A close code with its reason, as carried by a close frame.
 *
 * @category Frames
 */
export interface CloseInfo {
  /** The close code; 1005 when the frame carried none. */
  code: number;
  /** The close reason; empty when none was given. */
  reason: string;
}
