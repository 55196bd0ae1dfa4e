/**
 * The server side of HTTP/1.1 (RFC 9112) without I/O, for the requests that are not WebSocket
 * upgrades (h11's role beside the WebSocket core): request heads, bodies and persistent
 * connections in; responses out.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { formatResponse, headerPairs, type HeadersInit } from "./handshake.ts";
import {
  type HeadLimits,
  HeadReader,
  httpError,
  HttpHeaders,
  isTokenCode,
  type ParsedHead,
  trimOws,
} from "./http.ts";
import { encodeUtf8 } from "./utf8.ts";

/**
 * Options for {@linkcode HttpServerProtocol}.
 *
 * @category HTTP
 */
export interface HttpServerOptions extends HeadLimits {
  /** Largest request body in bytes; a longer one is answered 413. Default 16 MiB. */
  maxBodySize?: number;
}

/**
 * A request head arrived; its body (if any) follows as `data` events, then `end`.
 *
 * @category HTTP
 */
export interface HttpRequestEvent {
  /** Discriminant. */
  type: "request";
  /** The method, e.g. `GET`. */
  method: string;
  /** The request target as sent: origin-form (`/path?query`), absolute-form, or `*` (OPTIONS only). */
  target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** The header fields. */
  headers: HttpHeaders;
  /** The parsed head, for a WebSocket handshake that takes over the connection. */
  head: ParsedHead;
  /** The body's length: a number from `Content-Length` (0 without a body), or `null` for chunked. */
  bodyLength: number | null;
  /** The client sent `Expect: 100-continue` and waits for {@linkcode HttpServerProtocol.continue}. */
  expectContinue: boolean;
  /** The client asks to upgrade to WebSocket (`Upgrade: websocket`). */
  upgrade: boolean;
}

/**
 * A piece of the request body: a view of the bytes received, valid until the next `receiveData`.
 *
 * @category HTTP
 */
export interface HttpDataEvent {
  /** Discriminant. */
  type: "data";
  /** The body bytes. */
  data: Uint8Array;
}

/**
 * The request body is complete.
 *
 * @category HTTP
 */
export interface HttpEndEvent {
  /** Discriminant. */
  type: "end";
  /** Trailer fields of a chunked body; empty otherwise. */
  trailers: HttpHeaders | undefined;
}

/**
 * The request is malformed or over a limit: the error response (400, 413, 414, 431, 501, 505) is
 * queued when no response had started, and the connection must close once it is written.
 *
 * @category HTTP
 */
export interface HttpErrorEvent {
  /** Discriminant. */
  type: "error";
  /** What was wrong; `status` is the HTTP status. */
  error: ProtocolError;
}

/**
 * Events an {@linkcode HttpServerProtocol} produces.
 *
 * @category HTTP
 */
export type HttpServerEvent = HttpRequestEvent | HttpDataEvent | HttpEndEvent | HttpErrorEvent;

const enum State {
  /** Reading a request head. */
  Head,
  /** Reading a body of known length. */
  Body,
  /** Reading a chunk-size line. */
  ChunkSize,
  /** Reading chunk data. */
  ChunkData,
  /** Reading the CRLF after chunk data. */
  ChunkEnd,
  /** Reading trailer fields. */
  Trailers,
  /** The request is complete; bytes that follow wait for the response to end. */
  Done,
  /** Failed or closed: nothing more is read. */
  Closed,
}

const CR = 13, LF = 10;
const NO_BYTES = new Uint8Array(0);
/** Longest chunk-size line (size and extensions) or trailer line. */
const MAX_CHUNK_LINE = 4096;
const CHUNK_END = encodeUtf8("\r\n");
const LAST_CHUNK = encodeUtf8("0\r\n\r\n");
const CONTINUE = encodeUtf8("HTTP/1.1 100 Continue\r\n\r\n");

/** Response fields the protocol writes itself: the app's are dropped (RFC 9110 §7.6.1). */
const FRAMING = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "te"]);

/** The `Date` field, formatted once per second. */
let dateSecond = -1;
let dateValue = "";
function httpDate(): string {
  const now = Date.now(), second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

/** A chunk's size line, without extensions (written in script: on Deno `TextEncoder` is an op). */
function chunkHead(size: number): Uint8Array {
  const hex = size.toString(16);
  const bytes = new Uint8Array(hex.length + 2);
  for (let i = 0; i < hex.length; i++) bytes[i] = hex.charCodeAt(i);
  bytes[hex.length] = CR;
  bytes[hex.length + 1] = LF;
  return bytes;
}

/** A chunk extension: `;name` or `;name=value`, the value a token or a quoted string (RFC 9112 §7.1.1). */
const CHUNK_EXTENSIONS =
  /^(?:[ \t]*;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"))?)*$/;

/** A chunk-size line's size: hex digits, then extensions (read and ignored). */
function chunkSize(line: string): number {
  let digits = 0;
  while (digits < line.length && isHexDigit(line.charCodeAt(digits))) digits++;
  if (digits === 0) throw httpError(400, "malformed chunk size");
  if (digits < line.length && !CHUNK_EXTENSIONS.test(line.slice(digits))) {
    throw httpError(400, "malformed chunk extension");
  }
  return parseInt(line.slice(0, digits), 16);
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** Refuses a request target that is not origin-form, absolute-form or (for OPTIONS) `*` (RFC 9112 §3.2). */
function checkTarget(method: string, target: string): void {
  for (let i = 0; i < target.length; i++) {
    if (target.charCodeAt(i) > 0x7e) throw httpError(400, "malformed request target");
  }
  if (target.charCodeAt(0) === 0x2f) return;
  if (target === "*" && method === "OPTIONS") return;
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]/.test(target)) return;
  throw httpError(400, "malformed request target");
}

/** A `Host` value: uri-host and an optional port (RFC 9112 §3.2, RFC 3986 §3.2.2); empty is allowed. */
const HOST = /^(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

/**
 * The server side of one HTTP/1.1 connection, without I/O: bytes in, events out; responses in,
 * bytes out. Requests are read one at a time: bytes after a complete request (pipelined ones) are
 * kept until its response ends, then read, so responses go out in order.
 *
 * Framing is safe by construction (RFC 9112 §6.3, §11.2): a request with both `Content-Length` and
 * `Transfer-Encoding`, a repeated or malformed `Content-Length`, a `Transfer-Encoding` whose last
 * coding is not `chunked` (or any coding but `chunked`: 501), a malformed chunk, a bare CR or LF or
 * obs-fold is answered 400 and ends the connection, so no byte of it is read as another request.
 *
 * @category HTTP
 *
 * @example A request with a body, and its response
 * ```ts
 * import { HttpServerProtocol } from "@sock/sock";
 * import { assertEquals, assertMatch } from "@std/assert";
 *
 * const http = new HttpServerProtocol();
 * http.receiveData(new TextEncoder().encode(
 *   "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
 * ));
 * const [request, data, end] = http.events();
 * assertEquals(request.type === "request" && request.method, "POST");
 * assertEquals(data.type === "data" && new TextDecoder().decode(data.data), "hello");
 * assertEquals(end.type, "end");
 * http.respond(200, [["Content-Type", "text/plain"]], 5);
 * http.send(new TextEncoder().encode("hello"));
 * http.end();
 * assertMatch(new TextDecoder().decode(http.dataToSend()[0]), /^HTTP\/1\.1 200 OK\r\n/);
 * assertEquals(http.keepAlive, true);
 * ```
 */
export class HttpServerProtocol {
  #limits: HeadLimits;
  #maxBodySize: number;
  #state = State.Head;
  #head: HeadReader;
  /** Bytes of one ignorable CRLF before the request line still accepted (RFC 9112 §2.2): 2, 1 or 0. */
  #blank = 2;
  #events: HttpServerEvent[] = [];
  #output: Uint8Array[] = [];
  /** Bytes received after the current request, read once its response ends. */
  #pending: Uint8Array = NO_BYTES;
  /** Body bytes still to read (Body, ChunkData), or the body's length so far (chunked). */
  #remaining = 0;
  #received = 0;
  /** A chunk-size or trailer line being read. */
  #line = "";
  #trailers: HttpHeaders | undefined;
  #trailerCount = 0;
  // The current exchange.
  #method = "";
  #version = "";
  #requestKeepAlive = false;
  #expectContinue = false;
  /** 0: no response yet; 1: head sent; 2: ended. */
  #response = 0;
  #chunked = false;
  #headOnly = false;
  #closeAfter = false;
  /** Set by `closeAfterResponse()`. */
  #closing = false;

  /**
   * Creates the server side of one connection, waiting for its first request.
   *
   * @param options Limits on heads and bodies.
   */
  constructor(options: HttpServerOptions = {}) {
    this.#limits = options;
    this.#maxBodySize = options.maxBodySize ?? 16 * 1024 * 1024;
    this.#head = new HeadReader(true, options);
  }

  /** Whether the protocol needs more bytes: a request head or body is incomplete. */
  get wantsData(): boolean {
    return this.#state < State.Done;
  }

  /** Whether the current request's body has been read to its end. */
  get requestDone(): boolean {
    return this.#state >= State.Done;
  }

  /**
   * After `end()`: whether the connection goes on with the next request. `false` when either side
   * asked to close, the response was close-delimited, or the request body was not read to its end.
   */
  get keepAlive(): boolean {
    return this.#state !== State.Closed && !this.#closeAfter;
  }

  /**
   * Feeds bytes received from the transport.
   *
   * @param chunk The bytes; not modified, and not kept past the call (copied when held back).
   */
  receiveData(chunk: Uint8Array): void {
    this.#receive(chunk, false);
  }

  /** `receiveData()`, or (`owned`) the bytes held back, which are kept as a view instead of copied. */
  #receive(chunk: Uint8Array, owned: boolean): void {
    if (this.#state === State.Closed || chunk.length === 0) return;
    if (this.#state === State.Done) {
      this.#hold(chunk, owned);
      return;
    }
    try {
      this.#read(chunk, owned);
    } catch (error) {
      if (!(error instanceof ProtocolError) || error.status === undefined) throw error;
      this.#fail(error);
    }
  }

  /** The events produced since the last call. */
  events(): HttpServerEvent[] {
    const events = this.#events;
    if (events.length > 0) this.#events = [];
    return events;
  }

  /** The bytes to write since the last call. */
  dataToSend(): Uint8Array[] {
    const output = this.#output;
    if (output.length > 0) this.#output = [];
    return output;
  }

  /**
   * Answers `Expect: 100-continue`: queues `100 Continue`, once, and only while the client still
   * waits for it (no response started, no body byte received).
   */
  continue(): void {
    if (!this.#expectContinue) return;
    this.#expectContinue = false;
    if (this.#response === 0 && this.#received === 0 && this.#state < State.Done) this.#output.push(CONTINUE);
  }

  /**
   * Starts the response to the current request. The protocol frames it: `Content-Length` when
   * `length` is known, else chunked (close-delimited for HTTP/1.0); no body for HEAD, 204 and 304.
   * It writes `Connection`, `Transfer-Encoding`, `Content-Length` and (unless given) `Date`
   * itself, and drops those fields from `headers` (`Connection: close` in them is honoured).
   *
   * @param status 200–599.
   * @param headers The response's other fields.
   * @param length The body's length in bytes, or `null` when unknown.
   * @throws {TypeError} Without a request waiting for its response, or for an invalid field.
   * @throws {RangeError} For a status outside 200–599.
   */
  respond(status: number, headers: HeadersInit = [], length: number | null = null): void {
    if (this.#response !== 0 || this.#method === "" || this.#state === State.Closed) {
      throw new TypeError("no request is waiting for a response");
    }
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`invalid response status ${status}`);
    }
    const fields: [string, string][] = [];
    let dated = false, upgrade = false, close = !this.#requestKeepAlive || this.#closing;
    for (const field of headerPairs(headers)) {
      const name = field[0].toLowerCase();
      if (name === "connection" && /(^|[\s,])close($|[\s,])/i.test(field[1])) close = true;
      if (FRAMING.has(name)) continue;
      if (name === "date") dated = true;
      // An Upgrade field (a 426's, say) goes with `Connection: upgrade` (RFC 9110 §7.8).
      if (name === "upgrade") upgrade = true;
      fields.push(field);
    }
    const bodiless = status === 204 || status === 304;
    this.#headOnly = bodiless || this.#method === "HEAD";
    this.#chunked = false;
    if (!bodiless) {
      if (length !== null) fields.push(["Content-Length", String(length)]);
      else if (this.#method === "HEAD") { /* Unknown length: nothing to say. */ }
      else if (this.#version === "HTTP/1.1") this.#chunked = true;
      else close = true; // HTTP/1.0 without a length: the end of the connection ends the body.
    }
    if (this.#chunked) fields.push(["Transfer-Encoding", "chunked"]);
    const connection = close ? "close" : this.#version === "HTTP/1.0" ? "keep-alive" : "";
    if (upgrade) fields.push(["Connection", connection ? "upgrade, " + connection : "upgrade"]);
    else if (connection) fields.push(["Connection", connection]);
    if (!dated) fields.push(["Date", httpDate()]);
    this.#output.push(formatResponse(status, fields));
    this.#response = 1;
    this.#closeAfter = close;
    this.#expectContinue = false;
  }

  /**
   * Ends the connection after the response in progress, or the next one if none is: it says
   * `Connection: close` unless its head went out already (a server shutting down).
   */
  closeAfterResponse(): void {
    this.#closing = true;
    if (this.#response === 1) this.#closeAfter = true;
  }

  /**
   * Sends a piece of the response body (dropped for a response without a body).
   *
   * @param data The bytes; kept until `dataToSend()` hands them over.
   * @throws {TypeError} Before `respond()` or after `end()`.
   */
  send(data: Uint8Array): void {
    if (this.#response !== 1) throw new TypeError("no response body is in progress");
    if (data.length === 0 || this.#headOnly || this.#state === State.Closed) return;
    if (this.#chunked) this.#output.push(chunkHead(data.length), data, CHUNK_END);
    else this.#output.push(data);
  }

  /**
   * Ends the response. When the connection goes on (`keepAlive`), the next request's events follow
   * at once if its bytes arrived already.
   *
   * @throws {TypeError} Before `respond()`.
   */
  end(): void {
    if (this.#response !== 1) throw new TypeError("no response is in progress");
    // After a failure (or detach) the body was cut short: no last chunk to make it look complete.
    if (this.#chunked && !this.#headOnly && this.#state !== State.Closed) this.#output.push(LAST_CHUNK);
    this.#response = 2;
    // A body not read to its end would be read as the next request: the connection closes instead.
    if (this.#state !== State.Done) this.#closeAfter = true;
    if (this.#closeAfter || this.#state === State.Closed) {
      this.#state = State.Closed;
      this.#pending = NO_BYTES;
      return;
    }
    this.#state = State.Head;
    this.#method = "";
    this.#response = 0; // The next request's error is answered.
    const pending = this.#pending;
    this.#pending = NO_BYTES;
    if (pending.length > 0) this.#receive(pending, true);
  }

  /**
   * Hands the connection over (to a WebSocket handshake): nothing more is read or written here.
   *
   * @returns The bytes received after the current request, not read as HTTP.
   */
  detach(): Uint8Array {
    const pending = this.#pending;
    this.#pending = NO_BYTES;
    this.#state = State.Closed;
    return pending;
  }

  /**
   * Keeps bytes after the current request for when its response ends. What was held already and
   * comes back (`owned`) is kept as a view: a copy of the rest at every pipelined request made
   * 16,000 requests in one read take 418-877 ms on Deno instead of 55-77 (Bun 346-544 against
   * 31-65), and one client's pipeline held the event loop for seconds.
   */
  #hold(chunk: Uint8Array, owned: boolean): void {
    if (owned && this.#pending.length === 0) {
      this.#pending = chunk;
      return;
    }
    const held = new Uint8Array(this.#pending.length + chunk.length);
    held.set(this.#pending);
    held.set(chunk, this.#pending.length);
    this.#pending = held;
  }

  #read(chunk: Uint8Array, owned: boolean): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.#state) {
        case State.Head: {
          if (this.#blank === 1 && chunk[i] !== LF) throw httpError(400, "bare CR before the request line");
          if (this.#blank !== 0 && chunk[i] === (this.#blank === 2 ? CR : LF)) {
            this.#blank--;
            i++;
            break;
          }
          this.#blank = 0;
          const result = this.#head.write(i === 0 ? chunk : chunk.subarray(i));
          if (!result) return;
          this.#startRequest(result.head);
          i = chunk.length - result.rest.length;
          break;
        }
        case State.Body:
        case State.ChunkData: {
          const take = Math.min(this.#remaining, chunk.length - i);
          this.#data(chunk, i, i + take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining > 0) break;
          if (this.#state === State.Body) {
            this.#finishRequest();
          } else {
            this.#state = State.ChunkEnd;
            this.#line = "";
          }
          break;
        }
        case State.ChunkSize:
        case State.ChunkEnd:
        case State.Trailers:
          i = this.#readLine(chunk, i);
          break;
        case State.Done:
          this.#hold(chunk.subarray(i), owned);
          return;
        default:
          return;
      }
    }
  }

  /** Reads up to the end of a line; returns where reading stopped. */
  #readLine(chunk: Uint8Array, start: number): number {
    let i = start;
    for (; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === LF) {
        if (!this.#line.endsWith("\r")) throw httpError(400, "bare LF in a chunked body");
        const line = this.#line.slice(0, -1);
        this.#line = "";
        this.#lineDone(line);
        return i + 1;
      }
      if (this.#line.endsWith("\r")) throw httpError(400, "bare CR in a chunked body");
      if ((c < 0x20 && c !== 0x09 && c !== CR) || c === 0x7f) {
        throw httpError(400, "control character in a chunked body");
      }
      if (this.#line.length >= MAX_CHUNK_LINE) throw httpError(400, "chunk line too long");
      this.#line += String.fromCharCode(c);
    }
    return i;
  }

  #lineDone(line: string): void {
    switch (this.#state) {
      case State.ChunkEnd:
        if (line !== "") throw httpError(400, "chunk data longer than its size");
        this.#state = State.ChunkSize;
        return;
      case State.ChunkSize: {
        const size = chunkSize(line);
        // A huge size (any number of digits, RFC 9112 §7.1) is refused here, before its precision matters.
        const total = this.#received + size;
        if (total > this.#maxBodySize || total > Number.MAX_SAFE_INTEGER) {
          throw httpError(413, "request body too large");
        }
        if (size === 0) {
          this.#state = State.Trailers;
          return;
        }
        this.#remaining = size;
        this.#state = State.ChunkData;
        return;
      }
      default: {
        // Trailers: fields until the blank line; parsed as a head's fields, within the head's limits.
        if (line === "") {
          this.#finishRequest();
          return;
        }
        if (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09) {
          throw httpError(400, "obsolete line folding");
        }
        const colon = line.indexOf(":");
        if (colon <= 0) throw httpError(400, "trailer line without a colon");
        for (let i = 0; i < colon; i++) {
          if (!isTokenCode(line.charCodeAt(i))) throw httpError(400, "invalid trailer name");
        }
        if (++this.#trailerCount > (this.#limits.maxHeaders ?? 128)) {
          throw httpError(431, "too many trailer fields");
        }
        (this.#trailers ??= new HttpHeaders()).append(line.slice(0, colon), trimOws(line.slice(colon + 1)));
      }
    }
  }

  #startRequest(head: ParsedHead): void {
    const [method, target] = head.startLine;
    let version = head.startLine[2];
    const headers = head.headers;
    for (let i = 0; i < method.length; i++) {
      if (!isTokenCode(method.charCodeAt(i))) throw httpError(400, "malformed request method");
    }
    if (!/^HTTP\/\d\.\d$/.test(version)) throw httpError(400, "malformed HTTP version");
    if (version[5] !== "1") throw httpError(505, `HTTP version ${version} is not supported`);
    // A higher minor version is read as the highest we implement (RFC 9110 §6.2).
    if (version !== "HTTP/1.0") version = "HTTP/1.1";
    checkTarget(method, target);
    const hosts = headers.getAll("host");
    if (version === "HTTP/1.1" ? hosts.length !== 1 : hosts.length > 1) {
      throw httpError(400, "exactly one Host header is required");
    }
    if (hosts.length === 1 && !HOST.test(hosts[0]!)) throw httpError(400, "invalid Host");
    const connection = headers.getAll("connection").join(",").toLowerCase();
    const tokens = connection.split(",").map((token) => token.trim());
    this.#requestKeepAlive = version === "HTTP/1.1"
      ? !tokens.includes("close")
      : tokens.includes("keep-alive");
    const bodyLength = this.#framing(headers, version);
    const expect = headers.get("expect");
    this.#expectContinue = expect !== null && expect.toLowerCase() === "100-continue" &&
      version === "HTTP/1.1";
    this.#method = method;
    this.#version = version;
    this.#response = 0;
    this.#closeAfter = false;
    this.#received = 0;
    this.#trailers = undefined;
    this.#trailerCount = 0;
    this.#head = new HeadReader(true, this.#limits);
    this.#blank = 2;
    const upgrade = headers.getAll("upgrade").some((value) => /(^|[\s,])websocket($|[\s,/])/i.test(value));
    this.#events.push({
      type: "request",
      method,
      target,
      version,
      headers,
      head,
      bodyLength,
      expectContinue: this.#expectContinue,
      upgrade,
    });
    if (bodyLength === null) {
      this.#state = State.ChunkSize;
      this.#line = "";
    } else if (bodyLength > 0) {
      this.#state = State.Body;
      this.#remaining = bodyLength;
    } else {
      this.#finishRequest();
    }
  }

  /** The body's length from the framing fields (`null`: chunked), refusing every ambiguity. */
  #framing(headers: HttpHeaders, version: string): number | null {
    const encodings = headers.getAll("transfer-encoding");
    const lengths = headers.getAll("content-length");
    if (encodings.length > 0) {
      if (lengths.length > 0) throw httpError(400, "both Content-Length and Transfer-Encoding");
      if (version !== "HTTP/1.1") throw httpError(400, "Transfer-Encoding in an HTTP/1.0 request");
      const codings = encodings.join(",").split(",").map((coding) => coding.trim().toLowerCase());
      if (codings[codings.length - 1] !== "chunked") {
        throw httpError(400, "the last transfer coding is not chunked");
      }
      if (codings.length > 1) {
        if (
          codings.slice(0, -1).every((coding) =>
            /^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(coding) && coding !== "chunked"
          )
        ) {
          throw httpError(501, "transfer codings other than chunked are not implemented");
        }
        throw httpError(400, "malformed Transfer-Encoding");
      }
      return null;
    }
    if (lengths.length === 0) return 0;
    if (lengths.length > 1) throw httpError(400, "more than one Content-Length");
    const value = lengths[0]!;
    if (!/^[0-9]+$/.test(value)) throw httpError(400, "malformed Content-Length");
    // Leading zeros are valid; a huge value is a body too large, not a parse error (RFC 9110 §8.6).
    const length = Number(value);
    if (length > this.#maxBodySize || length > Number.MAX_SAFE_INTEGER) {
      throw httpError(413, "request body too large");
    }
    return length;
  }

  #data(chunk: Uint8Array, start: number, end: number): void {
    if (end === start) return;
    this.#received += end - start;
    this.#events.push({
      type: "data",
      data: start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end),
    });
  }

  #finishRequest(): void {
    this.#state = State.Done;
    this.#expectContinue = false;
    this.#events.push({ type: "end", trailers: this.#trailers });
  }

  #fail(error: ProtocolError): void {
    const started = this.#response !== 0;
    this.#state = State.Closed;
    this.#pending = NO_BYTES;
    this.#events.push({ type: "error", error });
    if (started) return;
    const body = encodeUtf8(error.message + "\n");
    this.#output.push(
      formatResponse(error.status!, [
        ...error.headers,
        ["Content-Type", "text/plain; charset=utf-8"],
        ["Content-Length", String(body.length)],
        ["Connection", "close"],
        ["Date", httpDate()],
      ]),
      body,
    );
    this.#response = 2;
  }
}
