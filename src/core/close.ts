/**
 * Close codes (RFC 6455 §7.4) and close frame payloads (§5.5.1).
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { decodeUtf8, encodeUtf8 } from "./utf8.ts";

/**
 * The close codes registered by RFC 6455 §7.4.1 and the IANA registry, by name.
 *
 * 1005, 1006 and 1015 are reported locally and never sent on the wire.
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

/** Maximum length in bytes of a close reason: 125 minus the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame on the wire
 * (1000–1003, 1007–1014 and 3000–4999; RFC 6455 §7.4).
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
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** A close code with its reason, as carried by a close frame. */
export interface CloseInfo {
  /** The close code; 1005 when the frame carried none. */
  code: number;
  /** The close reason; empty when none was given. */
  reason: string;
}

/**
 * Builds the payload of a close frame, checking the caller's code and reason.
 *
 * @param code A code valid on the wire, or `undefined` for an empty payload.
 * @param reason A reason of at most 123 UTF-8 bytes; needs a code.
 * @returns The close frame payload.
 * @throws {RangeError} If the code is not valid on the wire or the reason is too long.
 * @throws {TypeError} If a reason is given without a code.
 *
 * @example Encoding a close payload
 * ```ts
 * import { encodeClosePayload } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(encodeClosePayload(1000, "ok"), new Uint8Array([0x03, 0xe8, 0x6f, 0x6b]));
 * assertEquals(encodeClosePayload().length, 0);
 * ```
 */
export function encodeClosePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) {
    if (reason !== "") throw new TypeError("a close reason needs a close code");
    return new Uint8Array(0);
  }
  if (!Number.isInteger(code) || !isValidCloseCode(code)) {
    throw new RangeError(`invalid close code ${code}: use 1000–1003, 1007–1014 or 3000–4999`);
  }
  const reasonBytes = encodeUtf8(reason);
  if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `close reason is ${reasonBytes.length} bytes; at most ${MAX_CLOSE_REASON_BYTES} are allowed`,
    );
  }
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/**
 * Parses the payload of a received close frame (RFC 6455 §5.5.1).
 *
 * @param payload The unmasked close frame payload.
 * @returns The code (1005 when absent) and reason.
 * @throws {ProtocolError} 1002 for a 1-byte payload or a code not valid on the wire; 1007 for a reason that is not UTF-8.
 *
 * @example Parsing a close payload
 * ```ts
 * import { parseClosePayload } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseClosePayload(new Uint8Array([0x03, 0xe8])), { code: 1000, reason: "" });
 * assertEquals(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
 * ```
 */
export function parseClosePayload(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) return { code: CloseCode.NoStatusReceived, reason: "" };
  if (payload.length === 1) {
    throw new ProtocolError("close frame payload of 1 byte", CloseCode.ProtocolError);
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    throw new ProtocolError(`invalid close code ${code}`, CloseCode.ProtocolError);
  }
  return { code, reason: decodeUtf8(payload.subarray(2)) };
}
