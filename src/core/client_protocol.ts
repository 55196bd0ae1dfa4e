/**
 * The client side of the sans-IO protocol: the opening request and the
 * response check (RFC 6455 §4.1), then the shared connection.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { type ClientExtensionFactory, completeExtensions } from "./extensions.ts";
import {
  acceptToken,
  checkAcceptResponse,
  formatRequest,
  generateKey,
  type HandshakeResponse,
  type RequestOptions,
} from "./handshake.ts";
import { BodyReader, type HeadLimits, HeadReader } from "./http.ts";
import { cryptoRandom } from "./mask.ts";
import {
  Protocol,
  type ProtocolEvent,
  type ProtocolOptions,
  ReadyState,
  type ReceiveOptions,
  type ReceiveResult,
} from "./protocol.ts";

/**
 * Options for {@linkcode ClientProtocol}.
 *
 * @category Protocol core
 */
export interface ClientProtocolOptions
  extends ProtocolOptions, HeadLimits, Omit<RequestOptions, "extensions"> {
  /** Extensions to offer, in order of preference. Default none. */
  extensions?: ClientExtensionFactory[];
  /** Most bytes of a rejection body kept; the rest is dropped. Default 65536. */
  maxRejectBodySize?: number;
}

/**
 * The server accepted: the connection is OPEN.
 *
 * @category Protocol core
 */
export interface AcceptedEvent {
  /** Discriminant. */
  type: "accepted";
  /** The 101 response. */
  response: HandshakeResponse;
}

/**
 * The server answered with something other than 101; the connection is over.
 *
 * @category Protocol core
 */
export interface RejectedEvent {
  /** Discriminant. */
  type: "rejected";
  /** The response status and headers. */
  response: HandshakeResponse;
  /** The response body (up to `maxRejectBodySize` bytes). */
  body: Uint8Array;
}

/**
 * Events a {@linkcode ClientProtocol} produces.
 *
 * @category Protocol core
 */
export type ClientEvent = AcceptedEvent | RejectedEvent | ProtocolEvent;

/** A rejection response whose body is still arriving. */
interface Rejection {
  response: HandshakeResponse;
  body: BodyReader;
}

/**
 * The client side of a WebSocket connection, without I/O.
 *
 * @category Protocol core
 *
 * @example Driving a client by hand
 * ```ts
 * import { ClientProtocol } from "@sock/sock";
 * import { assertEquals, assertMatch } from "@std/assert";
 *
 * const client = new ClientProtocol({ url: "ws://example.com/chat", random: (b) => b.fill(0) });
 * client.sendRequest();
 * const request = new TextDecoder().decode(client.dataToSend()[0]);
 * assertMatch(request, /^GET \/chat HTTP\/1\.1\r\nHost: example\.com\r\n/);
 *
 * client.receiveData(new TextEncoder().encode(
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n\r\n",
 * ));
 * assertEquals(client.events()[0].type, "accepted");
 * client.send("Hi");
 * // Masked with the all-zero key from the injected random source.
 * assertEquals(client.dataToSend(), [new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0x48, 0x69])]);
 * ```
 */
export class ClientProtocol extends Protocol<AcceptedEvent | RejectedEvent> {
  #options: ClientProtocolOptions;
  /** Dropped once the head has arrived, with its buffer. */
  #reader: HeadReader | undefined;
  #request: Uint8Array;
  #key: string;
  #token: string | undefined;
  #rejection: Rejection | undefined;

  /**
   * Creates the client side of one connection; call `sendRequest()` next.
   *
   * @param options The URL, subprotocols, extensions, headers, limits and behaviour.
   * @throws {TypeError} For a URL that is not ws/wss, a subprotocol that is not a token, or an invalid header.
   */
  constructor(options: ClientProtocolOptions) {
    super(true, options);
    this.#options = options;
    this.#reader = new HeadReader(false, options);
    this.#key = generateKey(options.random ?? cryptoRandom);
    // Formatted now, so a bad URL, subprotocol or header throws here.
    const extensions = (options.extensions ?? []).flatMap((factory) => factory.offer());
    const { url, subprotocols, headers } = options;
    this.#request = formatRequest({ url, subprotocols, headers, extensions }, this.#key);
  }

  /**
   * Queues the opening request.
   *
   * @throws {TypeError} When called twice.
   */
  sendRequest(): void {
    if (this.#token !== undefined) throw new TypeError("the request was already sent");
    this.#token = acceptToken(this.#key);
    this.sendRaw(this.#request, true);
  }

  /**
   * Feeds bytes received from the transport: the response head first, then
   * frames (or the body of a rejection). An invalid 101 fails with 1002.
   *
   * @param chunk The bytes; not modified or kept after the call unless transferred.
   * @param options `transfer: true` to hand the chunk over, and limits once open (see {@linkcode ReceiveOptions}).
   * @returns How many bytes of `chunk` were read (all of them, unless a limit stopped the call once
   *   open), and whether the core kept its buffer (only once open; see {@linkcode ReceiveResult}).
   * @throws {TypeError} Before `sendRequest()` has completed.
   */
  override receiveData(chunk: Uint8Array, options?: ReceiveOptions): ReceiveResult {
    if (this.readyState !== ReadyState.Connecting) return super.receiveData(chunk, options);
    // The handshake copies what it keeps (a head split across reads, early data).
    this.#receiveHandshake(chunk);
    return { read: chunk.length, kept: false };
  }

  #receiveHandshake(chunk: Uint8Array): void {
    if (!this.#token) throw new TypeError("call sendRequest() before receiveData()");
    if (this.#rejection) return this.#rejectionBody(chunk);
    try {
      const result = this.#reader!.write(chunk);
      if (!result) return;
      this.#reader = undefined;
      const [version, statusText, reason] = result.head.startLine;
      const status = Number(statusText);
      if (!/^HTTP\/1\.\d$/.test(version) || !/^\d{3}$/.test(statusText)) {
        throw new ProtocolError("malformed status line", CloseCode.ProtocolError);
      }
      const response: HandshakeResponse = { status, statusText: reason, headers: result.head.headers };
      if (status !== 101) {
        const headers = response.headers;
        const max = this.#options.maxRejectBodySize ?? 65536;
        const chunked = /(^|,)\s*chunked\s*$/i.test(headers.get("transfer-encoding") ?? "");
        const length = headers.get("content-length");
        const known = !chunked && length !== null && /^\d+$/.test(length);
        this.#rejection = {
          response,
          body: new BodyReader(known ? Math.min(Number(length), max) : max, chunked),
        };
        this.#rejectionBody(result.rest);
        return;
      }
      const agreed = checkAcceptResponse(response, this.#token, this.#options.subprotocols ?? []);
      const extensions = completeExtensions(this.#options.extensions ?? [], agreed.extensions);
      this.open(agreed.subprotocol, extensions, response.headers.get("sec-websocket-extensions") ?? "");
      this.emit({ type: "accepted", response });
      this.receiveAfterHandshake(result.rest.slice());
    } catch (error) {
      this.fail(error);
    }
  }

  /** Ends a rejection body that runs until EOF; otherwise as for any connection. */
  override receiveEof(): void {
    if (this.#rejection && this.readyState === ReadyState.Connecting) this.#endRejection();
    super.receiveEof();
  }

  #rejectionBody(chunk: Uint8Array): void {
    const body = this.#rejection!.body;
    body.write(chunk);
    if (body.done) {
      this.#endRejection();
      this.finish();
    }
  }

  #endRejection(): void {
    const r = this.#rejection!;
    this.emit({ type: "rejected", response: r.response, body: r.body.body });
  }
}
