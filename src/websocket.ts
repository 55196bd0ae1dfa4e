/**
 * The web's `WebSocket` API on top of sock's {@linkcode connect} and
 * {@linkcode Connection}: code written for browsers runs unchanged, over any
 * sock adapter (pass `options.adapter`, e.g. the streams adapter on an edge
 * runtime).
 *
 * @module
 */

import { connect, type ConnectOptions } from "./client.ts";
import type { Connection } from "./connection/connection.ts";
import type { Message } from "./connection/inbox.ts";
import { CloseCode, MAX_CLOSE_REASON_BYTES } from "./core/close.ts";
import { ProtocolError } from "./core/errors.ts";
import { checkSubprotocols, headerPairs } from "./core/handshake.ts";
import { type CloseResult, ReadyState } from "./core/protocol.ts";
import { parseWebSocketUrl } from "./core/url.ts";
import { utf8Length } from "./core/utf8.ts";

/**
 * The data `send()` takes, as in browsers: a string is sent as text, the rest as binary.
 *
 * @category Client
 *
 * @example Every kind of message
 * ```ts
 * import type { WebSocketData } from "@sock/sock/websocket";
 *
 * const messages: WebSocketData[] = ["text", new Uint8Array([1]), new ArrayBuffer(2), new Blob(["blob"])];
 * ```
 */
export type WebSocketData = string | ArrayBufferLike | ArrayBufferView | Blob;

/**
 * The events a {@linkcode WebSocket} fires, by type; `addEventListener` types its listeners with it.
 *
 * @category Client
 *
 * @example A listener typed by the map
 * ```ts
 * import type { WebSocketEventMap } from "@sock/sock/websocket";
 *
 * const onClose = (event: WebSocketEventMap["close"]) => console.log(event.code, event.reason);
 * ```
 */
export interface WebSocketEventMap {
  /** The handshake completed. */
  open: Event;
  /** A message arrived. */
  message: MessageEvent;
  /** The connection failed (an `ErrorEvent` whose `error` says why, where the runtime has `ErrorEvent`). */
  error: Event;
  /** The connection is closed. */
  close: CloseEvent;
}

/**
 * An `on…` property's value: a function called with the event (`this` is the WebSocket, typed as the
 * DOM's, so handlers written for browsers fit), or `null`.
 *
 * @category Client
 *
 * @example An `onmessage` handler
 * ```ts
 * import type { WebSocketEventHandler } from "@sock/sock/websocket";
 *
 * const onmessage: WebSocketEventHandler<"message"> = (event) => console.log(event.data);
 * ```
 */
export type WebSocketEventHandler<K extends keyof WebSocketEventMap> =
  | ((this: globalThis.WebSocket, event: WebSocketEventMap[K]) => unknown)
  | null;

/** The bytes of a `send()` argument, copied: later changes to the caller's buffer do not affect the message. */
function copyBytes(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return new Uint8Array(data).slice();
}

function isBinary(data: unknown): data is ArrayBufferLike | ArrayBufferView {
  return ArrayBuffer.isView(data) || data instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer === "function" && data instanceof SharedArrayBuffer);
}

/** Runs a check of the core, reporting what it refuses as the WHATWG constructor does: a `SyntaxError`. */
function syntaxCheck<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new DOMException(error instanceof Error ? error.message : String(error), "SyntaxError");
  }
}

/** The subprotocols the constructor was given, as a list, checked (tokens, none twice). */
function parseProtocols(protocols: string | string[] | undefined): string[] | undefined {
  if (protocols === undefined) return undefined;
  const list = typeof protocols === "string" ? [protocols] : Array.from(protocols, String);
  syntaxCheck(() => checkSubprotocols(list));
  return list;
}

function errorEvent(cause: unknown): Event {
  if (typeof ErrorEvent !== "function") return new Event("error");
  const message = cause instanceof Error ? cause.message : String(cause);
  return new ErrorEvent("error", { error: cause, message });
}

/**
 * A browser-compatible WebSocket client: the web `WebSocket` API (ready
 * states, `send`, `close`, `binaryType`, `bufferedAmount`, the `open`,
 * `message`, `error` and `close` events and their `on…` properties) over
 * sock's {@linkcode connect}, so it works with any sock adapter.
 *
 * It follows the WHATWG specification, including where runtimes' built-in
 * clients differ: `binaryType` defaults to `"blob"`; `close()` accepts only
 * 1000 and 3000–4999; a connection that fails reports close code 1006; data
 * sent once closing is dropped and counted in `bufferedAmount`; `error` fires
 * only when the connection fails (a failed handshake, `close()` while
 * connecting, a protocol error), not when the peer merely drops it. When
 * subprotocols were offered and the server chose none, the connection fails
 * (`error`, then `close` with 1006), as WHATWG requires; {@linkcode connect}
 * accepts that answer, as RFC 6455 allows. The
 * `error` event is an `ErrorEvent` whose `error` is the cause, where the
 * runtime has `ErrorEvent` (a plain `Event` elsewhere). Like browsers, it
 * offers permessage-deflate (pass `deflate: false` in the options not to).
 * `close()` without a code sends an empty close frame, which the peer reports
 * as 1005, as in browsers. Its type fits wherever the DOM's `WebSocket` type
 * is expected (`const ws: globalThis.WebSocket = new WebSocket(url)`), and the
 * class where `typeof WebSocket` is (a polyfill); listeners and `on…`
 * handlers get it as the DOM type in `this`. Pings and pongs are not events,
 * as in browsers: pass `onPing` / `onPong` in the options to see them.
 *
 * @category Client
 *
 * @example Echo, in browser style
 * ```ts ignore
 * import { WebSocket } from "@sock/sock/websocket";
 *
 * const ws = new WebSocket("ws://127.0.0.1:9001/echo");
 * ws.binaryType = "arraybuffer";
 * ws.onopen = () => ws.send("hello");
 * ws.onmessage = (event) => {
 *   console.log(event.data); // "hello"
 *   ws.close(1000, "done");
 * };
 * ws.onclose = (event) => console.log(event.code, event.reason, event.wasClean);
 * ```
 *
 * @example The ready states
 * ```ts
 * import { WebSocket } from "@sock/sock/websocket";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED], [0, 1, 2, 3]);
 * ```
 */
export class WebSocket extends EventTarget {
  /** The handshake is under way. */
  static readonly CONNECTING: 0 = ReadyState.Connecting;
  /** Messages flow both ways. */
  static readonly OPEN: 1 = ReadyState.Open;
  /** The close handshake is under way. */
  static readonly CLOSING: 2 = ReadyState.Closing;
  /** Closed, or the connection could not be opened. */
  static readonly CLOSED: 3 = ReadyState.Closed;

  #url: URL;
  #state: ReadyState = ReadyState.Connecting;
  #connection: Connection | undefined;
  #binaryType: "blob" | "arraybuffer" = "blob";
  /** Message bytes handed to the connection and not yet to the socket. */
  #sendingBytes = 0;
  /** Bytes of `send()` calls waiting behind a Blob being read. */
  #queuedBytes = 0;
  /** Bytes of `send()` calls after close, which are dropped (browsers count them too). */
  #droppedBytes = 0;
  /** Set while a Blob is being read: later sends and close wait for it, to keep their order. */
  #sendChain: Promise<void> | undefined;
  #finished = false;
  /** Set by `close()` once OPEN: a missing close frame from the peer is then a timeout, not a failure. */
  #closeCalled = false;
  #handlers: { [K in keyof WebSocketEventMap]?: WebSocketEventHandler<K> } = {};
  /** Whether subprotocols were offered: the server must then choose one. */
  #offeredSubprotocols: boolean;

  /**
   * Starts connecting. Events report the outcome; the constructor throws only for bad arguments.
   *
   * @param url A `ws:` or `wss:` URL (`http:` and `https:` are mapped to them), without a fragment.
   * @param protocols Subprotocols to offer, in order of preference; or, as Deno's constructor takes
   *   them, an object with the `protocols` and extra request `headers` (added to `options.headers`).
   * @param options sock's connect options: the adapter, headers, CA certificates, timeouts, deflate,
   *   `onPing` and `onPong`.
   * @throws {DOMException} `SyntaxError` for an invalid URL or subprotocol list.
   * @throws {TypeError} For `headers` that `new Headers()` refuses (a pair that is not a pair, an
   *   invalid name or value), as `fetch()` does.
   */
  constructor(
    url: string | URL,
    protocols?:
      | string
      | string[]
      | { protocols?: string | string[]; headers?: Iterable<readonly string[]> | Record<string, string> },
    options: ConnectOptions = {},
  ) {
    super();
    this.#url = syntaxCheck(() => parseWebSocketUrl(url)).url;
    if (typeof protocols === "object" && protocols !== null && !(Symbol.iterator in protocols)) {
      if (protocols.headers !== undefined) {
        // Checked as `fetch()` checks them: a pair that is not a pair is a TypeError.
        const extra = new Headers(protocols.headers as [string, string][]);
        options = { ...options, headers: [...headerPairs(options.headers), ...extra] };
      }
      protocols = protocols.protocols;
    }
    const offered = parseProtocols(protocols) ?? options.subprotocols;
    this.#offeredSubprotocols = (offered?.length ?? 0) > 0;
    connect(this.#url, { deflate: true, ...options, subprotocols: offered }).then(
      (connection) => this.#opened(connection),
      (error) => this.#failedToOpen(error),
    );
  }

  /** The handshake is under way. */
  get CONNECTING(): 0 {
    return ReadyState.Connecting;
  }
  /** Messages flow both ways. */
  get OPEN(): 1 {
    return ReadyState.Open;
  }
  /** The close handshake is under way. */
  get CLOSING(): 2 {
    return ReadyState.Closing;
  }
  /** Closed, or the connection could not be opened. */
  get CLOSED(): 3 {
    return ReadyState.Closed;
  }

  /** The URL, normalized (`http:` becomes `ws:`). */
  get url(): string {
    return this.#url.href;
  }

  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
  get readyState(): ReadyState {
    return this.#state;
  }

  /** The subprotocol the server chose; empty before the connection opens and when none. */
  get protocol(): string {
    return this.#connection?.subprotocol ?? "";
  }

  /**
   * The extensions the server agreed to, with their parameters: its `Sec-WebSocket-Extensions`
   * value as it sent it, as in browsers; empty before the connection opens and when none.
   */
  get extensions(): string {
    return this.#connection?.extensionsHeader ?? "";
  }

  /** How binary messages are delivered: `"blob"` (the default) or `"arraybuffer"`. Other values are ignored. */
  get binaryType(): "blob" | "arraybuffer" {
    return this.#binaryType;
  }
  set binaryType(value: "blob" | "arraybuffer") {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  /**
   * Bytes of messages passed to `send()` and not yet handed to the network
   * (payload only, as in browsers: no frame headers); after close, it keeps
   * growing with every `send()`.
   */
  get bufferedAmount(): number {
    return this.#sendingBytes + this.#queuedBytes + this.#droppedBytes;
  }

  /** Called on `open`. */
  get onopen(): WebSocketEventHandler<"open"> {
    return this.#handlers.open ?? null;
  }
  set onopen(handler: WebSocketEventHandler<"open">) {
    this.#setHandler("open", handler);
  }
  /** Called on `message`. */
  get onmessage(): WebSocketEventHandler<"message"> {
    return this.#handlers.message ?? null;
  }
  set onmessage(handler: WebSocketEventHandler<"message">) {
    this.#setHandler("message", handler);
  }
  /** Called on `error`. */
  get onerror(): WebSocketEventHandler<"error"> {
    return this.#handlers.error ?? null;
  }
  set onerror(handler: WebSocketEventHandler<"error">) {
    this.#setHandler("error", handler);
  }
  /** Called on `close`. */
  get onclose(): WebSocketEventHandler<"close"> {
    return this.#handlers.close ?? null;
  }
  set onclose(handler: WebSocketEventHandler<"close">) {
    this.#setHandler("close", handler);
  }

  /**
   * Adds an event listener, typed by event for `open`, `message`, `error` and `close`.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options `once`, `signal` and so on, as for any `EventTarget`.
   */
  override addEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (this: globalThis.WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Adds an event listener for any event type.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options `once`, `signal` and so on, as for any `EventTarget`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((event: never) => unknown) | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /**
   * Removes an event listener.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options `capture`, as given to `addEventListener`.
   */
  override removeEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (this: globalThis.WebSocket, event: WebSocketEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes an event listener of any event type.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options `capture`, as given to `addEventListener`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((event: never) => unknown) | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /**
   * Sends a message: a string as text; an `ArrayBuffer`, a view or a `Blob` as
   * binary. The bytes are copied at once (a Blob is read first; later sends
   * wait for it, so messages keep their order). Once the connection is closing
   * or closed, the data is dropped and only counted in `bufferedAmount`.
   *
   * @param data The message.
   * @throws {DOMException} `InvalidStateError` while CONNECTING.
   */
  send(data: WebSocketData): void {
    if (this.#state === ReadyState.Connecting) {
      throw new DOMException("cannot send while the WebSocket is CONNECTING", "InvalidStateError");
    }
    const message: string | Uint8Array | Blob = typeof data === "string"
      ? data
      : data instanceof Blob
      ? data
      : isBinary(data)
      ? copyBytes(data)
      : String(data);
    const size = typeof message === "string"
      ? utf8Length(message)
      : message instanceof Blob
      ? message.size
      : message.length;
    // Also dropped: sends after the peer's close frame arrived, before the close event fires.
    if (this.#state !== ReadyState.Open || this.#connection!.readyState !== ReadyState.Open) {
      this.#droppedBytes += size;
      return;
    }
    if (!(message instanceof Blob) && !this.#sendChain) {
      this.#transmit(message, size);
      return;
    }
    this.#queuedBytes += size;
    const previous = this.#sendChain ?? Promise.resolve();
    const chain: Promise<void> = previous
      .then(() => message instanceof Blob ? message.arrayBuffer().then((b) => new Uint8Array(b)) : message)
      .then((bytes) => {
        this.#queuedBytes -= size;
        if (this.#connection!.readyState === ReadyState.Open) this.#transmit(bytes, size);
        else this.#droppedBytes += size;
      }, () => {
        // An unreadable Blob fails the connection, as in browsers.
        this.#queuedBytes -= size;
        this.#connection!.terminate();
      })
      .finally(() => {
        if (this.#sendChain === chain) this.#sendChain = undefined;
      });
    this.#sendChain = chain;
  }

  /**
   * Starts the close handshake (or, while CONNECTING, abandons the
   * connection: `error` then `close` with 1006 follow). Does nothing once
   * closing or closed.
   *
   * @param code 1000 or 3000–4999. Without one, the close frame is empty, as browsers send it: the peer
   *   sees 1005 (no status received), and so does this side's `close` event when the peer echoes it.
   * @param reason Up to 123 bytes of UTF-8.
   * @throws {DOMException} `InvalidAccessError` for another code, `SyntaxError` for a longer reason.
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== CloseCode.Normal && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`invalid close code ${code}: use 1000 or 3000-4999`, "InvalidAccessError");
    }
    const text = reason ?? "";
    if (utf8Length(text) > MAX_CLOSE_REASON_BYTES) {
      throw new DOMException(
        `the close reason must be at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8`,
        "SyntaxError",
      );
    }
    if (this.#state === ReadyState.Connecting) {
      this.#state = ReadyState.Closing;
      const error = new DOMException("closed before the connection was established", "AbortError");
      setTimeout(() => this.#finish(undefined, error), 0);
      return;
    }
    if (this.#state !== ReadyState.Open) return;
    this.#state = ReadyState.Closing;
    this.#closeCalled = true;
    const connection = this.#connection!;
    const closing = () => connection.close(code, text).catch(() => {});
    if (this.#sendChain) this.#sendChain.then(closing);
    else closing();
  }

  /** Sends through the connection, counting the bytes until the socket took them. */
  #transmit(message: Message, size: number): void {
    this.#sendingBytes += size;
    this.#connection!.send(message).catch(() => {}).finally(() => this.#sendingBytes -= size);
  }

  #setHandler<K extends keyof WebSocketEventMap>(
    type: K,
    handler: WebSocketEventHandler<K>,
  ): void {
    const registered = type in this.#handlers;
    (this.#handlers as Record<K, WebSocketEventHandler<K>>)[type] = typeof handler === "function"
      ? handler
      : null;
    // As in browsers: the handler takes its place among the listeners when first set.
    if (!registered) {
      super.addEventListener(type, (event) => {
        const current = this.#handlers[type] as WebSocketEventHandler<K>;
        current?.call(this, event as WebSocketEventMap[K]);
      });
    }
  }

  #opened(connection: Connection): void {
    if (this.#state !== ReadyState.Connecting) {
      // close() was called while connecting; its events already fired or are about to.
      connection.terminate();
      return;
    }
    if (this.#offeredSubprotocols && connection.subprotocol === "") {
      // WHATWG WebSockets (Fetch, "establish a WebSocket connection"): subprotocols were offered and
      // the response has no Sec-WebSocket-Protocol, so the connection fails. connect() accepts it, as
      // RFC 6455 §4.1 lets a client; browsers do not.
      connection.terminate();
      this.#finish(
        undefined,
        new ProtocolError("the server chose none of the offered subprotocols", CloseCode.ProtocolError),
      );
      return;
    }
    this.#connection = connection;
    this.#state = ReadyState.Open;
    this.dispatchEvent(new Event("open"));
    this.#receive(connection);
  }

  #failedToOpen(error: unknown): void {
    if (this.#state === ReadyState.Closed || this.#finished) return;
    this.#finish(undefined, error);
  }

  async #receive(connection: Connection): Promise<void> {
    // One message per task turn, as in browsers: what a listener queued runs before the next event.
    while (true) {
      let message: Message | undefined;
      try {
        message = await connection.receive();
      } catch {
        message = undefined;
      }
      if (message === undefined) break;
      // Messages after close() was called are dropped, as in browsers.
      if (this.#state === ReadyState.Open) this.#deliver(message);
    }
    this.#finish(await connection.closed);
  }

  #deliver(message: Message): void {
    let data: string | Blob | ArrayBuffer;
    if (typeof message === "string") {
      data = message;
    } else if (this.#binaryType === "blob") {
      data = new Blob([message as Uint8Array<ArrayBuffer>]);
    } else {
      const { buffer, byteOffset, byteLength } = message;
      data = byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer
        ? buffer
        : buffer.slice(byteOffset, byteOffset + byteLength) as ArrayBuffer;
    }
    this.dispatchEvent(new MessageEvent("message", { data, origin: this.#url.origin }));
  }

  /**
   * Moves to CLOSED and fires the last events: `error` first if the
   * connection failed, then `close`.
   *
   * @param closed The connection's final state, when it opened.
   * @param failure Why it could not open, when it did not.
   */
  #finish(closed: CloseResult | undefined, failure?: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = ReadyState.Closed;
    // Our side failed the connection: it sent a close frame of its own, without close() being called.
    const failed = closed === undefined ||
      (!closed.received && closed.sent !== undefined && !this.#closeCalled);
    if (failed) this.dispatchEvent(errorEvent(failure ?? new Error(closed?.reason || "connection failed")));
    this.dispatchEvent(
      new CloseEvent("close", {
        code: closed?.received?.code ?? CloseCode.AbnormalClosure,
        reason: closed?.received?.reason ?? "",
        wasClean: closed?.wasClean ?? false,
      }),
    );
  }
}
