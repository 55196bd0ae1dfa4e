/**
 * The reading side of a connection: the bytes of the open connection go to the protocol core
 * within per-turn bounds, and what it makes of them goes on (messages to the inbox, pongs to
 * keepalive); reading pauses while the inbox is full, the peer does not read our replies, or an
 * ending waits for the application's replies.
 *
 * @module
 */

import type { ClientProtocol } from "../core/client_protocol.ts";
import type { CloseResult, ProtocolEvent, ReceiveOptions } from "../core/protocol.ts";
import type { ServerProtocol } from "../core/server_protocol.ts";
import { nextTurn, startTimer } from "../timers.ts";
import { ignore } from "./closed.ts";
import type { Inbox } from "./inbox.ts";
import type { Keepalive } from "./keepalive.ts";
import type { Link } from "./link.ts";
import type { RuntimeHints, TransportSink } from "../transport.ts";
import type { ConnectionSettings } from "./options.ts";
import type { Outbox } from "./outbox.ts";

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
 * The options of every read over transports with these hints: the hints, and the per-turn bounds
 * (`maxMessages` is set before each call, which the core reads then and does not keep). One object
 * for every connection over the same adapter, not one each.
 */
function receiveOptions(hints: RuntimeHints): ReceiveOptions {
  let options = optionsByHints.get(hints);
  if (!options) {
    options = { ...hints, transfer: true, maxWork: TURN_WORK, maxMessages: TURN_MESSAGES };
    optionsByHints.set(hints, options);
  }
  return options;
}

const optionsByHints = new WeakMap<RuntimeHints, ReceiveOptions>();

/** What the reader needs of its connection: one table of functions for every connection. */
export interface ReaderOwner<C> {
  /** The core closed the connection. */
  closed(connection: C, closed: CloseResult): void;
  /** Fails the connection with 1008 for `reason`. */
  fail(connection: C, reason: string): void;
  /** Nothing arrived for `idleTimeout`: closes with 1001. */
  idle(connection: C): void;
  /** Reading is over and the connection closed: releases the socket. */
  finish(connection: C): void;
}

/** Where reading is. */
const enum Phase {
  Reading,
  /** `closing()` was called: keep reading to find the peer's close frame, even with a full queue. */
  Closing,
  Closed,
}

/**
 * What holds reading back, or times it: five fields most connections never set, in one object made
 * when the first is. A reader has 12 fields then, not 17, which JavaScriptCore stores in 112 bytes
 * instead of 160 (5,000 idle connections on Bun).
 */
interface Waits {
  /** Bounds how long an ending waits for the application's replies (see `#hold`). */
  holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reading waits on this while the core holds an ending. */
  holdWait: PromiseWithResolvers<void> | undefined;
  /** Reading waits on this while the receive queue is full. */
  roomWait: PromiseWithResolvers<void> | undefined;
  /** What the core left of a chunk to keep one read's work bounded: read on the next turn. */
  rest: Uint8Array | undefined;
  /** Runs while a message is arriving (see `messageTimeout`). */
  messageTimer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Feeds the link's bytes to the core and passes on its events; holds reading back when it must.
 *
 * Nothing the peer sent is lost to an ending that follows it: when the core holds back an ending
 * (a violation, the peer's close frame, EOF) behind messages the application has not answered,
 * it takes effect once the application waits for input (`answered()`), or after the close
 * timeout.
 */
export class Reader<C> implements TransportSink {
  readonly #protocol: ServerProtocol | ClientProtocol;
  readonly #link: Link;
  readonly #inbox: Inbox<C>;
  readonly #outbox: Outbox<C>;
  readonly #keepalive: Keepalive<C>;
  /** Handed to the owner's functions (kept as `unknown`, so any part fits the shared queues). */
  readonly #connection: unknown;
  readonly #owner: ReaderOwner<C>;
  /** The options of every read (see `receiveOptions`). */
  readonly #receiveOptions: ReceiveOptions;
  readonly #settings: ConnectionSettings;
  #phase = Phase.Reading;
  /** Made on first use; read through the accessors below. */
  #waits: Waits | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    protocol: ServerProtocol | ClientProtocol,
    link: Link,
    parts: { inbox: Inbox<C>; outbox: Outbox<C>; keepalive: Keepalive<C> },
    connection: C,
    owner: ReaderOwner<C>,
    settings: ConnectionSettings,
  ) {
    this.#protocol = protocol;
    this.#link = link;
    this.#inbox = parts.inbox;
    this.#outbox = parts.outbox;
    this.#keepalive = parts.keepalive;
    this.#connection = connection;
    this.#owner = owner;
    this.#settings = settings;
    this.#receiveOptions = receiveOptions(link.transport.hints);
  }

  get #closed(): boolean {
    return this.#phase === Phase.Closed;
  }
  /** Set by `close()`: keep reading to find the peer's close frame, even with a full queue. */
  get #closing(): boolean {
    return this.#phase !== Phase.Reading;
  }
  #wait(): Waits {
    return this.#waits ??= {
      holdTimer: undefined,
      holdWait: undefined,
      roomWait: undefined,
      rest: undefined,
      messageTimer: undefined,
    };
  }
  /** Sets a field of `#waits`, made only for a value: clearing one of a reader without them is a no-op. */
  #put<K extends keyof Waits>(key: K, value: Waits[K]): void {
    if (value !== undefined) this.#wait()[key] = value;
    else if (this.#waits) this.#waits[key] = value;
  }
  get #holdTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.#waits?.holdTimer;
  }
  set #holdTimer(timer: ReturnType<typeof setTimeout> | undefined) {
    this.#put("holdTimer", timer);
  }
  get #holdWait(): PromiseWithResolvers<void> | undefined {
    return this.#waits?.holdWait;
  }
  set #holdWait(wait: PromiseWithResolvers<void> | undefined) {
    this.#put("holdWait", wait);
  }
  get #roomWait(): PromiseWithResolvers<void> | undefined {
    return this.#waits?.roomWait;
  }
  set #roomWait(wait: PromiseWithResolvers<void> | undefined) {
    this.#put("roomWait", wait);
  }
  get #rest(): Uint8Array | undefined {
    return this.#waits?.rest;
  }
  set #rest(rest: Uint8Array | undefined) {
    this.#put("rest", rest);
  }
  get #messageTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.#waits?.messageTimer;
  }
  set #messageTimer(timer: ReturnType<typeof setTimeout> | undefined) {
    this.#put("messageTimer", timer);
  }

  /**
   * Starts reading: first the events the core made during the handshake and the frames that came
   * with it (read as any read is, within the per-turn bounds), then the link.
   *
   * @param pending Events the core produced before the connection existed.
   */
  start(pending: ProtocolEvent[]): void {
    this.dispatch(pending);
    const unread = this.#protocol.takeUnread();
    if (unread) this.#process(unread);
    else if (this.#protocol.endingHeld) this.#hold();
    this.#outbox.schedule();
    if (this.#closed) return this.#finish();
    // The link stays paused until `#readOn()` finds nothing to wait for: later chunks must not
    // overtake what is left of the early frames.
    this.#link.open(this);
    this.#readOn();
  }

  /** {@inheritDoc TransportSink.data} */
  data(chunk: Uint8Array): boolean {
    if (this.#closed) return false;
    let kept = false;
    try {
      kept = this.#process(chunk);
    } catch {
      this.#readFailed();
    }
    this.#readOn();
    return kept;
  }

  /** {@inheritDoc TransportSink.end} */
  end(): void {
    if (this.#closed) return;
    try {
      this.#process(null);
    } catch {
      this.#readFailed();
    }
    this.#readOn();
  }

  /** The application closes: reading goes on, even with a full queue, to find the peer's close frame. */
  closing(): void {
    if (this.#phase === Phase.Reading) this.#phase = Phase.Closing;
    this.#roomWait?.resolve();
  }

  /** The inbox went down to its low-water mark: reading resumes if it waited for room. */
  drained(): void {
    this.#roomWait?.resolve();
  }

  /**
   * Passes on what the core produced: messages to the inbox, pongs to keepalive, pings and pongs
   * to the inbox when the application watches them, the close to the owner.
   */
  dispatch(events = this.#protocol.events() as ProtocolEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case "text":
        case "binary":
          this.#inbox.push(event); // Has `data` and `final`: a MessagePart as it is.
          break;
        case "ping":
          if (this.#settings.onPing) this.#inbox.notice(event); // In order with the messages.
          break;
        case "pong":
          this.#keepalive.pong(event.data);
          if (this.#settings.onPong) this.#inbox.notice(event);
          break;
        case "closed":
          this.#phase = Phase.Closed;
          clearTimeout(this.#idleTimer);
          clearTimeout(this.#holdTimer);
          clearTimeout(this.#messageTimer);
          this.#owner.closed(this.#connection as C, event);
          break;
      }
    }
  }

  #armIdleTimer(): void {
    if (!(this.#settings.idleTimeout > 0)) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = startTimer(
      () => this.#owner.idle(this.#connection as C),
      this.#settings.idleTimeout,
    );
  }

  /** The transport failed mid-read: the stream ends there, as the core is told. */
  #readFailed(): void {
    this.#protocol.receiveEof();
    this.answered(); // Nothing can be written either: nothing to hold an ending back for.
    this.dispatch();
  }

  /**
   * Reads on: resumes the transport (a no-op unless paused), or pauses it while reading must wait
   * and resumes it after; finishes once closed.
   */
  #readOn(): void {
    if (this.#closed) return this.#finish();
    const wait = this.#mustWait();
    if (!wait) {
      this.#armIdleTimer();
      return this.#link.resume();
    }
    this.#link.pause();
    wait.then(() => {
      if (this.#closed) return this.#finish();
      this.#link.resume();
      this.#armIdleTimer();
    }).catch(() => this.#link.close());
  }

  /**
   * Reading is over: the transport stays paused until it closes, so no read is left pending for
   * the close to cancel (on Deno a cancelled read is an `Interrupted` error: bench (e) on Deno
   * 5,931 -> 6,376 handshakes/s without them).
   */
  #finish(): void {
    this.#link.pause();
    this.#owner.finish(this.#connection as C);
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
    } else if (this.#outbox.bufferedAmount > this.#settings.sendHighWaterMark) {
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
    this.dispatch();
    this.#watchMessage();
    // What the handler sends in reply goes out with what the core queued: now, when a
    // forEach() callback has answered every message (and then an ending held for its replies),
    // else once the handler waits for input or the turn ends. The next read need not wait.
    if (this.#inbox.consuming) {
      this.answered();
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
    if (this.#messageTimer !== undefined || !(this.#settings.messageTimeout > 0) || this.#closed) return;
    this.#messageTimer = startTimer(
      () =>
        this.#owner.fail(
          this.#connection as C,
          `message not complete within ${this.#settings.messageTimeout} ms`,
        ),
      this.#settings.messageTimeout,
    );
  }

  /**
   * The core holds back an ending (a violation, the peer's close frame, EOF) that follows
   * messages the application has not answered: it takes effect when the application next waits
   * for a message (`answered()`), or after the close timeout if it does not (RFC 6455 §5.5.1
   * allows finishing the current message before answering a close).
   */
  #hold(): void {
    if (this.#holdTimer !== undefined) return;
    // Not reading yet: a handler about to start reads within this turn; one that never reads
    // gets no wait.
    this.#holdTimer = startTimer(() => {
      this.#holdTimer = undefined;
      if (!this.#inbox.reading) return this.answered();
      this.#holdTimer = startTimer(() => this.answered(), this.#settings.closeTimeout);
    }, this.#inbox.reading ? this.#settings.closeTimeout : 0);
  }

  /** The application waits for input, having answered all it read: a held ending takes effect. */
  answered(): void {
    const protocol = this.#protocol;
    if (!protocol.endingHeld) return protocol.answered();
    protocol.answered();
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    this.dispatch();
    // The replies and then the close frame, in one write when possible.
    this.#outbox.now();
    this.#holdWait?.resolve();
    this.#holdWait = undefined;
  }
}
