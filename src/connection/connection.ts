/**
 * A WebSocket connection over a transport: the protocol core, fed by the transport's sink within
 * per-turn bounds, with an async API for the application. It composes an {@linkcode Inbox}
 * (receiving), an {@linkcode Outbox} (sending) and {@linkcode Keepalive} (pings).
 *
 * @module
 */

import type { ClientProtocol } from "../core/client_protocol.ts";
import { CloseCode } from "../core/close.ts";
import { ProtocolError } from "../core/errors.ts";
import { type CloseResult, type ProtocolEvent, type ReceiveOptions, ReadyState } from "../core/protocol.ts";
import type { ServerProtocol } from "../core/server_protocol.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import type { Transport } from "../transport.ts";
import { nextTurn } from "../timers.ts";
import { ConnectionClosed, ignore, quiet } from "./closed.ts";
import { Inbox, type InboxOwner, type Message, type MessagePart } from "./inbox.ts";
import { Keepalive, type KeepaliveOwner } from "./keepalive.ts";
import type { Link, Reader } from "./link.ts";
import { Outbox, QUEUED } from "./outbox.ts";

/** Options of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /** How long `close()` waits for the peer's close frame, in ms. Default 5000. */
  closeTimeout?: number;
  /**
   * Send a keepalive ping this often, in ms; 0 disables it. Default 20000. The first goes out
   * between three quarters of an interval and one interval after the open.
   */
  pingInterval?: number;
  /** Drop the connection (reported as 1006) when a keepalive pong takes longer, in ms. Default 20000. */
  pongTimeout?: number;
  /** Messages received but not yet consumed before reading pauses (TCP pushes back). Default 16. */
  receiveQueueSize?: number;
  /** Close with 1001 when nothing arrives from the peer for this long, in ms; 0 disables it. Default 0. */
  idleTimeout?: number;
  /**
   * Fail the connection with 1008 when a message that started arriving is not complete this long
   * after, in ms, so a peer cannot hold a partial message (up to `maxMessageSize`) open for ever;
   * 0 disables it. Default 120000: a 16 MiB message at 140 KB/s.
   */
  messageTimeout?: number;
  /** Bytes `bufferedAmount` may hold before `send()` waits for the socket. Default 1 MiB. */
  sendHighWaterMark?: number;
  /**
   * Bytes `bufferedAmount` may hold when `send()` is called. Past it the peer is not
   * reading fast enough: what is still queued is dropped and the connection is closed
   * with 1008 (`"send buffer full"`). A single message of any size is always taken;
   * `Infinity` disables the limit. Default 16 MiB.
   */
  maxBufferedAmount?: number;
}

/** The server a connection belongs to: where it subscribes to topics (see `Sock.publish`). */
export interface TopicHub {
  /** Adds the connection to a topic. */
  subscribe(ws: Connection, topic: string): void;
  /** Removes the connection from a topic. */
  unsubscribe(ws: Connection, topic: string): void;
  /** The topics the connection is subscribed to. */
  topicsOf(ws: Connection): ReadonlySet<string>;
  /** The connection closed: it leaves every topic and the server's list. */
  closed(ws: Connection): void;
}

/**
 * The work one connection's read may do before others get their turn (`ReceiveOptions.maxWork`):
 * about 16,000 tiny frames, or 1 MiB unmasked or inflated (2-3 ms). The rest of the chunk waits
 * for the next turn of the event loop.
 */
const TURN_WORK = 1 << 20;
/**
 * The messages one connection's read may deliver before others get their turn: each may cost the
 * application a reply, so they count apart from the core's work. A forEach echo flooded with 3
 * million 1-byte messages, on Deno: 16,000 a turn (what `TURN_WORK` alone allows) held the event
 * loop up to 60 ms; 4,096, 30 ms at 790k messages/s; 2,048, 20 ms at 600k/s; 1,024, 14 ms at
 * 357k/s. Reads of pipelined small messages (bench (b): 16 a read) are never cut.
 */
const TURN_MESSAGES = 2048;

/**
 * Under permessage-deflate, a message longer than this is compressed in slices of this size, as
 * a fragmented message, so compressing it never holds the event loop for long: 16 KiB take about
 * 1 ms for English-like text and 1.6 ms for the compressor's worst input.
 */
const DEFLATE_SLICE = 16 * 1024;
/**
 * Slices are compressed back to back for this long (ms), then the others get a turn. A turn per
 * slice made a 64 MiB echo take 20 s on Deno instead of about 2, as a timer costs 1-4 ms there.
 */
const DEFLATE_TURN_MS = 4;

/** `data` in slices of `DEFLATE_SLICE` (text cut between characters), yielding every `DEFLATE_TURN_MS`. */
async function* slices(data: Message): AsyncGenerator<Message> {
  let turn = performance.now();
  for (let at = 0; at < data.length;) {
    let end = Math.min(data.length, at + DEFLATE_SLICE);
    if (typeof data === "string") {
      const unit = data.charCodeAt(end - 1);
      if (unit >= 0xd800 && unit <= 0xdbff) end++; // Not between the halves of a surrogate pair.
      yield data.slice(at, end);
    } else {
      yield data.subarray(at, end);
    }
    at = end;
    if (at < data.length && performance.now() - turn >= DEFLATE_TURN_MS) {
      await nextTurn();
      turn = performance.now();
    }
  }
}
export class Connection implements AsyncIterable<Message> {
  #protocol: ServerProtocol | ClientProtocol;
  #link: Link;
  #inbox: Inbox;
  #outbox: Outbox;
  #keepalive: Keepalive;
  /** The options of every read: the transport's hints, and this connection's bounds. */
  #receiveOptions: ReceiveOptions;
  #closeTimeout: number;
  #closed: CloseResult | undefined;
  /** Made when someone waits for the close. */
  #whenClosed: PromiseWithResolvers<CloseResult> | undefined;
  /** What every send, drain or ping made once the connection is closing settles with: one promise. */
  #rejection: Promise<never> | undefined;
  /** Reading is over and the socket is being released. */
  #finishing = false;
  /** Bounds how long an ending waits for the application's replies (see `#hold`). */
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reading waits on this while the core holds an ending. */
  #holdWait: PromiseWithResolvers<void> | undefined;
  /** Reading waits on this while the receive queue is full. */
  #roomWait: PromiseWithResolvers<void> | undefined;
  /** What the core left of a chunk to keep one read's work bounded: read on the next turn. */
  #rest: Uint8Array | undefined;
  #messageTimeout: number;
  /** Runs while a message is arriving (see `messageTimeout`). */
  #messageTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by `close()`: keep reading to find the peer's close frame, even with a full queue. */
  #closing = false;
  #idleTimeout: number;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #highWaterMark: number;
  #maxBufferedAmount: number;
  /** Set while `sendStream()` sends a message; resolves when it is done. */
  #streaming: Promise<void> | undefined;
  #hub: TopicHub | undefined;
  /** Per-connection data, set by the server's `upgrade` hook. */
  data: unknown;

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
    hub?: TopicHub,
  ) {
    this.#protocol = protocol;
    this.#link = link;
    this.#closeTimeout = options.closeTimeout ?? 5000;
    this.#idleTimeout = options.idleTimeout ?? 0;
    this.#messageTimeout = options.messageTimeout ?? 120000;
    this.#highWaterMark = options.sendHighWaterMark ?? 1048576;
    this.#maxBufferedAmount = options.maxBufferedAmount ?? 16 * 1024 * 1024;
    this.#hub = hub;
    const { hints } = link.transport;
    this.#receiveOptions = {
      transfer: true,
      maxWork: TURN_WORK,
      maxMessages: TURN_MESSAGES,
      copySmallMessages: hints.copySmallMessages,
      scriptedTextDecoding: hints.scriptedTextDecoding,
    };
    this.#inbox = new Inbox(this.#inboxOwner, options.receiveQueueSize ?? 16);
    this.#outbox = new Outbox(protocol, link.transport, this.#rejectOnceClosed);
    this.#keepalive = new Keepalive(this.#keepaliveOwner, options.pingInterval ?? 20000, options.pongTimeout ?? 20000);
    this.#dispatch(pending);
    // Frames that came with the handshake are read as any read is: within the per-turn bounds.
    const unread = protocol.takeUnread();
    if (unread) this.#process(unread);
    else if (protocol.endingHeld) this.#hold();
    this.#outbox.schedule();
    if (this.#closed) return void this.#finish();
    link.open(this.#reader);
    this.#readOn();
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

  /** On the server side, the request that opened this connection. */
  get request(): UpgradeRequest | undefined {
    return "request" in this.#protocol ? this.#protocol.request : undefined;
  }

  /** How the connection ended (close code and reason, the close frames both ways), once CLOSED. */
  get closeResult(): CloseResult | undefined {
    return this.#closed;
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
    this.#answered();
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
    if (this.#protocol.readyState !== ReadyState.Open) return this.#rejectOnceClosed();
    // A message sent during sendStream() would become one of its frames: it waits its turn.
    if (this.#streaming) return quiet(this.#streaming.then(() => this.send(data, options)));
    if (this.bufferedAmount > this.#maxBufferedAmount) {
      this.#overflow();
      return this.#rejectOnceClosed();
    }
    if (data.length > DEFLATE_SLICE && options?.compress !== false && this.#protocol.extensions.length > 0) {
      return quiet(this.#sendStream(slices(data)));
    }
    this.#protocol.send(data, options);
    this.#outbox.schedule(); // A failed write shows up as the connection closing.
    if (this.bufferedAmount > this.#highWaterMark) return this.#outbox.afterWrite();
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
      if (text !== undefined && !this.#closed) this.close(CloseCode.InternalError, "internal error").catch(ignore);
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
    if (this.#protocol.readyState !== ReadyState.Open) return this.#rejectOnceClosed();
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
    this.#closing = true;
    this.#roomWait?.resolve();
    if (!this.#closed) this.#protocol.close(code, reason);
    // The application is done: an ending held back for its replies takes effect.
    this.#answered();
    // Our close frame, or the echo of the peer's, goes out first; then the peer's close is awaited.
    // The timeout also bounds the write: a peer that does not read holds it up forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, this.#closeTimeout));
    const flushed = this.#outbox.flush().catch(ignore);
    await Promise.race([flushed.then(() => this.closed), timeout]);
    clearTimeout(timer);
    if (!this.#closed) {
      this.#protocol.receiveEof();
      this.#dispatch();
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
    this.#dispatch();
    this.close().catch(ignore);
  }

  /**
   * Settles once the connection has closed, with `ConnectionClosed`: one promise per connection,
   * however many sends wait on it, so tens of thousands of sends to a closing connection cost
   * one rejection, not a storm of them.
   */
  #rejectOnceClosed = (): Promise<never> => {
    return this.#rejection ??= quiet(
      this.#whenClosedPromise().then((closed) => Promise.reject(new ConnectionClosed(closed))),
    );
  };

  #inboxOwner: InboxOwner = {
    waiting: (): void => {
      this.#answered();
      if (this.#outbox.scheduled) this.#outbox.now();
    },
    answered: (): void => this.#answered(),
    drained: (): void => this.#roomWait?.resolve(),
    consumerFailed: (): void => void this.close(CloseCode.InternalError, "internal error").catch(ignore),
  };

  #keepaliveOwner: KeepaliveOwner = {
    isOpen: () => this.#protocol.readyState === ReadyState.Open,
    sendPing: (payload: string): void => {
      this.#protocol.ping(payload);
      this.#outbox.flush().catch(ignore); // A failed write closes the connection, which rejects the ping.
    },
    terminate: (): void => this.terminate(),
  };

  /** The link's reader: the bytes of the open connection. */
  #reader: Reader = {
    data: (chunk) => {
      if (this.#closed) return false;
      let kept = false;
      try {
        kept = this.#process(chunk);
      } catch {
        this.#readFailed();
      }
      this.#readOn();
      return kept;
    },
    end: () => {
      if (this.#closed) return;
      try {
        this.#process(null);
      } catch {
        this.#readFailed();
      }
      this.#readOn();
    },
  };

  #armIdleTimer(): void {
    if (!(this.#idleTimeout > 0)) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(
      () => this.close(CloseCode.GoingAway, "idle timeout").catch(ignore),
      this.#idleTimeout,
    );
  }

  /** The transport failed mid-read: the stream ends there, as the core is told. */
  #readFailed(): void {
    this.#protocol.receiveEof();
    this.#answered(); // Nothing can be written either: nothing to hold an ending back for.
    this.#dispatch();
  }

  /** Pauses the transport while reading must wait, resumes it after, and finishes once closed. */
  #readOn(): void {
    if (this.#closed) return void this.#finish();
    const wait = this.#mustWait();
    if (!wait) return this.#armIdleTimer();
    this.#link.pause();
    wait.then(() => {
      if (this.#closed) return void this.#finish();
      this.#link.resume();
      this.#armIdleTimer();
    }).catch(() => this.terminate());
  }

  /**
   * What reading must wait for, `undefined` for nothing: room in a full receive queue, so a slow
   * consumer pushes back on TCP, and the socket taking replies the peer does not read (pongs to a
   * ping flood, say).
   */
  #mustWait(): Promise<void> | undefined {
    if (this.#closed) return undefined;
    let wait: Promise<void> | undefined;
    if (this.#protocol.endingHeld) {
      wait = (this.#holdWait ??= Promise.withResolvers()).promise;
    } else if (this.#inbox.full && !this.#closing) {
      wait = (this.#roomWait ??= Promise.withResolvers()).promise.then(() => {
        this.#roomWait = undefined;
      });
    } else if (this.bufferedAmount > this.#highWaterMark) {
      wait = this.#outbox.flush(true).catch(ignore);
    } else if (this.#rest !== undefined) {
      // Other connections had their turn: the rest of the chunk now.
      wait = nextTurn().then(() => {
        const rest = this.#rest;
        this.#rest = undefined;
        if (rest && !this.#closed) this.#process(rest);
      });
    }
    // Settles once nothing holds reading back any more.
    return wait?.then(() => this.#mustWait());
  }

  /**
   * Feeds what was read to the core, passes on what it produced, and sends the replies.
   *
   * @returns Whether the chunk (or a view of it) is kept: a message delivered in place, or the rest
   *   of the chunk left for the next turn.
   */
  #process(chunk: Uint8Array | null): boolean {
    this.#keepalive.heard();
    const protocol = this.#protocol;
    let kept = false;
    if (chunk === null) {
      protocol.receiveEof();
    } else {
      // A bounded share of work per turn, and no more messages than the queue has room for
      // (unless a forEach() callback takes them as they come): the rest waits its turn.
      const options = this.#receiveOptions;
      options.maxMessages = this.#closing ? TURN_MESSAGES : this.#inbox.room(TURN_MESSAGES);
      const { read, kept: inPlace } = protocol.receiveData(chunk, options);
      kept = inPlace;
      if (read < chunk.length) {
        this.#rest = chunk.subarray(read);
        kept = true;
      }
    }
    this.#dispatch();
    this.#watchMessage();
    // What the handler sends in reply goes out with what the core queued: now, when a
    // forEach() callback has answered every message (and then an ending held for its replies),
    // else once the handler waits for input or the turn ends. The next read need not wait.
    if (this.#inbox.consuming) {
      this.#answered();
      this.#outbox.now();
    } else {
      this.#outbox.schedule();
      if (protocol.endingHeld) this.#hold();
    }
    return kept;
  }

  /** A message that started arriving must be complete within `messageTimeout`. */
  #watchMessage(): void {
    if (!this.#protocol.receivingMessage) {
      if (this.#messageTimer !== undefined) {
        clearTimeout(this.#messageTimer);
        this.#messageTimer = undefined;
      }
      return;
    }
    if (this.#messageTimer !== undefined || !(this.#messageTimeout > 0) || this.#closed) return;
    this.#messageTimer = setTimeout(
      () => this.#fail(`message not complete within ${this.#messageTimeout} ms`),
      this.#messageTimeout,
    );
  }

  /**
   * The core holds back an ending (a violation, the peer's close frame, EOF) that follows
   * messages the application has not answered: it takes effect when the application next waits
   * for a message (`#answered`), or after the close timeout if it does not (RFC 6455 §5.5.1
   * allows finishing the current message before answering a close).
   */
  #hold(): void {
    if (this.#holdTimer !== undefined) return;
    // Not reading yet: a handler about to start reads within this turn; one that never reads
    // gets no wait.
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined;
      if (!this.#inbox.reading) return this.#answered();
      this.#holdTimer = setTimeout(() => this.#answered(), this.#closeTimeout);
    }, this.#inbox.reading ? this.#closeTimeout : 0);
  }

  /** The application waits for input, having answered all it read: a held ending takes effect. */
  #answered(): void {
    const protocol = this.#protocol;
    if (!protocol.endingHeld) return protocol.answered();
    protocol.answered();
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    this.#dispatch();
    // The replies and then the close frame, in one write when possible.
    this.#outbox.now();
    this.#holdWait?.resolve();
    this.#holdWait = undefined;
  }

  /**
   * After the close: lets the close echo (or our close frame) go out, within the close timeout
   * (a peer that does not read holds the write up forever), then releases the socket, lingering
   * first after a failure (see `Link.linger`).
   */
  async #finish(): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#outbox.flush().catch(ignore),
      new Promise<void>((resolve) => timer = setTimeout(resolve, this.#closeTimeout)),
    ]);
    clearTimeout(timer);
    if (!this.#link.ended && !this.#closed?.received) await this.#link.linger(this.#closeTimeout);
    this.#link.close();
  }

  #dispatch(events = this.#protocol.events() as ProtocolEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case "text":
        case "binary":
          this.#inbox.push(event); // Has `data` and `final`: a MessagePart as it is.
          break;
        case "pong":
          this.#keepalive.pong(event.data);
          break;
        case "closed": {
          this.#closed = event;
          clearTimeout(this.#idleTimer);
          clearTimeout(this.#holdTimer);
          clearTimeout(this.#messageTimer);
          this.#keepalive.close(event);
          this.#outbox.close();
          this.#hub?.closed(this);
          this.#whenClosed?.resolve(event);
          this.#inbox.close(event);
          break;
        }
      }
    }
  }
}

/** The topics of a connection that belongs to no server. */
const NO_TOPICS: ReadonlySet<string> = new Set();
