/**
 * The server side of the sans-IO protocol: the opening handshake from raw
 * request bytes (RFC 6455 §4.2), then the shared connection.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { negotiateExtensions, type ServerExtensionFactory } from "./extensions.ts";
import {
  type AcceptOptions,
  acceptResponse,
  acceptToken,
  formatResponse,
  headerPairs,
  type HeadersInit,
  parseUpgradeRequest,
  type UpgradeRequest,
} from "./handshake.ts";
import { type HeadLimits, HeadReader, type ParsedHead, releaseSpans } from "./http.ts";
import {
  Protocol,
  type ProtocolEvent,
  type ProtocolOptions,
  ReadyState,
  type ReceiveOptions,
  type ReceiveResult,
} from "./protocol.ts";
import { encodeUtf8 } from "./utf8.ts";

/**
 * Options for {@linkcode ServerProtocol}.
 *
 * @category Protocol core
 */
export interface ServerProtocolOptions extends ProtocolOptions, HeadLimits {
  /** Extensions the server supports, in order of preference. Default none. */
  extensions?: ServerExtensionFactory[] | undefined;
}

/**
 * A complete request head arrived: answer it with `accept()` or `reject()`.
 *
 * @category Protocol core
 */
export interface RequestEvent {
  /** Discriminant. */
  type: "request";
  /** The request; `request.error` tells why it is not a valid upgrade. */
  request: UpgradeRequest;
}

/**
 * Events a {@linkcode ServerProtocol} produces.
 *
 * @category Protocol core
 */
export type ServerEvent = RequestEvent | ProtocolEvent;

/**
 * Options for {@linkcode ServerProtocol.accept}.
 *
 * @category Protocol core
 */
export interface ServerAcceptOptions extends AcceptOptions {
  /** Extensions to negotiate for this connection; defaults to the constructor's. */
  extensions?: ServerExtensionFactory[];
}

/**
 * A rejection response.
 *
 * @category Protocol core
 */
export interface RejectOptions {
  /** Response headers. `Connection: close` is added. */
  headers?: HeadersInit;
  /** The body, or its first part when `final` is `false`. A string is sent as UTF-8 text/plain. */
  body?: string | Uint8Array;
  /** `false` to send more of the body with `rejectData()`. Default `true`. */
  final?: boolean;
}

/**
 * Bytes a client may send before its handshake is answered. It should send none (RFC 6455 §4.1), but
 * a client pipelining frames behind its request is served. The limit covers the largest single read
 * of every adapter (Bun hands over at most 512 KiB at a time, Deno reads at most 256 KiB, the streams
 * adapter 64 KiB from a byte stream), and `Sock` reads nothing more once the head is complete: what
 * the core holds is the rest of the read that completed the head, so the answer never depends on how
 * a runtime cuts its reads. A driver that keeps reading before it answers meets the limit.
 */
const MAX_EARLY_DATA = 524288;

/** Shared by every connection that has no early data (most): one empty array, not one each. */
const NO_BYTES = new Uint8Array(0);
/** The extension factories of a server without any: one array for every connection. */
const NO_FACTORIES: readonly ServerExtensionFactory[] = Object.freeze([]);

/**
 * What only the opening handshake needs, in one object let go once the request is accepted. With
 * `finish()` taking the failure as a parameter, an open server connection's core has 51 fields
 * instead of 60, which JavaScriptCore stores in 432 bytes instead of 608 (idle connections on Bun:
 * 3.66 -> 3.42 KiB of heap each).
 */
interface Opening {
  /** Dropped once the head has arrived, with its buffer. */
  reader: HeadReader | undefined;
  factories: readonly ServerExtensionFactory[];
  token: string | undefined;
  /** Bytes the client sent before the answer, in the first `earlySize` bytes; grown as they come. */
  early: Uint8Array;
  earlySize: number;
  rejection: { status: number; reason: string } | undefined;
  /** `accept()` or `reject()` has been called. */
  answered: boolean;
  rejecting: boolean;
  /** The request is a HEAD: a rejection sends its head only (RFC 9110 §9.3.2). */
  headOnly: boolean;
}

/**
 * The server side of a WebSocket connection, without I/O.
 *
 * @category Protocol core
 *
 * @example Driving a handshake and an echo by hand
 * ```ts
 * import { ServerProtocol } from "@sock/sock";
 * import { assertEquals, assertMatch } from "@std/assert";
 *
 * const server = new ServerProtocol();
 * server.receiveData(new TextEncoder().encode(
 *   "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
 * ));
 * const [event] = server.events();
 * assertEquals(event.type, "request");
 * server.accept();
 * const [response] = server.dataToSend();
 * assertMatch(new TextDecoder().decode(response), /^HTTP\/1\.1 101 /);
 *
 * // A masked "Hello" from the client (RFC 6455 §5.7).
 * server.receiveData(new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
 * assertEquals(server.events(), [{ type: "text", data: "Hello", final: true }]);
 * server.send("Hello");
 * assertEquals(server.dataToSend(), [new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])]);
 * ```
 */
export class ServerProtocol extends Protocol<RequestEvent> {
  #request: UpgradeRequest | undefined;
  /** Until the request is accepted (kept after a rejection, which ends the connection). */
  #opening: Opening | undefined;

  /**
   * Creates the server side of one connection, waiting for the request.
   *
   * @param options Limits, extensions and behaviour.
   */
  constructor(options: ServerProtocolOptions = {}) {
    super(false, options);
    this.#opening = {
      reader: new HeadReader(true, options),
      factories: options.extensions ?? NO_FACTORIES,
      token: undefined,
      early: NO_BYTES,
      earlySize: 0,
      rejection: undefined,
      answered: false,
      rejecting: false,
      headOnly: false,
    };
  }

  /** The request, once its head has arrived. */
  get request(): UpgradeRequest | undefined {
    return this.#request;
  }

  /**
   * The rejection answered, once `reject()` ran or the head was refused: its status, and why (the
   * body's text, or the error's message; empty when neither says).
   */
  get rejection(): { status: number; reason: string } | undefined {
    return this.#opening?.rejection;
  }

  /**
   * Feeds bytes received from the transport: the request head first, then
   * frames. A malformed head queues the HTTP error response (400, 414, 431,
   * 505) and produces `failed`; nothing throws.
   *
   * @param chunk The bytes; not modified or kept after the call unless transferred.
   * @param options `transfer: true` to hand the chunk over, and limits once open (see {@linkcode ReceiveOptions}).
   * @returns How many bytes of `chunk` were read (all of them, unless a limit stopped the call once
   *   open), and whether the core kept its buffer (only once open; see {@linkcode ReceiveResult}).
   */
  override receiveData(chunk: Uint8Array, options?: ReceiveOptions): ReceiveResult {
    if (this.readyState !== ReadyState.Connecting) return super.receiveData(chunk, options);
    // The handshake copies what it keeps (a head split across reads, early data).
    this.#receiveHandshake(chunk);
    return { read: chunk.length, kept: false };
  }

  #receiveHandshake(chunk: Uint8Array): void {
    const opening = this.#opening!; // Dropped only when the request is accepted.
    if (this.#request) {
      if (opening.rejecting || chunk.length === 0) return;
      const size = opening.earlySize + chunk.length;
      if (size > MAX_EARLY_DATA) {
        this.#failHandshake(
          new ProtocolError("client sent data before the handshake completed", CloseCode.ProtocolError, {
            status: 400,
          }),
        );
        return;
      }
      if (size > opening.early.length) {
        const grown = new Uint8Array(Math.min(MAX_EARLY_DATA, Math.max(size, opening.early.length * 2)));
        grown.set(opening.early.subarray(0, opening.earlySize));
        opening.early = grown;
      }
      opening.early.set(chunk, opening.earlySize);
      opening.earlySize = size;
      return;
    }
    try {
      const result = opening.reader!.write(chunk);
      if (result) this.receiveHead(result.head, result.rest);
    } catch (error) {
      this.#failHandshake(error);
    }
  }

  /**
   * Takes a request head read by someone else, e.g. an {@linkcode HttpServerProtocol} that served
   * the connection's earlier requests, and the bytes that came after it, as if they were received
   * here: the `request` event follows.
   *
   * @example A head parsed beforehand
   * ```ts
   * import { HeadReader, ServerProtocol } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const { head, rest } = new HeadReader(true).write(new TextEncoder().encode(
   *   "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
   *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
   * ))!;
   * const server = new ServerProtocol();
   * server.receiveHead(head, rest);
   * assertEquals(server.request?.path, "/chat");
   * ```
   *
   * @param head The request head.
   * @param rest What followed it (early data); not kept past the call.
   * @throws {TypeError} When a head was received already.
   */
  receiveHead(head: ParsedHead, rest: Uint8Array): void {
    const opening = this.#opening;
    if (!opening?.reader) throw new TypeError("the request head was received already");
    opening.reader = undefined;
    try {
      const request = parseUpgradeRequest(head);
      this.#request = request;
      opening.headOnly = request.method === "HEAD";
      if (!request.error) {
        opening.token = acceptToken(request.key);
      }
      this.emit({ type: "request", request });
      // Bytes after the head are early data, under the same limit as later ones.
      if (rest.length > 0) this.receiveData(rest);
    } catch (error) {
      this.#failHandshake(error);
    }
  }

  /**
   * Accepts the upgrade: queues the 101 response and moves to OPEN.
   *
   * @param options The subprotocol (one the client offered, or none), extra headers, extensions.
   * @throws {ProtocolError} The request's `error`, when it is not a valid upgrade.
   * @throws {TypeError} Before a request, after an answer, for a subprotocol not offered, or an invalid header.
   */
  accept(options: ServerAcceptOptions = {}): void {
    const request = this.#checkCanAnswer();
    if (request.error) throw request.error;
    const opening = this.#opening!;
    const { header, extensions } = negotiateExtensions(
      options.extensions ?? opening.factories,
      request.extensions,
    );
    // Throws for a bad subprotocol or header before anything is committed.
    const response = acceptResponse(request, opening.token!, header, options);
    this.#opening = undefined; // Not kept for the connection's life.
    releaseSpans(request.headers); // Nor what finds its headers fast.
    this.sendRaw(response, true);
    this.open(options.subprotocol ?? "", extensions, header);
    if (opening.earlySize > 0) this.receiveAfterHandshake(opening.early.subarray(0, opening.earlySize));
  }

  /**
   * Rejects the upgrade with an HTTP response. Without a status, answers a
   * request that is not a valid upgrade with its error's status (400, 405,
   * 426 …) and a valid one with 403. A HEAD request gets the head only: the
   * body is not sent, though `Content-Length` is the one a GET would get
   * (RFC 9110 §9.3.2).
   *
   * @param status The HTTP status.
   * @param options Headers and body.
   * @throws {TypeError} Before a request, after an answer, or for an invalid header.
   * @throws {RangeError} For a status outside 100–599 or a 101.
   */
  reject(status?: number, options: RejectOptions = {}): void {
    const request = this.#checkCanAnswer();
    const error = request.error;
    const code = status ?? error?.status ?? 403;
    if (code === 101) throw new RangeError("reject() cannot send 101; use accept()");
    const headers: [string, string][] = [];
    if (error && code === error.status) headers.push(...error.headers);
    headers.push(...headerPairs(options.headers));
    const body = typeof options.body === "string" ? encodeUtf8(options.body) : options.body;
    const final = options.final ?? true;
    const hasType = headers.some(([name]) => name.toLowerCase() === "content-type");
    if (typeof options.body === "string" && !hasType) {
      headers.push(["Content-Type", "text/plain; charset=utf-8"]);
    }
    if (final) headers.push(["Content-Length", String(body?.length ?? 0)]);
    headers.push(["Connection", "close"]);
    this.sendRaw(formatResponse(code, headers), true);
    const opening = this.#opening!;
    opening.answered = true;
    opening.rejecting = true;
    const said = typeof options.body === "string" ? options.body.trim() : "";
    opening.rejection = {
      status: code,
      reason: said || (error && code === error.status ? error.message : ""),
    };
    opening.early = NO_BYTES;
    this.rejectData(body ?? new Uint8Array(0), final);
  }

  /**
   * Sends more of a rejection body started with `reject(status, { final: false })`.
   * The body ends when the connection closes. For a HEAD request the data is
   * dropped: the response has no body.
   *
   * @param data The next part of the body.
   * @param final Whether this is the last part. Default `false`.
   * @throws {TypeError} When no rejection is in progress.
   */
  rejectData(data: string | Uint8Array, final = false): void {
    const opening = this.#opening;
    if (!opening?.rejecting || this.readyState !== ReadyState.Connecting) {
      throw new TypeError("no rejection body is in progress");
    }
    const bytes = typeof data === "string" ? encodeUtf8(data) : data;
    if (bytes.length > 0 && !opening.headOnly) this.sendRaw(bytes);
    if (final) this.finish();
  }

  #checkCanAnswer(): UpgradeRequest {
    if (this.readyState !== ReadyState.Connecting || !this.#request) {
      throw new TypeError("no request is waiting for an answer");
    }
    if (this.#opening!.answered) throw new TypeError("the request was already answered");
    return this.#request;
  }

  #failHandshake(error: unknown): void {
    const opening = this.#opening!; // Failed before an accept.
    if (error instanceof ProtocolError && error.status !== undefined) {
      opening.rejection = { status: error.status, reason: error.message };
      const body = encodeUtf8(error.message + "\n");
      this.sendRaw(formatResponse(error.status, [
        ...error.headers,
        ["Content-Type", "text/plain; charset=utf-8"],
        ["Content-Length", String(body.length)],
        ["Connection", "close"],
      ]));
      if (!opening.headOnly) this.sendRaw(body);
    }
    opening.answered = true;
    this.fail(error);
  }
}
