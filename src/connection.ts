/**
 * A WebSocket connection over a {@linkcode Transport}: the protocol core
 * driven by a read loop, with an async API for the application.
 *
 * @module
 */

import type { ClientProtocol } from "./core/client_protocol.ts";
import { CloseCode, type CloseInfo } from "./core/close.ts";
import { ProtocolError } from "./core/errors.ts";
import { type ClosedEvent, type ProtocolEvent, ReadyState } from "./core/protocol.ts";
import type { ServerProtocol } from "./core/server_protocol.ts";
import type { UpgradeRequest } from "./core/handshake.ts";
import type { Transport } from "./transport.ts";

/** A message: text as a string, binary as bytes. */
export type Message = string | Uint8Array;

/** A message, or with `streamMessages` a piece of one; `final` marks the last piece. */
export interface MessagePart {
  /** The text or bytes. */
  data: Message;
  /** Whether this completes the message. */
  final: boolean;
}

/**
 * Thrown by `receive()` and iteration once the connection closed abnormally,
 * and by `send()` after close. It carries the close frames both ways.
 *
 * @example A handler that fails reaches the client as 1011
 * ```ts
 * import { connect, ConnectionClosed, Sock } from "@sock/sock";
 * import { assertEquals, assertInstanceOf } from "@std/assert";
 *
 * const app = new Sock();
 * app.route("/", () => {
 *   throw new Error("oops");
 * });
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 * const ws = await connect(`ws://127.0.0.1:${port}/`);
 * const error = await ws.receive().catch((e) => e);
 * assertInstanceOf(error, ConnectionClosed);
 * assertEquals(error.code, 1011);
 * await app.close();
 * ```
 */
export class ConnectionClosed extends Error {
  /** The close code (1006 when the connection dropped without a close frame). */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** The peer's close frame, if one arrived. */
  readonly received: CloseInfo | undefined;
  /** Our close frame, if one was sent. */
  readonly sent: CloseInfo | undefined;

  /** Creates the error from the core's `closed` event. */
  constructor(closed: ClosedEvent) {
    super(`connection closed: ${closed.code}${closed.reason ? ` ${closed.reason}` : ""}`);
    this.name = "ConnectionClosed";
    this.code = closed.code;
    this.reason = closed.reason;
    this.received = closed.received;
    this.sent = closed.sent;
  }
}

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
  /** The connection closed: it leaves every topic and the server's list. */
  closed(ws: Connection): void;
}

/** What `send()` returns when the message was queued without waiting: one promise for all. */
export const QUEUED: Promise<void> = Promise.resolve();

const ignore = (): void => {};

/**
 * Marks a promise the public API hands out as handled, so that a call nobody awaits (a
 * fire-and-forget `send()` after the peer left, say) never becomes an unhandled rejection that
 * ends the process; a caller that awaits it still gets the rejection.
 */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}

/** A `forEach()` callback and the promise it returned. */
interface Consumer {
  callback: (data: Message, final: boolean) => unknown;
  /** Set while a promise the callback returned is pending: messages queue meanwhile. */
  busy: boolean;
  done: PromiseWithResolvers<void>;
}

/** The payload of keepalive pings. */
const KEEPALIVE_PING = "keepalive";

/** Decodes pong payloads back into the keys `ping()` sent. */
const pongKeys = new TextDecoder();

/** A failed connection's socket is closed once the peer sent nothing for this long (ms)… */
const LINGER_QUIET = 100;
/** …or after this long at most (ms). */
const LINGER_MAX = 2000;

/** Buffers queued for one write are joined into one while they total at most this many bytes. */
const JOIN_LIMIT = 256 * 1024;

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

/**
 * Resolves on the next turn of the event loop, after pending I/O callbacks. A timer, not
 * `setImmediate`: on Deno an immediate ran before other sockets' reads, and under 3 million
 * 1-byte frames an honest client's round trips had a p99 of 1,416 ms against 38 ms with a timer
 * (on Bun both stay under 20 ms).
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function join(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * The keepalive timer of every connection with the same ping interval: one timer, which
 * wakes four times per interval, instead of one per connection. A connection's first ping
 * goes out three quarters to one interval after it joined, and the next ones one interval
 * apart, so a dead peer is found within the interval plus the pong timeout.
 */
class Keepalive {
  static #groups = new Map<number, Keepalive>();
  readonly #interval: number;
  readonly #tick: (ws: Connection) => void;
  /** Each connection and when its tick is due next. */
  readonly #due = new Map<Connection, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(interval: number, tick: (ws: Connection) => void) {
    this.#interval = interval;
    this.#tick = tick;
  }

  /** Ticks `ws` every `interval` ms: `tick` is a shared function, the same for every connection. */
  static add(interval: number, ws: Connection, tick: (ws: Connection) => void): Keepalive {
    let group = Keepalive.#groups.get(interval);
    if (!group) Keepalive.#groups.set(interval, group = new Keepalive(interval, tick));
    group.#due.set(ws, performance.now() + interval * 3 / 4);
    group.#timer ??= setInterval(() => group.#wake(), interval / 4);
    return group;
  }

  delete(ws: Connection): void {
    if (!this.#due.delete(ws) || this.#due.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    Keepalive.#groups.delete(this.#interval);
  }

  #wake(): void {
    const now = performance.now();
    for (const [ws, due] of this.#due) {
      if (due > now) continue;
      // Due half a wake early, so the wake one interval from now fires it despite timer jitter.
      this.#due.set(ws, now + this.#interval * 7 / 8);
      this.#tick(ws);
    }
  }
}

const NORMAL = new Set<number>([CloseCode.Normal, CloseCode.GoingAway, CloseCode.NoStatusReceived]);

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
export class Connection implements AsyncIterable<Message> {
  #protocol: ServerProtocol | ClientProtocol;
  #transport: Transport;
  #closeTimeout: number;
  /** Received messages, or pieces of them with `streamMessages`. */
  #messages: MessagePart[] | undefined;
  #waiting: { resolve: (m: MessagePart | undefined) => void; reject: (e: unknown) => void }[] | undefined;
  /** Set by `forEach()`: messages go to it as they are read, not to `#messages`. */
  #consumer: Consumer | undefined;
  #closed: ClosedEvent | undefined;
  /** Made when someone waits for the close. */
  #whenClosed: PromiseWithResolvers<ClosedEvent> | undefined;
  /** A write is scheduled: later sends join it. */
  #writeScheduled = false;
  /** The scheduled write may go: the turn came, or the handler waits for input. */
  #writeReady = false;
  /** A turn callback is pending. */
  #turnPending = false;
  /** A write is in progress; the next waits for it. */
  #writeBusy = false;
  /** Settles when the scheduled write is done; made only when someone waits for it. */
  #written: PromiseWithResolvers<void> | undefined;
  /** `#written` as the application sees it (see `#afterWrite`). */
  #whenWritten: Promise<void> | undefined;
  #inFlight = 0;
  /** Pings awaiting their pong; made at the first ping. */
  #pings:
    | Map<string, { start: number; resolve: (rtt: number) => void; reject: (e: unknown) => void }>
    | undefined;
  /** What every send, drain or ping made once the connection is closing settles with: one promise. */
  #rejection: Promise<never> | undefined;
  /** The application has read (or iterated, or called `forEach()`): its replies are worth waiting for. */
  #reading = false;
  /** Bytes arrived since the last keepalive ping: the peer is alive even if its pong is late. */
  #heard = false;
  /** The transport reported the end of the stream. */
  #eof = false;
  /** Reading is over and the socket is being released. */
  #finishing = false;
  /** Bounds how long an ending waits for the application's replies (see `#hold`). */
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reading waits on this while the core holds an ending. */
  #holdWait: PromiseWithResolvers<void> | undefined;
  /** What the core left of a chunk to keep one read's work bounded: read on the next turn. */
  #rest: Uint8Array | undefined;
  #messageTimeout: number;
  /** Runs while a message is arriving (see `messageTimeout`). */
  #messageTimer: ReturnType<typeof setTimeout> | undefined;
  #queueSize: number;
  /** Set by `close()`: keep reading to find the peer's close frame, even with a full queue. */
  #closing = false;
  #resumeReading: (() => void) | undefined;
  #keepalive: Keepalive | undefined;
  #pongTimeout: number;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimeout: number;
  #highWaterMark: number;
  #maxBufferedAmount: number;
  /** Set while `sendStream()` sends a message; resolves when it is done. */
  #streaming: Promise<void> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #hub: TopicHub | undefined;
  #topics: Set<string> | undefined;
  /** Per-connection data, set by the server's `upgrade` hook. */
  data: unknown;

  /**
   * Wraps an OPEN protocol and its transport, and starts reading.
   *
   * @param protocol The core, already OPEN.
   * @param transport The byte stream it talks over.
   * @param options Timeouts.
   * @param pending Events the core produced before this object existed (frames that came with the handshake, unless it left them unread: see `ProtocolOptions.leaveUnread`).
   */
  constructor(
    protocol: ServerProtocol | ClientProtocol,
    transport: Transport,
    options: ConnectionOptions = {},
    pending: ProtocolEvent[] = [],
    hub?: TopicHub,
  ) {
    this.#protocol = protocol;
    this.#transport = transport;
    this.#closeTimeout = options.closeTimeout ?? 5000;
    this.#queueSize = options.receiveQueueSize ?? 16;
    this.#idleTimeout = options.idleTimeout ?? 0;
    this.#messageTimeout = options.messageTimeout ?? 120000;
    this.#highWaterMark = options.sendHighWaterMark ?? 1048576;
    this.#maxBufferedAmount = options.maxBufferedAmount ?? 16 * 1024 * 1024;
    this.#hub = hub;
    this.#pongTimeout = options.pongTimeout ?? 20000;
    const interval = options.pingInterval ?? 20000;
    if (interval > 0) this.#keepalive = Keepalive.add(interval, this, Connection.#keepaliveTick);
    this.#dispatch(pending);
    // Frames that came with the handshake are read as any read is: within the per-turn bounds.
    const unread = protocol.takeUnread();
    if (unread) this.#process(unread, false);
    else if (protocol.endingHeld) this.#hold();
    this.#scheduleWrite();
    this.#startReading();
  }

  /** Topics this connection is subscribed to (made when first asked for: most never subscribe). */
  get topics(): Set<string> {
    return this.#topics ??= new Set();
  }

  /** The agreed subprotocol; empty when none. */
  get protocol(): string {
    return this.#protocol.protocol;
  }

  /** The negotiated extensions, by name, comma-separated; empty when none. */
  get extensions(): string {
    return this.#protocol.extensions.map((extension) => extension.name).join(", ");
  }

  /** On the server side, the request that opened this connection. */
  get request(): UpgradeRequest | undefined {
    return "request" in this.#protocol ? this.#protocol.request : undefined;
  }

  /** The final close code and reason, once CLOSED. */
  get closeInfo(): ClosedEvent | undefined {
    return this.#closed;
  }

  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
  get readyState(): number {
    return this.#protocol.readyState;
  }

  /** The peer's address. */
  get remoteAddress(): Transport["remoteAddress"] {
    return this.#transport.remoteAddress;
  }

  /** Bytes queued for the socket and not yet taken by it. */
  get bufferedAmount(): number {
    return this.#protocol.bufferedAmount + this.#inFlight;
  }

  /**
   * Resolves with the final close information once the connection is CLOSED. Waiting for it
   * tells the connection that the application has answered what it read, as waiting for a
   * message does: an ending held back for its replies (see `receive()`) takes effect.
   */
  get closed(): Promise<ClosedEvent> {
    this.#answered();
    return this.#whenClosedPromise();
  }

  #whenClosedPromise(): Promise<ClosedEvent> {
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
    this.#scheduleWrite(); // A failed write shows up as the connection closing.
    if (this.bufferedAmount > this.#highWaterMark) return this.#afterWrite();
    return QUEUED;
  }

  /**
   * Resolves when everything sent so far has been handed to the socket.
   *
   * @returns When `bufferedAmount` has drained to 0 (unless more is sent meanwhile).
   */
  drain(): Promise<void> {
    return this.#afterWrite();
  }

  /**
   * Settles when the scheduled write is done: one promise for every caller that waits on that
   * write, not one each (500,000 tiny sends to a peer that does not read kept 199 MB of promises
   * on Deno, and now 5 MB).
   */
  #afterWrite(): Promise<void> {
    if (this.#whenWritten) return this.#whenWritten;
    const after = this.#whenWritten = this.#settled((this.#written ??= Promise.withResolvers()).promise);
    this.#flush(); // Its promise is `#written`'s, handled just above; a write done at once clears the cache.
    return after;
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
    try {
      for await (const part of parts) {
        if (this.#closed) throw new ConnectionClosed(this.#closed);
        text ??= typeof part === "string";
        if (text !== (typeof part === "string")) {
          throw new TypeError("every part must have the first part's type");
        }
        this.#protocol.send(part, { fin: false });
        await this.#settled(this.#flush());
      }
      if (this.#closed) throw new ConnectionClosed(this.#closed);
      this.#protocol.send(text ? "" : new Uint8Array(0));
      await this.#settled(this.#flush());
    } catch (error) {
      if (text !== undefined && !this.#closed) this.close(1011, "internal error").catch(() => {});
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
    // A whole message is waiting: no need to wait for it.
    if (this.#messages?.[0]?.final) return Promise.resolve(this.#take()!.data);
    return quiet(this.#receive(options.timeout));
  }

  #receive(timeout: number | undefined): Promise<Message | undefined> {
    return this.#next(timeout).then((part) =>
      part === undefined || part.final ? part?.data : this.#joinRest(part, timeout)
    );
  }

  /** The pieces of a streamed message from `first` on, joined. */
  async #joinRest(first: MessagePart, timeout: number | undefined): Promise<Message> {
    const pieces: Message[] = [];
    for (let part: MessagePart | undefined = first; part !== undefined; part = await this.#next(timeout)) {
      pieces.push(part.data);
      if (part.final) break;
    }
    if (typeof pieces[0] === "string") return pieces.join("");
    return join(pieces as Uint8Array[], pieces.reduce((n, p) => n + p.length, 0));
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
    return quiet(this.#next(options.timeout));
  }

  /** The next piece received, if one is waiting. */
  #take(): MessagePart | undefined {
    this.#reading = true;
    const message = this.#messages?.shift();
    if (message !== undefined && this.#messages!.length < this.#queueSize) this.#resumeReading?.();
    return message;
  }

  #next(timeout: number | undefined): Promise<MessagePart | undefined> {
    const message = this.#take();
    if (message !== undefined) return Promise.resolve(message);
    // Waiting for input, the handler has answered all it read: what it sent can go now,
    // and an ending held back for its replies follows them.
    this.#answered();
    if (this.#writeScheduled) this.#writeNow();
    if (this.#closed) return this.#ended();
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      (this.#waiting ??= []).push(waiter);
      if (timeout === undefined) return;
      const timer = setTimeout(() => {
        const at = this.#waiting!.indexOf(waiter);
        if (at < 0) return;
        this.#waiting!.splice(at, 1);
        reject(new DOMException(`no message within ${timeout} ms`, "TimeoutError"));
      }, timeout);
      waiter.resolve = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      waiter.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
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
    if (this.#consumer) return Promise.reject(new TypeError("forEach() was already called"));
    const consumer: Consumer = { callback, busy: false, done: Promise.withResolvers() };
    this.#consumer = consumer;
    this.#reading = true;
    this.#feed(consumer);
    return quiet(consumer.done.promise);
  }

  /** Passes queued messages to the consumer until one returns a promise; settles it after the close. */
  #feed(consumer: Consumer): void {
    while (!consumer.busy && this.#consumer === consumer) {
      const message = this.#take();
      if (message === undefined) break;
      this.#consume(consumer, message);
    }
    if (!consumer.busy && this.#consumer === consumer) this.#answered();
    if (this.#closed && !consumer.busy && !this.#messages?.length) {
      this.#ended().then(consumer.done.resolve, consumer.done.reject);
    }
  }

  #consume(consumer: Consumer, message: MessagePart): void {
    let pending: PromiseLike<unknown> | undefined;
    try {
      const result = consumer.callback(message.data, message.final) as
        | PromiseLike<unknown>
        | null
        | undefined;
      if (result != null && result !== QUEUED && typeof result.then === "function") pending = result;
    } catch (error) {
      return this.#consumerFailed(consumer, error);
    }
    if (pending === undefined) return;
    consumer.busy = true;
    Promise.resolve(pending).then(() => {
      consumer.busy = false;
      this.#feed(consumer);
    }, (error) => this.#consumerFailed(consumer, error));
  }

  #consumerFailed(consumer: Consumer, error: unknown): void {
    if (this.#consumer !== consumer) return;
    this.#consumer = undefined;
    consumer.done.reject(error);
    this.close(1011, "internal error").catch(() => {});
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
    return {
      next: () => {
        // A whole message is waiting: one promise, not two.
        if (this.#messages?.[0]?.final) return Promise.resolve({ done: false, value: this.#take()!.data });
        return quiet(
          this.#receive(undefined).then((value) =>
            value === undefined ? { done: true, value: undefined } : { done: false, value }
          ),
        );
      },
    };
  }

  /**
   * Sends a ping and resolves with the round-trip time in ms when the pong arrives.
   *
   * @param data Up to 125 bytes; a unique default is generated.
   * @returns The round-trip time.
   */
  ping(data?: string): Promise<number> {
    if (this.#protocol.readyState !== ReadyState.Open) return this.#rejectOnceClosed();
    const payload = data ?? `${Date.now()}:${Math.random().toString(36).slice(2)}`;
    return quiet(
      new Promise((resolve, reject) => {
        this.#protocol.ping(payload); // Throws only for a payload over 125 bytes: the caller's mistake.
        const pings = this.#pings ??= new Map();
        // A pong answers every ping with its payload: one sent earlier settles with this one.
        const earlier = pings.get(payload);
        pings.set(payload, {
          start: performance.now(),
          resolve: earlier ? (rtt: number) => (earlier.resolve(rtt), resolve(rtt)) : resolve,
          reject: earlier ? (error: unknown) => (earlier.reject(error), reject(error)) : reject,
        });
        this.#flush().catch(ignore); // A failed write closes the connection, which rejects the ping.
      }),
    );
  }

  /**
   * Closes: sends a close frame, waits for the peer's (up to the close
   * timeout), then closes the transport.
   *
   * @param code Close code; without one the close frame is empty and the peer sees 1005, as in browsers.
   * @param reason Close reason, up to 123 bytes; needs a code.
   * @returns The final close information.
   */
  close(code?: number, reason = ""): Promise<ClosedEvent> {
    return quiet(this.#close(code, reason));
  }

  async #close(code: number | undefined, reason: string): Promise<ClosedEvent> {
    // Closed with nothing left to write, the usual case once a handler returns: nothing to wait for.
    if (this.#closed && this.bufferedAmount === 0) {
      this.#transport.close();
      return this.#closed;
    }
    this.#closing = true;
    this.#resumeReading?.();
    if (!this.#closed) this.#protocol.close(code, reason);
    // The application is done: an ending held back for its replies takes effect.
    this.#answered();
    // Our close frame, or the echo of the peer's, goes out first; then the peer's close is awaited.
    // The timeout also bounds the write: a peer that does not read holds it up forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, this.#closeTimeout));
    const flushed = this.#flush().catch(() => {});
    await Promise.race([flushed.then(() => this.closed), timeout]);
    clearTimeout(timer);
    if (!this.#closed) {
      this.#protocol.receiveEof();
      this.#dispatch();
    }
    this.#transport.close();
    return this.closed;
  }

  /**
   * The peer does not read fast enough: drop the frames the socket has not taken yet (whole
   * frames, so the close frame still parses) and fail the connection with 1008. The close frame
   * goes out once the write in progress is done, if the peer reads within the close timeout;
   * either way the application learns the code we sent.
   */
  #overflow(): void {
    this.#protocol.dataToSend();
    this.#fail("send buffer full");
  }

  /** Fails the connection with 1008 for `reason`: the application learns the code we sent. */
  #fail(reason: string): void {
    if (this.#closed) return;
    this.#protocol.fail(new ProtocolError(reason, CloseCode.PolicyViolation));
    this.#dispatch();
    this.close().catch(ignore);
  }

  /** A write's outcome for the application: a failed write is the connection closing (1006). */
  #settled(written: Promise<void>): Promise<void> {
    return quiet(written.then(undefined, () => this.#rejectOnceClosed()));
  }

  /**
   * Settles once the connection has closed, with `ConnectionClosed`: one promise per connection,
   * however many sends wait on it, so tens of thousands of sends to a closing connection cost
   * one rejection, not a storm of them.
   */
  #rejectOnceClosed(): Promise<never> {
    return this.#rejection ??= quiet(
      this.#whenClosedPromise().then((closed) => Promise.reject(new ConnectionClosed(closed))),
    );
  }

  /** Drops the connection at once, without a close handshake; it is reported as 1006. */
  terminate(): void {
    this.#transport.close();
  }

  #armIdleTimer(): void {
    if (!(this.#idleTimeout > 0)) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.close(1001, "idle timeout").catch(() => {}), this.#idleTimeout);
  }

  /** A keepalive tick: a shared function rather than a closure per connection. */
  static #keepaliveTick(ws: Connection): void {
    // Nothing being written: large send buffers a past burst left can go (made again if needed).
    if (!ws.#writeBusy && !ws.#writeScheduled) ws.#protocol.shrinkBuffers();
    // One keepalive ping at a time: its pong clears the timer; without one, the peer is dropped.
    if (ws.#closed || ws.#pongTimer !== undefined) return;
    // Bytes arriving count as a sign of life too: a peer in the middle of sending a large frame
    // cannot answer a ping until it is done.
    ws.#heard = false;
    const timer = setTimeout(() => {
      ws.#pongTimer = undefined;
      // Alive but silent on pings: forget this one (nothing awaits it), the next tick sends another.
      ws.#pings?.delete(KEEPALIVE_PING);
      if (!ws.#heard && !ws.#closed) ws.terminate();
    }, ws.#pongTimeout);
    ws.#pongTimer = timer;
    // One payload for every keepalive ping: a new one replaces an old one whose pong never came.
    ws.ping(KEEPALIVE_PING).then(() => {
      if (ws.#pongTimer !== timer) return;
      clearTimeout(timer);
      ws.#pongTimer = undefined;
    }, ignore);
  }

  /** Reads through the transport's push mode when it has one, else with a read loop. */
  #startReading(): void {
    const transport = this.#transport;
    if (!transport.receive || !transport.pause || !transport.resume || this.#closed) {
      this.#readLoop();
      return;
    }
    transport.receive(this.#onData);
    if (!this.#closed) this.#readOn();
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#closed) {
        const wait = this.#mustWait();
        if (wait) await wait;
        if (this.#closed) break;
        this.#armIdleTimer();
        this.#process(await this.#transport.read());
      }
    } catch {
      this.#readFailed();
    }
    await this.#finish();
  }

  /** Push mode: a chunk the transport read, or `null` at the end of the stream. */
  #onData = (chunk: Uint8Array | null): void => {
    if (this.#closed) return;
    try {
      this.#process(chunk);
    } catch {
      this.#readFailed();
    }
    this.#readOn();
  };

  /** The transport failed mid-read: the stream ends there, as the core is told. */
  #readFailed(): void {
    this.#eof = true;
    this.#protocol.receiveEof();
    this.#answered(); // Nothing can be written either: nothing to hold an ending back for.
    this.#dispatch();
  }

  /** Push mode: pauses the transport while reading must wait, resumes it after, and finishes once closed. */
  #readOn(): void {
    if (this.#closed) return this.#stopPush();
    const wait = this.#mustWait();
    if (!wait) return this.#armIdleTimer();
    this.#transport.pause!();
    wait.then(() => {
      if (this.#closed) return this.#stopPush();
      this.#transport.resume!();
      this.#armIdleTimer();
    }).catch(() => this.terminate());
  }

  /** Push mode is over: what the peer still sends goes to read(), for #linger. */
  #stopPush(): void {
    this.#transport.receive!(undefined);
    this.#finish().catch(ignore);
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
    } else if ((this.#messages?.length ?? 0) >= this.#queueSize && !this.#closing) {
      wait = new Promise<void>((resolve) => this.#resumeReading = resolve);
    } else if (this.bufferedAmount > this.#highWaterMark) {
      wait = this.#flush(true).catch(() => {});
    } else if (this.#rest !== undefined) {
      // Other connections had their turn: the rest of the chunk now.
      wait = nextTurn().then(() => {
        const rest = this.#rest;
        this.#rest = undefined;
        if (rest && !this.#closed) this.#process(rest, false);
      });
    }
    // Settles once nothing holds reading back any more.
    return wait?.then(() => this.#mustWait());
  }

  /** Feeds what was read to the core, passes on what it produced, and sends the replies. */
  #process(chunk: Uint8Array | null, whole = true): void {
    this.#heard = true;
    const protocol = this.#protocol;
    if (chunk === null) {
      this.#eof = true;
      protocol.receiveEof();
    } else {
      // A bounded share of work per turn, and no more messages than the queue has room for
      // (unless a forEach() callback takes them as they come): the rest waits its turn.
      const room = this.#consumer?.busy === false || this.#closing
        ? TURN_MESSAGES
        : Math.max(1, Math.min(TURN_MESSAGES, this.#queueSize - (this.#messages?.length ?? 0)));
      const read = protocol.receiveData(chunk, { transfer: true, maxWork: TURN_WORK, maxMessages: room });
      if (read < chunk.length) this.#rest = chunk.subarray(read);
    }
    const events = protocol.events() as ProtocolEvent[];
    this.#dispatch(events);
    // Read whole, and no message is a view of the chunk: the transport may read into it again.
    if (
      whole && chunk && this.#rest === undefined && this.#transport.release &&
      !events.some((e) => e.type === "binary" && e.data.buffer === chunk.buffer)
    ) {
      this.#transport.release(chunk);
    }
    this.#watchMessage();
    // What the handler sends in reply goes out with what the core queued: now, when a
    // forEach() callback has answered every message (and then an ending held for its replies),
    // else once the handler waits for input or the turn ends. The next read need not wait.
    if (this.#consumer?.busy === false) {
      this.#answered();
      this.#writeScheduled = true;
      this.#writeNow();
    } else {
      this.#scheduleWrite();
      if (protocol.endingHeld) this.#hold();
    }
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
      if (!this.#reading) return this.#answered();
      this.#holdTimer = setTimeout(() => this.#answered(), this.#closeTimeout);
    }, this.#reading ? this.#closeTimeout : 0);
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
    this.#writeScheduled = true;
    this.#writeNow();
    this.#holdWait?.resolve();
    this.#holdWait = undefined;
  }

  /**
   * After the close: lets the close echo (or our close frame) go out, within the close timeout
   * (a peer that does not read holds the write up forever), then releases the socket.
   */
  async #finish(): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#flush().catch(ignore),
      new Promise<void>((resolve) => timer = setTimeout(resolve, this.#closeTimeout)),
    ]);
    clearTimeout(timer);
    if (!this.#eof && !this.#closed?.received) await this.#linger();
    this.#transport.close();
  }

  /**
   * After failing the connection, reads and discards what the peer still sends (RFC 6455 §7.1.7:
   * nothing more is processed) until it closes or pauses, for at most `closeTimeout` (2 s at most):
   * closing with unread bytes resets the connection (RST), and a peer whose writes then fail may
   * never read the close frame that says why.
   */
  async #linger(): Promise<void> {
    const end = performance.now() + Math.min(this.#closeTimeout, LINGER_MAX);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      for (let left = end - performance.now(); left > 0; left = end - performance.now()) {
        const pause = new Promise<null>((resolve) =>
          timer = setTimeout(resolve, Math.min(LINGER_QUIET, left), null)
        );
        const chunk = await Promise.race([this.#transport.read(), pause]);
        clearTimeout(timer);
        if (chunk === null) break;
      }
    } catch {
      // The transport failed: nothing left to wait for.
    }
    clearTimeout(timer);
  }

  #dispatch(events = this.#protocol.events() as ProtocolEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case "text":
        case "binary":
          this.#deliver(event); // Has `data` and `final`: a MessagePart as it is.
          break;
        case "pong": {
          const key = pongKeys.decode(event.data);
          const ping = this.#pings?.get(key);
          if (ping) {
            this.#pings!.delete(key);
            ping.resolve(performance.now() - ping.start);
          }
          break;
        }
        case "closed": {
          this.#closed = event;
          this.#keepalive?.delete(this);
          clearTimeout(this.#pongTimer);
          clearTimeout(this.#idleTimer);
          clearTimeout(this.#holdTimer);
          clearTimeout(this.#messageTimer);
          // Every waiter settles: pings whose pong can no longer come reject.
          if (this.#pings?.size) {
            const error = new ConnectionClosed(event);
            for (const ping of this.#pings.values()) ping.reject(error);
            this.#pings.clear();
          }
          this.#hub?.closed(this);
          this.#whenClosed?.resolve(event);
          for (const waiter of this.#waiting?.splice(0) ?? []) {
            this.#ended().then(waiter.resolve, waiter.reject);
          }
          if (this.#consumer) this.#feed(this.#consumer);
          break;
        }
      }
    }
  }

  #deliver(message: MessagePart): void {
    const consumer = this.#consumer;
    if (consumer !== undefined && !consumer.busy) return this.#consume(consumer, message);
    const waiter = this.#waiting?.shift();
    if (waiter) waiter.resolve(message);
    else (this.#messages ??= []).push(message);
  }

  #ended(): Promise<undefined> {
    const closed = this.#closed!;
    return NORMAL.has(closed.code) && closed.wasClean
      ? Promise.resolve(undefined)
      : Promise.reject(new ConnectionClosed(closed));
  }

  /**
   * Writes whatever the core queued once the write in progress is done and
   * the handler has answered what it read (it waits for the next message, or
   * the next turn of the event loop came), so everything sent meanwhile goes
   * out in one write.
   */
  #scheduleWrite(): void {
    if (this.#writeScheduled) return;
    this.#writeScheduled = true;
    this.#writeReady = false;
    if (this.#turnPending) return;
    this.#turnPending = true;
    if (Connection.#turnQueue.push(this) > 1) return;
    // Once the microtasks queued so far have run: one timer for every connection in the turn.
    if (typeof setImmediate === "function") setImmediate(Connection.#runTurn);
    else setTimeout(Connection.#runTurn, 0);
  }

  /** Connections whose scheduled write waits for the next turn. */
  static #turnQueue: Connection[] = [];

  static #runTurn = (): void => {
    const queue = Connection.#turnQueue;
    Connection.#turnQueue = [];
    for (const ws of queue) {
      ws.#turnPending = false;
      if (ws.#writeScheduled) ws.#writeNow();
    }
  };

  #writeNow(): void {
    this.#writeReady = true;
    if (this.#writeBusy) return;
    this.#writeScheduled = false;
    const written = this.#written;
    this.#written = undefined;
    this.#whenWritten = undefined;
    // One write at a time: the previous one is done, so its buffers can be filled again.
    let chunks = this.#protocol.dataToSend({ reuse: true });
    let size = 0;
    for (const chunk of chunks) size += chunk.length;
    if (size === 0) return written?.resolve();
    // Headers queued apart from large payloads: a copy costs less than a system call per buffer.
    if (chunks.length > 1 && size <= JOIN_LIMIT) chunks = [join(chunks, size)];
    this.#inFlight += size;
    this.#writeBusy = true;
    let pending: Promise<void> | void;
    try {
      pending = this.#transport.write(chunks);
    } catch (error) {
      pending = Promise.reject(error);
    }
    if (!pending) {
      // All taken at once: no promise to wait for.
      this.#writeDone(size);
      written?.resolve();
      return;
    }
    pending.then(() => {
      this.#writeDone(size);
      written?.resolve();
    }, (error) => {
      // The socket broke: end the connection, so the read loop reports it.
      this.#transport.close();
      this.#writeDone(size);
      written?.reject(error);
    });
  }

  #writeDone(size: number): void {
    this.#inFlight -= size;
    this.#writeBusy = false;
    if (this.#writeScheduled && this.#writeReady) this.#writeNow();
  }

  /**
   * Resolves when the bytes queued before the call are handed to the socket. The write starts
   * now, as the caller waits for it, or with `lazy` when the handler has answered what it read.
   */
  #flush(lazy = false): Promise<void> {
    this.#scheduleWrite();
    const written = (this.#written ??= Promise.withResolvers<void>()).promise;
    if (!lazy) this.#writeNow();
    return written;
  }
}
