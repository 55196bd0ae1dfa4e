/**
 * A WebSocket connection over a transport, with an async API for the application: the facade over
 * a `Reader` (bytes into the protocol core), an `Inbox` (messages for the application), an
 * `Outbox` (writes) and `Keepalive` (pings).
 *
 * @module
 */

import type { ClientProtocol } from "../core/client_protocol.ts";
import { CloseCode } from "../core/close.ts";
import { ProtocolError } from "../core/errors.ts";
import { type CloseResult, type ProtocolEvent, type ProtocolStats, ReadyState } from "../core/protocol.ts";
import type { ServerProtocol } from "../core/server_protocol.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import type { Transport } from "../transport.ts";
import { ConnectionClosed, ignore, quiet } from "./closed.ts";
import { Inbox, type InboxOwner, type Message, type MessagePart } from "./inbox.ts";
import { Keepalive, type KeepaliveOwner } from "./keepalive.ts";
import type { Link } from "./link.ts";
import { DEFLATE_SLICE, Outbox, QUEUED, slices } from "./outbox.ts";
import { Reader, type ReaderOwner } from "./reader.ts";
import { type ConnectionOptions, type ConnectionSettings, connectionSettings } from "./options.ts";
import { settledWithin } from "../timers.ts";

/**
 * The server a connection belongs to: its topics (see `Sock.publish`) and its list of connections.
 *
 * @category Server
 */
export interface ServerHub {
  /** Adds the connection to a topic. */
  subscribe(ws: Connection, topic: string): void;
  /** Removes the connection from a topic. */
  unsubscribe(ws: Connection, topic: string): void;
  /** The topics the connection is subscribed to. */
  topicsOf(ws: Connection): ReadonlySet<string>;
  /** The connection closed: it leaves every topic and the server's list. */
  closed(ws: Connection): void;
  /** Keepalive gave up on the connection (no pong in time): it is dropped next. */
  keepaliveTimeout?(ws: Connection): void;
}

/**
 * An extension in effect on a connection, with what was agreed (see
 * {@linkcode Connection.negotiatedExtensions}).
 *
 * @category Connection
 *
 * @example Reading the window a client compresses with
 * ```ts
 * import type { NegotiatedExtension } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const clientWindow = (extensions: NegotiatedExtension[]) =>
 *   extensions.find((extension) => extension.name === "permessage-deflate")?.params.client_max_window_bits;
 * assertEquals(clientWindow([{ name: "permessage-deflate", params: { client_max_window_bits: 10 } }]), 10);
 * ```
 */
export interface NegotiatedExtension {
  /** The extension's registered name, e.g. `permessage-deflate`. */
  name: string;
  /**
   * Its parameters by their registered names, with the values in effect (see `Extension.params`);
   * empty for an extension that does not report them.
   */
  params: Readonly<Record<string, string | number | boolean>>;
}

/** Numbers every connection of this process: ids for logs and metrics. */
let lastId = 0;

/**
 * How a connection ended, and what waits on that: four fields of a connection that most of its
 * life hold nothing, in one object made when the first is set. A connection has 12 fields then,
 * not 15, which JavaScriptCore stores in 112 bytes instead of 160 (5,000 idle connections on Bun).
 */
interface Ending {
  closed: CloseResult | undefined;
  /** Made when someone waits for the close. */
  whenClosed: PromiseWithResolvers<CloseResult> | undefined;
  /** What every send, drain or ping made once the connection is closing settles with: one promise. */
  rejection: Promise<never> | undefined;
  /** Reading is over and the socket is being released: settles once it is. */
  finished: Promise<void> | undefined;
}

/**
 * An open WebSocket connection: `send`, `receive` (or `for await`), `ping`,
 * `close`. The same object on Deno and Bun, server and client side.
 *
 * Nothing the peer sent is lost to an ending that follows it: when a protocol
 * violation, the peer's close frame or the end of the stream comes behind
 * messages the application has not answered yet, those messages are still
 * delivered, and what the application sends until it next waits for a message
 * (`receive()`, iteration, an idle `forEach()` callback, `closed` or `close()`)
 * goes out before our close frame; the ending waits at most `closeTimeout`.
 *
 * Made by `Sock` and `connect()`; to drive a protocol core of your own over a transport, wrap the
 * transport in a {@linkcode Link}, drive the opening handshake with `Link.handshake()`, then pass
 * the open core and the link to this constructor.
 *
 * @category Connection
 *
 * @example An echo handler and a client
 * ```ts
 * import { connect, Sock } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const app = new Sock();
 * app.route("/echo", async (ws) => {
 *   for await (const message of ws) await ws.send(message);
 * });
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 * const ws = await connect(`ws://127.0.0.1:${port}/echo`);
 * await ws.send("hello");
 * assertEquals(await ws.receive({ timeout: 5000 }), "hello");
 * assertEquals((await ws.close(1000, "bye")).wasClean, true);
 * await app.close();
 * ```
 */
export class Connection<Data = unknown> implements AsyncIterable<Message> {
  #protocol: ServerProtocol | ClientProtocol;
  #link: Link;
  #inbox: Inbox<Connection>;
  #outbox: Outbox<Connection>;
  #keepalive: Keepalive<Connection>;
  #reader: Reader<Connection>;
  #settings: ConnectionSettings;
  /** Made when the connection closes or someone waits for that; read through the accessors below. */
  #ending: Ending | undefined;
  /** Set while `sendStream()` sends a message; resolves when it is done. */
  #streaming: Promise<void> | undefined;
  #hub: ServerHub | undefined;
  /**
   * Per-connection data, typed by the server's `Data` parameter (`new Sock<Data>()`): what the
   * `upgrade` hook or `Sock.upgrade()` attached, `undefined` when neither did.
   */
  data: Data = undefined as Data;
  /** A number for this connection, unique in this process: for logs and metrics. */
  readonly id: number = ++lastId;

  #end(): Ending {
    return this.#ending ??= {
      closed: undefined,
      whenClosed: undefined,
      rejection: undefined,
      finished: undefined,
    };
  }
  get #closed(): CloseResult | undefined {
    return this.#ending?.closed;
  }
  set #closed(closed: CloseResult) {
    this.#end().closed = closed;
  }
  get #whenClosed(): PromiseWithResolvers<CloseResult> | undefined {
    return this.#ending?.whenClosed;
  }
  set #whenClosed(waiting: PromiseWithResolvers<CloseResult>) {
    this.#end().whenClosed = waiting;
  }
  get #rejection(): Promise<never> | undefined {
    return this.#ending?.rejection;
  }
  set #rejection(rejection: Promise<never>) {
    this.#end().rejection = rejection;
  }
  get #finished(): Promise<void> | undefined {
    return this.#ending?.finished;
  }
  set #finished(finished: Promise<void>) {
    this.#end().finished = finished;
  }

  /**
   * Wraps an OPEN protocol and its link, and starts reading.
   *
   * @param protocol The core, already OPEN.
   * @param link The transport it talks over, past the opening handshake.
   * @param options Timeouts and limits.
   * @param pending Events the core produced before this object existed.
   * @param hub The server's topics, on the server side.
   */
  constructor(
    protocol: ServerProtocol | ClientProtocol,
    link: Link,
    options: ConnectionOptions = {},
    pending: ProtocolEvent[] = [],
    hub?: ServerHub,
  ) {
    this.#protocol = protocol;
    this.#link = link;
    this.#hub = hub;
    const settings = this.#settings = connectionSettings(options);
    const inbox = this.#inbox = new Inbox<Connection>(
      this,
      Connection.#inboxOwner,
      settings.receiveQueueSize,
    );
    const outbox = this.#outbox = new Outbox<Connection>(
      protocol,
      link.transport,
      this,
      Connection.#rejectOnceClosed,
    );
    const keepalive = this.#keepalive = new Keepalive<Connection>(this, Connection.#keepaliveOwner, settings);
    this.#reader = new Reader<Connection>(
      protocol,
      link,
      { inbox, outbox, keepalive },
      this,
      Connection.#readerOwner,
      settings,
    );
    this.#reader.start(pending);
  }

  /** Topics this connection is subscribed to. */
  get topics(): ReadonlySet<string> {
    return this.#hub?.topicsOf(this) ?? NO_TOPICS;
  }

  /** The agreed subprotocol; empty when none. */
  get subprotocol(): string {
    return this.#protocol.subprotocol;
  }

  /** The negotiated extensions, by name, comma-separated; empty when none. */
  get extensions(): string {
    return this.#protocol.extensions.map((extension) => extension.name).join(", ");
  }

  /**
   * The `Sec-WebSocket-Extensions` value that agreed the extensions, parameters included, as the
   * server sent it (what a browser's `WebSocket.extensions` gives); empty when none.
   */
  get extensionsHeader(): string {
    return this.#protocol.extensionsHeader;
  }

  /**
   * The extensions in effect, in negotiated order, each with what was agreed: for
   * permessage-deflate, both sides' window bits and context takeover, as the values in effect
   * (defaults included, and on a client its own limits where the server's answer left them out).
   *
   * @example The parameters a server asked for
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app = new Sock({ deflate: { serverNoContextTakeover: true, clientMaxWindowBits: 10 } });
   * app.route("/", (ws) => ws.forEach(() => {}));
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * const ws = await connect(`ws://127.0.0.1:${port}/`, { deflate: true });
   * assertEquals(ws.negotiatedExtensions, [{
   *   name: "permessage-deflate",
   *   params: {
   *     server_no_context_takeover: true,
   *     client_no_context_takeover: false,
   *     server_max_window_bits: 15,
   *     client_max_window_bits: 10,
   *   },
   * }]);
   * assertEquals(ws.extensionsHeader, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
   * await ws.close();
   * await app.close();
   * ```
   */
  get negotiatedExtensions(): NegotiatedExtension[] {
    return this.#protocol.extensions.map(({ name, params }) => ({ name, params: params ?? {} }));
  }

  /** On the server side, the request that opened this connection. */
  get request(): UpgradeRequest | undefined {
    return "request" in this.#protocol ? this.#protocol.request : undefined;
  }

  /** How the connection ended (close code and reason, the close frames both ways), once CLOSED. */
  get closeResult(): CloseResult | undefined {
    return this.#closed;
  }

  /**
   * Once closed, who began it: `"peer"` (its close frame came first), `"local"` (ours did, or we
   * failed the connection), or `"network"` (no close frame either way: the TCP connection ended).
   */
  get closedBy(): "peer" | "local" | "network" | undefined {
    const closed = this.#closed;
    if (!closed) return undefined;
    if (!closed.received && !closed.sent) return "network";
    return this.#protocol.closedByPeer ? "peer" : "local";
  }

  /** Messages and payload bytes each way so far (see `Protocol.stats`). */
  get stats(): ProtocolStats {
    return this.#protocol.stats;
  }

  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
  get readyState(): number {
    return this.#protocol.readyState;
  }

  /** The peer's address. */
  get remoteAddress(): Transport["remoteAddress"] {
    return this.#link.transport.remoteAddress;
  }

  /** Bytes queued for the socket and not yet taken by it. */
  get bufferedAmount(): number {
    return this.#outbox.bufferedAmount;
  }

  /**
   * Resolves with the final close information once the connection is CLOSED. Waiting for it
   * tells the connection that the application has answered what it read, as waiting for a
   * message does: an ending held back for its replies (see `receive()`) takes effect.
   */
  get closed(): Promise<CloseResult> {
    this.#reader.answered();
    return this.#whenClosedPromise();
  }

  #whenClosedPromise(): Promise<CloseResult> {
    if (!this.#whenClosed) {
      this.#whenClosed = Promise.withResolvers();
      if (this.#closed) this.#whenClosed.resolve(this.#closed);
    }
    return this.#whenClosed.promise;
  }

  /**
   * Sends a message. Resolves at once while `bufferedAmount` stays within
   * `sendHighWaterMark`, so a burst of sends goes out in one write; past it,
   * resolves only when the bytes are handed to the socket (backpressure).
   *
   * Never throws: once the connection is closing, or when more than
   * `maxBufferedAmount` bytes are still waiting (which fails it with 1008), the
   * promise rejects when the connection has closed. A promise nobody awaits never
   * becomes an unhandled rejection, so fire-and-forget sends are safe.
   *
   * Under permessage-deflate, a message over 16 KiB is compressed a slice per turn of the event
   * loop and goes out as a fragmented message, so other connections are not held up meanwhile;
   * the promise then resolves once its last frame is handed to the socket.
   *
   * @param data Text or bytes.
   * @param options `compress: false` sends it uncompressed under permessage-deflate.
   * @throws {ConnectionClosed} After the connection closed.
   */
  send(data: Message, options?: { compress?: boolean }): Promise<void> {
    if (this.#protocol.readyState !== ReadyState.Open) return Connection.#rejectOnceClosed(this);
    // A message sent during sendStream() would become one of its frames: it waits its turn.
    if (this.#streaming) return quiet(this.#streaming.then(() => this.send(data, options)));
    if (this.bufferedAmount > this.#settings.maxBufferedAmount) {
      this.#overflow();
      return Connection.#rejectOnceClosed(this);
    }
    if (data.length > DEFLATE_SLICE && options?.compress !== false && this.#protocol.extensions.length > 0) {
      return quiet(this.#sendStream(slices(data)));
    }
    this.#protocol.send(data, options);
    this.#outbox.schedule(); // A failed write shows up as the connection closing.
    if (this.bufferedAmount > this.#settings.sendHighWaterMark) return this.#outbox.afterWrite();
    return QUEUED;
  }

  /**
   * Resolves when everything sent so far has been handed to the socket.
   *
   * @returns When `bufferedAmount` has drained to 0 (unless more is sent meanwhile).
   */
  drain(): Promise<void> {
    return this.#outbox.afterWrite();
  }

  /**
   * Sends one message made of parts, as a fragmented message: one frame per
   * part, so a large message need not be held in memory whole. Every part
   * must have the type of the first (text or bytes); no parts send an empty
   * binary message. Messages sent meanwhile follow it, as do further streams.
   * A stream that fails after its first part leaves a message that cannot be
   * finished, so the connection is closed with 1011.
   *
   * @param parts The parts, in order.
   * @throws {TypeError} When a part's type differs from the first's.
   * @throws {ConnectionClosed} After the connection closed.
   */
  sendStream(parts: Iterable<Message> | AsyncIterable<Message>): Promise<void> {
    return quiet(this.#sendStream(parts));
  }

  async #sendStream(parts: Iterable<Message> | AsyncIterable<Message>): Promise<void> {
    while (this.#streaming) await this.#streaming;
    const done = Promise.withResolvers<void>();
    this.#streaming = done.promise;
    let text: boolean | undefined;
    const outbox = this.#outbox;
    try {
      for await (const part of parts) {
        if (this.#closed) throw new ConnectionClosed(this.#closed);
        text ??= typeof part === "string";
        if (text !== (typeof part === "string")) {
          throw new TypeError("every part must have the first part's type");
        }
        this.#protocol.send(part, { fin: false });
        await outbox.settled(outbox.flush());
      }
      if (this.#closed) throw new ConnectionClosed(this.#closed);
      this.#protocol.send(text ? "" : new Uint8Array(0));
      await outbox.settled(outbox.flush());
    } catch (error) {
      if (text !== undefined && !this.#closed) {
        this.close(CloseCode.InternalError, "internal error").catch(ignore);
      }
      throw error;
    } finally {
      this.#streaming = undefined;
      done.resolve();
    }
  }

  /**
   * Receives the next message (with `streamMessages`, its pieces joined).
   *
   * @param options `timeout` in ms for each piece, after which the promise rejects with a `TimeoutError`.
   * @returns The message, or `undefined` after a normal close.
   * @throws {ConnectionClosed} After an abnormal close.
   */
  receive(options: { timeout?: number } = {}): Promise<Message | undefined> {
    return this.#inbox.receive(options.timeout);
  }

  /**
   * Receives the next piece of a message, for messages too large to hold
   * whole: with the `streamMessages` option, pieces arrive as frames do, and
   * `final` marks a message's last one. Without it, every piece is a whole
   * message.
   *
   * @param options `timeout` in ms, after which the promise rejects with a `TimeoutError`.
   * @returns The piece, or `undefined` after a normal close.
   * @throws {ConnectionClosed} After an abnormal close.
   */
  receivePart(options: { timeout?: number } = {}): Promise<MessagePart | undefined> {
    return this.#inbox.receivePart(options.timeout);
  }

  /**
   * Calls `callback` with each message as it is read, until the connection
   * closes: the fastest way to consume messages, as no promise is made per
   * message. Messages already received come first. When the callback returns
   * a promise (other than the one `send()` returns when it did not wait),
   * the next message waits for it, as in `for await`; reading pauses while
   * messages wait, and while more than `sendHighWaterMark` bytes are unsent,
   * so replies sent from the callback push back on the peer. With
   * `streamMessages`, the callback gets pieces, and `final` marks each
   * message's last. When the callback throws (or its promise rejects), the
   * connection is closed with 1011 and the returned promise rejects with that
   * error, so a route handler returning it reports the error as a thrown one.
   * As with `for await` and `await ws.send()`, a callback returning a `send()`
   * made once the connection is closing rejects it with `ConnectionClosed`.
   *
   * Use it instead of `receive()` and iteration, not next to them.
   *
   * @example An echo route
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app = new Sock();
   * app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * const ws = await connect(`ws://127.0.0.1:${port}/echo`);
   * await ws.send("hello");
   * assertEquals(await ws.receive({ timeout: 5000 }), "hello");
   * await ws.close();
   * await app.close();
   * ```
   *
   * @param callback Called with each message (or piece) and whether it is the last piece.
   * @returns Resolves after a normal close, once every message has been passed on.
   * @throws {ConnectionClosed} After an abnormal close.
   * @throws {TypeError} When `forEach()` was already called.
   */
  forEach(callback: (data: Message, final: boolean) => unknown): Promise<void> {
    return this.#inbox.forEach(callback);
  }

  /**
   * Subscribes this (server) connection to a topic; `Sock.publish` reaches it.
   *
   * @param topic The topic name.
   * @throws {TypeError} On a client connection.
   */
  subscribe(topic: string): void {
    if (!this.#hub) throw new TypeError("only server connections can subscribe to topics");
    this.#hub.subscribe(this, topic);
  }

  /**
   * Unsubscribes from a topic.
   *
   * @param topic The topic name.
   */
  unsubscribe(topic: string): void {
    this.#hub?.unsubscribe(this, topic);
  }

  /** Iterates messages until a normal close; throws {@linkcode ConnectionClosed} after an abnormal one. */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return { next: () => this.#inbox.next() };
  }

  /**
   * Sends a ping and resolves with the round-trip time in ms when the pong arrives.
   *
   * @param data Up to 125 bytes; a unique default is generated.
   * @returns The round-trip time.
   */
  ping(data?: string): Promise<number> {
    if (this.#protocol.readyState !== ReadyState.Open) return Connection.#rejectOnceClosed(this);
    return this.#keepalive.ping(data ?? `${Date.now()}:${Math.random().toString(36).slice(2)}`);
  }

  /**
   * Closes: sends a close frame, waits for the peer's (up to the close
   * timeout), then closes the transport.
   *
   * @param code Close code; without one the close frame is empty and the peer sees 1005, as in browsers.
   * @param reason Close reason, up to 123 bytes; needs a code.
   * @returns The final close information.
   */
  close(code?: number, reason = ""): Promise<CloseResult> {
    return quiet(this.#close(code, reason));
  }

  async #close(code: number | undefined, reason: string): Promise<CloseResult> {
    // Closed with nothing left to write, the usual case once a handler returns: nothing to wait for.
    if (this.#closed && this.bufferedAmount === 0) {
      this.#link.close();
      return this.#closed;
    }
    // Closed by the close handshake, with the echo still being written (on Deno every write is):
    // the reader's ending (`#finish`) writes it within the close timeout and releases the socket,
    // so waiting for that takes no second timer and race (bench (e) on Deno: 140 -> 131 µs of server
    // CPU per handshake, medians of 5 alternating runs).
    if (this.#finished && this.#closed?.received) {
      await this.#finished;
      return this.#closed;
    }
    this.#reader.closing();
    if (!this.#closed) this.#protocol.close(code, reason);
    // The application is done: an ending held back for its replies takes effect.
    this.#reader.answered();
    // Our close frame, or the echo of the peer's, goes out first; then the peer's close is awaited.
    // The timeout also bounds the write: a peer that does not read holds it up forever.
    await settledWithin(
      this.#outbox.flush().catch(ignore).then(() => this.closed),
      this.#settings.closeTimeout,
    );
    if (!this.#closed) {
      this.#protocol.receiveEof();
      this.#reader.dispatch();
    }
    this.#link.close();
    return this.closed;
  }

  /** Drops the connection at once, without a close handshake; it is reported as 1006. */
  terminate(): void {
    this.#link.close();
  }

  /**
   * The peer does not read fast enough: drop the frames the socket has not taken yet (whole
   * frames, so the close frame still parses) and fail the connection with 1008. The close frame
   * goes out once the write in progress is done, if the peer reads within the close timeout;
   * either way the application learns the code we sent.
   */
  #overflow(): void {
    this.#outbox.drop();
    this.#fail("send buffer full");
  }

  /** Fails the connection with 1008 for `reason`: the application learns the code we sent. */
  #fail(reason: string): void {
    if (this.#closed) return;
    this.#protocol.fail(new ProtocolError(reason, CloseCode.PolicyViolation));
    this.#reader.dispatch();
    this.close().catch(ignore);
  }

  /**
   * Settles once the connection has closed, with `ConnectionClosed`: one promise per connection,
   * however many sends wait on it, so tens of thousands of sends to a closing connection cost
   * one rejection, not a storm of them.
   */
  static #rejectOnceClosed(ws: Connection): Promise<never> {
    return ws.#rejection ??= quiet(
      ws.#whenClosedPromise().then((closed) => Promise.reject(new ConnectionClosed(closed))),
    );
  }

  // What the parts need of their connection: one table each for every connection, not closures
  // per connection (the split into parts cost 0.9-1.3 KiB per idle connection with closures).
  static #inboxOwner: InboxOwner<Connection> = {
    waiting(ws) {
      ws.#reader.answered();
      if (ws.#outbox.scheduled) ws.#outbox.now();
    },
    answered: (ws) => ws.#reader.answered(),
    drained: (ws) => ws.#reader.drained(),
    consumerFailed: (ws) => void ws.close(CloseCode.InternalError, "internal error").catch(ignore),
    notice(ws, event) {
      const callback = event.type === "ping" ? ws.#settings.onPing : ws.#settings.onPong;
      // As when a forEach() callback throws or rejects: 1011, and never an unhandled rejection
      // (an async callback is a function returning void too, to the type checker).
      const failed = () => void ws.close(CloseCode.InternalError, "internal error").catch(ignore);
      try {
        const result = callback?.(event.data, ws) as unknown;
        if (result instanceof Promise) result.catch(failed);
      } catch {
        failed();
      }
    },
  };

  static #keepaliveOwner: KeepaliveOwner<Connection> = {
    isOpen: (ws) => ws.#protocol.readyState === ReadyState.Open,
    sendPing(ws, payload) {
      ws.#protocol.ping(payload);
      ws.#outbox.flush().catch(ignore); // A failed write closes the connection, which rejects the ping.
    },
    terminate(ws) {
      ws.#hub?.keepaliveTimeout?.(ws);
      ws.terminate();
    },
  };

  static #readerOwner: ReaderOwner<Connection> = {
    closed(ws, closed) {
      ws.#closed = closed;
      ws.#keepalive.close(closed);
      ws.#outbox.close();
      ws.#hub?.closed(ws);
      ws.#whenClosed?.resolve(closed);
      ws.#inbox.close(closed);
    },
    fail: (ws, reason) => ws.#fail(reason),
    idle: (ws) => void ws.close(CloseCode.GoingAway, "idle timeout").catch(ignore),
    finish: (ws) => void (ws.#finished ??= ws.#finish()),
  };

  /**
   * After the close: lets the close echo (or our close frame) go out, within the close timeout
   * (a peer that does not read holds the write up forever), then releases the socket, lingering
   * first after a failure (see `Link.linger`).
   */
  async #finish(): Promise<void> {
    // Written at once as a rule (the socket takes it): then no timer and no promise to wait on
    // (with the other timer-free steps of 02e50ba, an in-memory handshake and close on Bun went
    // 28 -> 21 µs).
    this.#outbox.now();
    if (this.#outbox.bufferedAmount > 0) {
      await settledWithin(this.#outbox.flush(), this.#settings.closeTimeout);
    }
    if (!this.#link.ended && !this.#closed?.received) await this.#link.linger(this.#settings.closeTimeout);
    this.#link.close();
  }
}

/** The topics of a connection that belongs to no server. */
const NO_TOPICS: ReadonlySet<string> = new Set();
