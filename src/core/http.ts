/**
 * Incremental HTTP/1.1 message heads (RFC 9112), as far as the WebSocket
 * opening handshake needs them, with limits on everything a peer controls.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";

/**
 * Hands a parsed head's text and field spans to a new HttpHeaders, which turns them into strings
 * only when asked: a module variable set in the class's static block, so the parser reaches private
 * fields no caller can. Part of commit 877d7ec (headers as one string and offsets: parsing a
 * browser's request head 4.7–6.4 → 1.5–1.9 µs; handshakes/s 9,623 → 11,109 on Bun, 9,843 → 9,971 on
 * Deno).
 */
let adopt: (headers: HttpHeaders, text: string, spans: number[]) => void;

/**
 * Lets go of the field spans of a parsed head's headers, found again from its text if they are
 * read later: a server connection keeps its request for its life, and rarely reads its headers
 * once the handshake is over. The spans of a browser-like request are an array of two dozen
 * numbers, about 200 bytes, and their storage, kept among the short-lived storage of every other
 * handshake, fragmented the heap: 5,000 idle connections on Bun, 3.19 -> 2.95 KiB of heap each,
 * heap capacity about 5.1 -> 4.1 KiB and RSS 7.6 -> 6.7 KiB (means of 3 and 4 runs). Headers
 * appended to since the parse keep theirs.
 */
export let releaseSpans: (headers: HttpHeaders) => void;

/**
 * HTTP header fields in the order received, looked up case-insensitively.
 * Unlike the Fetch `Headers`, repeated fields stay separate.
 *
 * @category HTTP
 *
 * @example Reading repeated headers
 * ```ts
 * import { HttpHeaders } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const headers = new HttpHeaders([["Sec-WebSocket-Protocol", "chat"], ["sec-websocket-protocol", "json"]]);
 * assertEquals(headers.get("SEC-WEBSOCKET-PROTOCOL"), "chat, json");
 * assertEquals(headers.getAll("sec-websocket-protocol"), ["chat", "json"]);
 * assertEquals(headers.get("origin"), null);
 * ```
 */
export class HttpHeaders implements Iterable<[string, string]> {
  /**
   * The text the fields are in: a parsed head's, or the appended names and values one after another.
   * Every connection keeps its request's headers, so they are one string, not two per field.
   */
  #text = "";
  /**
   * Four numbers per field: where its name starts and ends in `#text`, then where its value does.
   * `undefined` once released (see `releaseSpans`): then found again from the head's lines.
   */
  #spans: number[] | undefined = [];
  /** `#text` is a parsed head's, as parsed: its spans can be found again from its lines. */
  #head = false;

  static {
    adopt = (headers, text, spans) => {
      headers.#text = text;
      headers.#spans = spans;
      headers.#head = true;
    };
    releaseSpans = (headers) => {
      if (headers.#head) headers.#spans = undefined;
    };
  }

  #fields(): number[] {
    return this.#spans ??= fieldSpans(this.#text, lineEndOf(this.#text) + 2);
  }

  /**
   * Creates a header list.
   *
   * @param fields Name and value pairs, names in any case.
   */
  constructor(fields: Iterable<[string, string]> = []) {
    for (const [name, value] of fields) this.append(name, value);
  }

  /**
   * All values of a field, in order.
   *
   * @param name The field name, in any case.
   * @returns The values; empty when absent.
   */
  getAll(name: string): string[] {
    const text = this.#text, spans = this.#fields();
    // Made at the first value, of its length: a push onto `[]` gives V8 room for 17 (an opening
    // handshake reads 8 fields, 5 of them there: 1,004 -> 435 B of garbage per handshake on Deno).
    let values: string[] | undefined;
    for (let i = 0; i < spans.length; i += 4) {
      if (!sameName(text, spans[i]!, spans[i + 1]!, name)) continue;
      const value = text.slice(spans[i + 2], spans[i + 3]);
      if (values) values.push(value);
      else values = [value];
    }
    return values ?? [];
  }

  /**
   * The values of a field joined with `", "`.
   *
   * @param name The field name, in any case.
   * @returns The combined value, or `null` when absent.
   */
  get(name: string): string | null {
    const values = this.getAll(name);
    return values.length === 0 ? null : values.join(", ");
  }

  /**
   * Whether the field is present.
   *
   * @param name The field name, in any case.
   * @returns `true` when at least one value is present.
   */
  has(name: string): boolean {
    const text = this.#text, spans = this.#fields();
    for (let i = 0; i < spans.length; i += 4) if (sameName(text, spans[i]!, spans[i + 1]!, name)) return true;
    return false;
  }

  /**
   * Appends a field.
   *
   * @param name The field name.
   * @param value The field value.
   */
  append(name: string, value: string): void {
    const spans = this.#fields();
    this.#head = false;
    const start = this.#text.length, colon = start + name.length;
    this.#text += name + value;
    spans.push(start, colon, colon, this.#text.length);
  }

  /** Name and value pairs in the order received, names as received. */
  *[Symbol.iterator](): Iterator<[string, string]> {
    const text = this.#text, spans = this.#fields();
    for (let i = 0; i < spans.length; i += 4) {
      yield [text.slice(spans[i], spans[i + 1]), text.slice(spans[i + 2], spans[i + 3])];
    }
  }
}

/** Whether `text` from `start` to `end` is the field name `name`, ASCII letters compared without case (RFC 9110 §5.1). */
function sameName(text: string, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const a = text.charCodeAt(start + i), b = name.charCodeAt(i);
    if (a === b) continue;
    const folded = a | 0x20;
    if (folded !== (b | 0x20) || folded < 0x61 || folded > 0x7a) return false;
  }
  return true;
}

/**
 * Limits on an HTTP head, all checked while the bytes arrive.
 *
 * @category HTTP
 */
export interface HeadLimits {
  /** Largest head (start line, fields and the blank line) in bytes. Default 16384. */
  maxHeadSize?: number;
  /** Longest line in bytes, CRLF excluded. Default 8192. */
  maxLineLength?: number;
  /** Most header fields. Default 128. */
  maxHeaders?: number;
}

/**
 * A parsed request or status line plus its fields.
 *
 * @category HTTP
 */
export interface ParsedHead {
  /** The start line split at its first two spaces. */
  startLine: [string, string, string];
  /** The header fields. */
  headers: HttpHeaders;
}

const CR = 13, LF = 10;
/** What follows a head that ends its chunk. */
const NOTHING = new Uint8Array(0);

/**
 * Collects an HTTP head from bytes split in any way and parses it once the
 * blank line arrives, handing back the bytes that follow it untouched.
 *
 * Failures carry the HTTP status: 431 for a head, line or field count over
 * the limits (414 for an overlong request line), 400 for bad syntax: a bare
 * CR or LF, NUL or another control character, obs-fold, a field name that is
 * not a token, or whitespace before the colon.
 *
 * @category HTTP
 *
 * @example Reading a head in two pieces
 * ```ts
 * import { HeadReader } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const reader = new HeadReader(true);
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest");
 * assertEquals(reader.write(bytes.subarray(0, 10)), undefined);
 * const result = reader.write(bytes.subarray(10))!;
 * assertEquals(result.head.startLine, ["GET", "/", "HTTP/1.1"]);
 * assertEquals(result.head.headers.get("host"), "a");
 * assertEquals(new TextDecoder().decode(result.rest), "rest");
 * ```
 */
export class HeadReader {
  #isRequest: boolean;
  #maxHeadSize: number;
  #maxLineLength: number;
  #maxHeaders: number;
  /** The head so far, when it spans chunks; made then. */
  #buffer: Uint8Array | undefined;
  #length = 0;
  /** Where scanning for line ends resumes. */
  #scanned = 0;
  #lineStart = 0;
  #lines = 0;

  /**
   * Creates a reader for one head.
   *
   * @param isRequest `true` for a request head (server side), `false` for a response head.
   * @param limits Size limits.
   */
  constructor(isRequest: boolean, limits: HeadLimits = {}) {
    this.#isRequest = isRequest;
    this.#maxHeadSize = limits.maxHeadSize ?? 16384;
    this.#maxLineLength = limits.maxLineLength ?? 8192;
    this.#maxHeaders = limits.maxHeaders ?? 128;
  }

  /**
   * Adds bytes. Returns the head and the bytes after it once complete.
   *
   * @param chunk The next bytes received; not modified, not kept.
   * @returns The head and what follows it in `chunk` (a view of it), or `undefined` while incomplete.
   * @throws {ProtocolError} With `status` 400, 414 or 431.
   */
  write(chunk: Uint8Array): { head: ParsedHead; rest: Uint8Array } | undefined {
    const take = Math.min(chunk.length, this.#maxHeadSize - this.#length);
    // A head that starts in this chunk is scanned where it is: bytes are copied only when it spans chunks.
    const inPlace = this.#length === 0;
    if (!inPlace) this.#append(chunk, take);
    const b = inPlace ? chunk : this.#buffer!;
    const length = inPlace ? take : this.#length;
    for (let i = this.#scanned; i < length; i++) {
      const c = b[i]!;
      if (c === LF) {
        if (i === 0 || b[i - 1] !== CR) throw badRequest("bare LF in the head");
        const lineLength = i - 1 - this.#lineStart;
        if (lineLength === 0) {
          if (this.#lines === 0) throw badRequest("the head starts with an empty line");
          const head = this.#parse(b, i - 3);
          const restAt = take - (length - i - 1);
          // No view when nothing follows the head, the usual case.
          return { head, rest: restAt === chunk.length ? NOTHING : chunk.subarray(restAt) };
        }
        this.#lines++;
        if (this.#lines > this.#maxHeaders + 1) {
          throw httpError(431, "too many header fields");
        }
        this.#lineStart = i + 1;
      } else if (c === CR) {
        if (i + 1 < length && b[i + 1] !== LF) throw badRequest("bare CR in the head");
        if (i + 1 === length) break; // Decided when the next byte arrives.
      } else if ((c < 0x20 && c !== 0x09) || c === 0x7f) {
        throw badRequest(`control character 0x${c.toString(16)} in the head`);
      } else if (i - this.#lineStart >= this.#maxLineLength) {
        throw lineTooLong(this.#lines === 0 && this.#isRequest);
      }
    }
    this.#scanned = b[length - 1] === CR ? length - 1 : length;
    if (take < chunk.length || length === this.#maxHeadSize) {
      throw httpError(431, "HTTP head too large");
    }
    if (inPlace && take > 0) this.#append(chunk, take);
    return undefined;
  }

  /** Keeps the first `take` bytes of `chunk` after the head so far. */
  #append(chunk: Uint8Array, take: number): void {
    const needed = this.#length + take;
    const buffer = this.#buffer;
    if (buffer === undefined || needed > buffer.length) {
      const grown = new Uint8Array(
        Math.min(this.#maxHeadSize, Math.max(needed, (buffer?.length ?? 512) * 2)),
      );
      if (buffer !== undefined) grown.set(buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer!.set(take === chunk.length ? chunk : chunk.subarray(0, take), this.#length);
    this.#length = needed;
  }

  /** Parses the head's lines in `b`, which end (without their final CRLF) at `end`. */
  #parse(b: Uint8Array, end: number): ParsedHead {
    const text = latin1(b, 0, end);
    const lineEnd = lineEndOf(text);
    const first = text.indexOf(" ");
    const space = first < 0 || first >= lineEnd ? -1 : text.indexOf(" ", first + 1);
    const second = space < lineEnd ? space : -1;
    // A status line may omit the reason phrase and its space.
    const stop = second < 0 && !this.#isRequest ? lineEnd : second;
    if (first <= 0 || first >= lineEnd || stop <= first + 1) throw badRequest("malformed start line");
    const parts: [string, string, string] = [
      common(text.slice(0, first)),
      text.slice(first + 1, stop),
      common(text.slice(stop + 1, lineEnd)),
    ];
    if (this.#isRequest && parts[2].includes(" ")) throw badRequest("malformed request line");
    const headers = new HttpHeaders();
    adopt(headers, text, fieldSpans(text, lineEnd + 2));
    return { startLine: parts, headers };
  }
}

/** Where the first line of a head's text ends: its first CRLF, or the end of the text. */
function lineEndOf(text: string): number {
  const end = text.indexOf("\r\n");
  return end < 0 ? text.length : end;
}

/** The spans of the header fields of a head's text (see `HttpHeaders`), from `start` on. */
function fieldSpans(text: string, start: number): number[] {
  const spans: number[] = [];
  while (start < text.length) {
    let stop = text.indexOf("\r\n", start);
    if (stop < 0) stop = text.length;
    const c0 = text.charCodeAt(start);
    if (c0 === 0x20 || c0 === 0x09) throw badRequest("obsolete line folding");
    const colon = text.indexOf(":", start);
    if (colon <= start || colon > stop) throw badRequest("header line without a colon");
    for (let i = start; i < colon; i++) {
      if (!isTokenCode(text.charCodeAt(i))) throw badRequest("invalid header name");
    }
    let valueStart = colon + 1, valueEnd = stop;
    while (valueStart < valueEnd && isOws(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isOws(text.charCodeAt(valueEnd - 1))) valueEnd--;
    spans.push(start, colon, valueStart, valueEnd);
    start = stop + 2;
  }
  return spans;
}

/** The usual method and version as constants, so a request kept for its connection's life does not keep its own copies. */
function common(part: string): string {
  return part === "GET" ? "GET" : part === "HTTP/1.1" ? "HTTP/1.1" : part;
}

/**
 * A refusal of an HTTP head or request: a `ProtocolError` carrying the status to answer with (and
 * the headers that go with it). Every HTTP refusal of the core is made here.
 */
export function httpError(status: number, message: string, headers?: [string, string][]): ProtocolError {
  return new ProtocolError(message, CloseCode.ProtocolError, { status, headers });
}

function badRequest(message: string): ProtocolError {
  return httpError(400, message);
}

function lineTooLong(requestLine: boolean): ProtocolError {
  return requestLine ? httpError(414, "request line too long") : httpError(431, "header line too long");
}

/** Decodes ASCII heads, the usual case, where UTF-8 and Latin-1 agree: faster than building the string in script. */
const ASCII = new TextDecoder();

function latin1(b: Uint8Array, start: number, end: number): string {
  let high = 0;
  for (let i = start; i < end; i++) high |= b[i]!;
  if (high < 0x80) return ASCII.decode(b.subarray(start, end));
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, b.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return s;
}

/**
 * Removes optional whitespace (SP and HTAB) at both ends.
 *
 * @category HTTP
 */
export function trimOws(value: string): string {
  let start = 0, end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/**
 * Whether a string is an HTTP token (RFC 9110 §5.6.2).
 *
 * @category HTTP
 *
 * @param value The string to check.
 * @returns `true` for a non-empty token.
 *
 * @example Checking tokens
 * ```ts
 * import { isToken } from "@sock/sock";
 * import { assert } from "@std/assert";
 *
 * assert(isToken("permessage-deflate"));
 * assert(!isToken("two words"));
 * ```
 */
export function isToken(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) if (!isTokenCode(value.charCodeAt(i))) return false;
  return true;
}

/**
 * Whether a UTF-16 code unit is a token character (tchar).
 *
 * @category HTTP
 *
 * @param c The code unit.
 * @returns `true` for a tchar.
 *
 * @example Checking a character
 * ```ts
 * import { isTokenCode } from "@sock/sock";
 * import { assert } from "@std/assert";
 *
 * assert(isTokenCode("a".charCodeAt(0)));
 * assert(!isTokenCode(" ".charCodeAt(0)));
 * ```
 */
export function isTokenCode(c: number): boolean {
  return c < 128 && TCHAR[c] === 1;
}

/**
 * Splits a comma-separated list of tokens (RFC 9110 §5.6.1), such as
 * `Connection` or `Sec-WebSocket-Protocol`, ignoring empty elements.
 *
 * @category HTTP
 *
 * @param value The field value (several values may be joined with commas).
 * @returns The tokens, in order, as written.
 * @throws {ProtocolError} 400 when an element is not a token.
 *
 * @example Parsing a Connection header
 * ```ts
 * import { parseTokenList } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseTokenList("keep-alive, Upgrade"), ["keep-alive", "Upgrade"]);
 * ```
 */
export function parseTokenList(value: string): string[] {
  const tokens: string[] = [];
  for (const element of value.split(",")) {
    const token = trimOws(element);
    if (token === "") continue;
    if (!isToken(token)) throw badRequest("list element is not a token");
    tokens.push(token);
  }
  return tokens;
}

/**
 * Reads an HTTP response body incrementally, keeping at most `max` bytes:
 * plain, or `Transfer-Encoding: chunked` (RFC 9112 §7.1), whose chunk
 * extensions and trailers are skipped and where a malformed size line ends
 * the body where it stands.
 */
export class BodyReader {
  #max: number;
  #chunked: boolean;
  #body = new Uint8Array(0);
  #length = 0;
  /** The size line being read, or `undefined` while in chunk data. */
  #line: string | undefined = "";
  #remaining = 0;
  /** CRLF bytes still to skip after a chunk's data. */
  #skip = 0;
  /** Whether the body is over: `max` bytes kept, or the last chunk (or a malformed size line) seen. */
  done = false;

  /** Creates a reader keeping at most `max` bytes (the body's length, if known) of a plain or chunked body. */
  constructor(max: number, chunked: boolean) {
    this.#max = max;
    this.#chunked = chunked;
    this.done = max === 0;
  }

  /** The decoded body so far. */
  get body(): Uint8Array {
    return this.#body.slice(0, this.#length);
  }

  /** Reads the next bytes of the body. */
  write(bytes: Uint8Array): void {
    if (!this.#chunked) return this.#append(bytes);
    for (let i = 0; i < bytes.length && !this.done;) {
      if (this.#skip > 0) {
        this.#skip--;
        i++;
      } else if (this.#line === undefined) {
        const take = Math.min(this.#remaining, bytes.length - i);
        this.#append(bytes.subarray(i, i + take));
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) {
          this.#line = "";
          this.#skip = 2;
        }
      } else if (bytes[i] === LF) {
        i++;
        const size = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?\r$/.exec(this.#line);
        if (!size || parseInt(size[1]!, 16) === 0) {
          this.done = true;
        } else {
          this.#remaining = parseInt(size[1]!, 16);
          this.#line = undefined;
        }
      } else if (this.#line.length > 1024) {
        this.done = true;
      } else {
        this.#line += String.fromCharCode(bytes[i++]!);
      }
    }
  }

  #append(bytes: Uint8Array): void {
    const take = Math.min(bytes.length, this.#max - this.#length);
    if (this.#length + take > this.#body.length) {
      const grown = new Uint8Array(Math.min(this.#max, Math.max(this.#length + take, this.#body.length * 2)));
      grown.set(this.#body.subarray(0, this.#length));
      this.#body = grown;
    }
    this.#body.set(bytes.subarray(0, take), this.#length);
    this.#length += take;
    if (this.#length >= this.#max) this.done = true;
  }
}
