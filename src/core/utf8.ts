/**
 * UTF-8 encoding and fail-fast validation (RFC 6455 §8.1).
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { mask } from "./mask.ts";

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Below this many bytes, an ASCII-only text is turned into a string by hand. */
const SMALL_TEXT = 64;
/**
 * Speed trick: one reusable array of char codes per length below SMALL_TEXT, shared by every
 * connection, for `String.fromCharCode.apply`. Its own gain was not measured (it came with the ASCII
 * fast paths of commit 4abf0ed, which gives no figure).
 */
const CODES: number[][] = Array.from({ length: SMALL_TEXT }, (_, n) => new Array<number>(n).fill(0));

/**
 * Encodes a string as UTF-8.
 *
 * @category Frames
 *
 * @param text The string to encode.
 * @returns Its UTF-8 bytes.
 *
 * @example Encoding text
 * ```ts
 * import { encodeUtf8 } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(encodeUtf8("hé"), new Uint8Array([0x68, 0xc3, 0xa9]));
 * ```
 */
export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * The length of a string in UTF-8, without encoding it: what `encodeUtf8(text).length` would be (a
 * lone surrogate counts as U+FFFD, 3 bytes, as `TextEncoder` writes it).
 *
 * @category Frames
 *
 * @param text The string.
 * @returns Its size in UTF-8 bytes.
 *
 * @example Sizing a close reason
 * ```ts
 * import { MAX_CLOSE_REASON_BYTES, utf8Length } from "@sock/sock";
 * import { assert, assertEquals } from "@std/assert";
 *
 * assertEquals(utf8Length("hé"), 3);
 * assertEquals(utf8Length("😀"), 4);
 * assert(utf8Length("é".repeat(62)) > MAX_CLOSE_REASON_BYTES); // 124 bytes
 * ```
 */
export function utf8Length(text: string): number {
  const n = text.length;
  let size = n;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      size += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: 2 units, 4 bytes.
      size += 2;
      i++;
    } else {
      size += 2;
    }
  }
  return size;
}

/**
 * Decodes complete UTF-8 bytes, failing on any invalid sequence.
 *
 * @category Frames
 *
 * @param bytes The bytes to decode.
 * @returns The decoded string.
 * @throws {ProtocolError} 1007 when the bytes are not valid UTF-8.
 *
 * @example Decoding and rejecting
 * ```ts
 * import { decodeUtf8, ProtocolError } from "@sock/sock";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * assertEquals(decodeUtf8(new Uint8Array([0x68, 0x69])), "hi");
 * assertEquals(assertThrows(() => decodeUtf8(new Uint8Array([0xc0, 0xaf])), ProtocolError).code, 1007);
 * ```
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n < SMALL_TEXT) {
    // A plain array of the exact length: engines spread those into arguments fastest.
    const codes = CODES[n]!;
    let i = 0;
    for (; i < n; i++) {
      const c = bytes[i]!;
      if (c > 0x7f) break;
      codes[i] = c;
    }
    if (i === n) return String.fromCharCode.apply(null, codes);
  }
  return decodeFatal(bytes);
}

/** `TextDecoder`, failing with 1007. */
function decodeFatal(bytes: Uint8Array): string {
  try {
    return fatalDecoder.decode(bytes);
  } catch (cause) {
    throw new ProtocolError("invalid UTF-8 in text", CloseCode.InvalidPayloadData, { cause });
  }
}

/** UTF-16 units of a small text being decoded. */
const UNITS: number[] = new Array<number>(SMALL_TEXT).fill(0);

/**
 * A small text (the first `n` bytes) decoded in script; `undefined` when it is not valid UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
 */
function decodeSmall(bytes: Uint8Array, n: number): string | undefined {
  const units = UNITS;
  let u = 0;
  for (let i = 0; i < n;) {
    const b0 = bytes[i]!;
    if (b0 < 0x80) {
      units[u++] = b0;
      i++;
      continue;
    }
    if (b0 < 0xc2 || b0 > 0xf4) return undefined;
    const b1 = bytes[i + 1]!;
    if (b0 < 0xe0) {
      if (i + 1 >= n || (b1 & 0xc0) !== 0x80) return undefined;
      units[u++] = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
      i += 2;
      continue;
    }
    // The second byte's range rules out overlong forms, surrogates and code points past U+10FFFF.
    const low = b0 === 0xe0 ? 0xa0 : b0 === 0xf0 ? 0x90 : 0x80;
    const high = b0 === 0xed ? 0x9f : b0 === 0xf4 ? 0x8f : 0xbf;
    if (i + 1 >= n || b1 < low || b1 > high) return undefined;
    const b2 = bytes[i + 2]!;
    if (i + 2 >= n || (b2 & 0xc0) !== 0x80) return undefined;
    if (b0 < 0xf0) {
      units[u++] = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
      i += 3;
      continue;
    }
    const b3 = bytes[i + 3]!;
    if (i + 3 >= n || (b3 & 0xc0) !== 0x80) return undefined;
    const c = (((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f)) - 0x10000;
    units[u++] = 0xd800 | (c >>> 10);
    units[u++] = 0xdc00 | (c & 0x3ff);
    i += 4;
  }
  // A plain array of the exact length: engines spread those into arguments fastest.
  const codes = CODES[u]!;
  for (let k = 0; k < u; k++) codes[k] = units[k]!;
  return String.fromCharCode.apply(null, codes);
}

/**
 * Encodes a short string as UTF-8 into `out`, in script: for a few dozen
 * characters, a `TextEncoder` call costs more than the work. Lone surrogates
 * become U+FFFD, as with `TextEncoder`.
 *
 * @param text The string.
 * @param out Where the bytes go, from index 0; 3 bytes per UTF-16 unit always suffice.
 * @returns How many bytes were written.
 * @internal
 */
export function encodeUtf8Into(text: string, out: Uint8Array): number {
  const n = text.length;
  let j = 0;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[j++] = c;
      continue;
    }
    if (c < 0x800) {
      out[j++] = 0xc0 | (c >> 6);
      out[j++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c < 0xe000) {
      const low = c < 0xdc00 && i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (low >= 0xdc00 && low < 0xe000) {
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        out[j++] = 0xf0 | (c >> 18);
        out[j++] = 0x80 | ((c >> 12) & 0x3f);
        out[j++] = 0x80 | ((c >> 6) & 0x3f);
        out[j++] = 0x80 | (c & 0x3f);
        continue;
      }
      c = 0xfffd;
    }
    out[j++] = 0xe0 | (c >> 12);
    out[j++] = 0x80 | ((c >> 6) & 0x3f);
    out[j++] = 0x80 | (c & 0x3f);
  }
  return j;
}

/**
 * Speed trick: small texts being decoded go through this one buffer, shared by every connection
 * (decoding is synchronous), with a view of it per length made once, as a view costs more than
 * decoding a few bytes. It came with "no views on the per-message path" (commit 2523301: in-process
 * echo, Bun text 1,188 → 565 ns/msg, for all of that commit's changes together; this buffer's own
 * share was not measured).
 */
const SMALL_BYTES = new Uint8Array(SMALL_TEXT);
/** The views of SMALL_BYTES, by length. */
const SMALL_VIEWS = Array.from({ length: SMALL_TEXT }, (_, n) => SMALL_BYTES.subarray(0, n));

/**
 * Unmasks and decodes a short text (`chunk` from `start` to `end`, masked
 * with `key` from `phase` on): with `TextDecoder`, or with `scripted` in
 * script (ASCII in the same pass as the unmasking).
 *
 * @returns The text, or `undefined` when it is too long for this path.
 * @throws {ProtocolError} 1007 when the bytes are not valid UTF-8.
 * @internal
 */
export function unmaskShortText(
  chunk: Uint8Array,
  start: number,
  end: number,
  key: number,
  phase: number,
  scripted: boolean,
): string | undefined {
  const n = end - start;
  if (n >= SMALL_TEXT) return undefined;
  if (!scripted) {
    // Where TextDecoder is native, one call beats any script, ASCII included (Bun, a 33-byte
    // ASCII text: 211 → 86 ns; 34 bytes with 4 non-ASCII characters: 197 → 135 ns).
    mask(chunk, key, SMALL_BYTES, 0, phase, start, end);
    return decodeFatal(SMALL_VIEWS[n]!);
  }
  const shift = (phase & 3) * 8;
  if (shift !== 0) key = ((key << shift) | (key >>> (32 - shift))) >>> 0;
  const codes = CODES[n]!;
  const bytes = SMALL_BYTES;
  let bits = 0;
  for (let i = 0; i < n; i++) {
    const c = chunk[start + i]! ^ ((key >>> (24 - 8 * (i & 3))) & 0xff);
    bits |= c;
    codes[i] = c;
    bytes[i] = c;
  }
  if (bits < 0x80) return String.fromCharCode.apply(null, codes);
  // Not ASCII: in script; what the script finds invalid goes to TextDecoder, which reports it.
  return decodeSmall(bytes, n) ?? decodeFatal(SMALL_VIEWS[n]!);
}

/**
 * Incremental UTF-8 decoder for text split over frames and reads.
 *
 * Each piece is checked as it arrives: an invalid sequence fails in the piece
 * where it occurs, and a sequence cut at a piece boundary waits for the next
 * piece. {@linkcode Utf8StreamDecoder.end} fails if the text ends mid-sequence.
 *
 * @category Frames
 *
 * @example Decoding a character split in two
 * ```ts
 * import { Utf8StreamDecoder } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const decoder = new Utf8StreamDecoder();
 * const text = decoder.write(new Uint8Array([0x68, 0xc3])) + decoder.write(new Uint8Array([0xa9]));
 * decoder.end();
 * assertEquals(text, "hé");
 * ```
 */
export class Utf8StreamDecoder {
  /** Created on first use: most connections never see a text split over frames or reads. */
  #decoder: TextDecoder | undefined;

  /**
   * Decodes the next piece.
   *
   * @param bytes The next bytes of the text.
   * @returns The characters completed by this piece.
   * @throws {ProtocolError} 1007 at the first invalid sequence.
   */
  write(bytes: Uint8Array): string {
    try {
      this.#decoder ??= new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      return this.#decoder.decode(bytes, { stream: true });
    } catch (cause) {
      this.#decoder = undefined;
      throw new ProtocolError("invalid UTF-8 in text", CloseCode.InvalidPayloadData, { cause });
    }
  }

  /**
   * Ends the text and resets the decoder for the next one.
   *
   * @returns The characters still pending (always empty for valid text).
   * @throws {ProtocolError} 1007 when the text ends inside a multi-byte sequence.
   */
  end(): string {
    try {
      return this.#decoder?.decode() ?? "";
    } catch (cause) {
      this.#decoder = undefined;
      throw new ProtocolError("text ends inside a UTF-8 sequence", CloseCode.InvalidPayloadData, { cause });
    }
  }
}
