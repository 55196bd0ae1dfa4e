/**
 * The receiving half of a connection: messages read and not yet consumed, the application's
 * waiters, and `forEach()`'s callback.
 *
 * @module
 */

import { concat } from "../core/bytes.ts";
import type { CloseResult, PingEvent, PongEvent } from "../core/protocol.ts";
import { ended, quiet } from "./closed.ts";
import { QUEUED } from "./outbox.ts";
import { startTimer } from "../timers.ts";

/**
 * A message: text as a string, binary as bytes.
 *
 * @category Connection
 */
export type Message = string | Uint8Array;

/**
 * A message, or with `streamMessages` a piece of one; `final` marks the last piece.
 *
 * @category Connection
 */
export interface MessagePart {
  /** The text or bytes. */
  data: Message;
  /** Whether this completes the message. */
  final: boolean;
}

/**
 * What the inbox tells the connection it belongs to: one table of functions for every connection,
 * each given the connection, rather than closures per connection.
 */
export interface InboxOwner<C> {
  /**
   * The application waits for input with nothing queued: it has answered what it read, so what
   * it sent can go, and an ending held back for its replies can follow them.
   */
  waiting(connection: C): void;
  /** A `forEach()` callback took every message queued: an ending held back for its replies may follow them. */
  answered(connection: C): void;
  /** The queue went down to its low-water mark: reading may resume. */
  drained(connection: C): void;
  /** A `forEach()` callback threw or rejected: the connection closes with 1011. */
  consumerFailed(connection: C): void;
  /** A ping or pong reaches the application (`onPing` / `onPong`), after the messages read before it. */
  notice(connection: C, event: PingEvent | PongEvent): void;
}

/** What the queue holds: messages (or pieces), and pings and pongs waiting for the messages before them. */
type Entry = MessagePart | PingEvent | PongEvent;

/**
 * A `forEach()` callback and how to settle the promise it returned (kept here, not in an object of
 * their own: one object less for every connection its handler holds in `forEach()`).
 */
interface Consumer {
  callback: (data: Message, final: boolean) => unknown;
  /** Set while a promise the callback returned is pending: messages queue meanwhile. */
  busy: boolean;
  /**
   * Settles the promise `forEach()` returned, and rejects it too, when handed a rejected promise:
   * its `reject` is not kept (see `settle`).
   */
  resolve: (outcome: Promise<undefined>) => void;
  /**
   * The promise `forEach()` returned, made quiet (see `quiet`) only when it is about to settle
   * rather than from the start: while a handler waits in `forEach()`, its connection holds one
   * promise and one reaction less.
   */
  promise: Promise<void>;
}

/**
 * Settles the promise of a `forEach()` as `outcome` settles, an unhandled rejection never. Only
 * the resolve function is kept, which rejects when handed a rejected promise (a turn of microtasks
 * later than `reject` would). With `Consumer.promise`, while a handler waits in `forEach()` its
 * connection holds 125 bytes of heap less (5,000 idle connections on Bun): a promise and a reaction
 * (48, with the 16 of that field), then the reject function and the 16 bytes this object takes less
 * without it (77).
 */
function settle(consumer: Consumer, outcome: Promise<undefined>): void {
  quiet(consumer.promise);
  consumer.resolve(quiet(outcome)); // Not unhandled either until the promise takes its outcome.
}

/**
 * What only `receive()` and its kind, and `onPing` / `onPong`, need: three fields of an inbox in one
 * object made when the first is set. An inbox has 8 fields then, not 10, which JavaScriptCore stores
 * in 80 bytes instead of 112 (5,000 idle connections on Bun).
 */
interface Pulls {
  /** Pings and pongs in the queue: while there are none, taking a message checks for none. */
  notices: number;
  /** A message went straight to a waiter whose continuation has not asked again yet. */
  handedOff: boolean;
  waiting: Waiter[] | undefined;
}

interface Waiter {
  resolve: (part: MessagePart | undefined) => void;
  reject: (error: unknown) => void;
}

/**
 * Messages received and not yet consumed, with a high-water mark (reading pauses at it, so a slow
 * consumer pushes back on TCP) and a low-water mark (reading resumes at it), as
 * python-websockets' `Assembler` does.
 */
export class Inbox<C> {
  /** Handed to the owner's functions (kept as `unknown`, so any part fits the shared queues). */
  readonly #connection: unknown;
  readonly #owner: InboxOwner<C>;
  readonly #high: number;
  /**
   * Received messages, or pieces of them with `streamMessages`, and the pings and pongs read
   * between them (see `notice()`); made on first use.
   */
  #messages: Entry[] | undefined;
  /** Made on first use; read through the accessors below. */
  #pulls: Pulls | undefined;
  /** Set by `forEach()`: messages go to it as they are read. */
  #consumer: Consumer | undefined;
  #closed: CloseResult | undefined;
  /** The application has read (or iterated, or called `forEach()`): its replies are worth waiting for. */
  reading = false;

  get #notices(): number {
    return this.#pulls?.notices ?? 0;
  }
  set #notices(notices: number) {
    if (notices !== 0 || this.#pulls) this.#pull().notices = notices;
  }
  get #handedOff(): boolean {
    return this.#pulls?.handedOff ?? false;
  }
  set #handedOff(handedOff: boolean) {
    if (handedOff || this.#pulls) this.#pull().handedOff = handedOff;
  }
  get #waiting(): Waiter[] | undefined {
    return this.#pulls?.waiting;
  }
  set #waiting(waiting: Waiter[]) {
    this.#pull().waiting = waiting;
  }
  #pull(): Pulls {
    return this.#pulls ??= { notices: 0, handedOff: false, waiting: undefined };
  }

  /**
   * @param connection The connection it belongs to.
   * @param owner What it tells the connection.
   * @param high Messages queued before reading pauses.
   */
  constructor(connection: C, owner: InboxOwner<C>, high: number) {
    this.#connection = connection;
    this.#owner = owner;
    this.#high = high;
  }

  /** Whether reading must pause: the queue is at its high-water mark. */
  get full(): boolean {
    return (this.#messages?.length ?? 0) >= this.#high;
  }

  /**
   * How many more messages one read may deliver: as many as there is room for, at least one, at
   * most `most`; `most` while a `forEach()` callback takes them as they come.
   */
  room(most: number): number {
    if (this.#consumer?.busy === false) return most;
    return Math.max(1, Math.min(most, this.#high - (this.#messages?.length ?? 0)));
  }

  /** Whether a `forEach()` callback is idle: messages reach it as they are read. */
  get consuming(): boolean {
    return this.#consumer?.busy === false;
  }

  /** A message (or piece) was read. */
  push(message: MessagePart): void {
    const consumer = this.#consumer;
    if (consumer !== undefined && !consumer.busy) return this.#consume(consumer, message);
    const waiter = this.#waiting?.shift();
    if (waiter) {
      waiter.resolve(message);
      this.#handedOff = true;
    } else (this.#messages ??= []).push(message);
  }

  /**
   * A ping or pong the application watches was read: it reaches the application now when no
   * message read before it is waiting, else once those messages are taken, so the application
   * sees pings, pongs and messages in the order they arrived.
   */
  notice(event: PingEvent | PongEvent): void {
    if (!this.#messages?.length && !this.#consumer?.busy && !this.#handedOff) {
      return this.#owner.notice(this.#connection as C, event);
    }
    (this.#messages ??= []).push(event);
    this.#notices++;
  }

  /** The connection closed: every waiter settles, and `forEach()` once its messages are passed on. */
  close(closed: CloseResult): void {
    this.#closed = closed;
    for (const waiter of this.#waiting?.splice(0) ?? []) ended(closed).then(waiter.resolve, waiter.reject);
    if (this.#consumer) this.#feed(this.#consumer);
  }

  /** See `Connection.receive()`. */
  receive(timeout?: number): Promise<Message | undefined> {
    // A whole message is waiting: no need to wait for it.
    if ((this.#messages?.[0] as MessagePart | undefined)?.final) return Promise.resolve(this.#take()!.data);
    return quiet(this.#receive(timeout));
  }

  /** See `Connection.receivePart()`. */
  receivePart(timeout?: number): Promise<MessagePart | undefined> {
    return quiet(this.#next(timeout));
  }

  /** The next step of `for await`. */
  next(): Promise<IteratorResult<Message>> {
    // A whole message is waiting: one promise, not two.
    if ((this.#messages?.[0] as MessagePart | undefined)?.final) {
      return Promise.resolve({ done: false, value: this.#take()!.data });
    }
    return quiet(
      this.#receive(undefined).then((value) =>
        value === undefined ? { done: true, value: undefined } : { done: false, value }
      ),
    );
  }

  /** See `Connection.forEach()`. */
  forEach(callback: (data: Message, final: boolean) => unknown): Promise<void> {
    if (this.#consumer) return Promise.reject(new TypeError("forEach() was already called"));
    const { promise, resolve } = Promise.withResolvers<void>();
    const consumer: Consumer = { callback, busy: false, resolve, promise };
    this.#consumer = consumer;
    this.reading = true;
    this.#feed(consumer);
    return promise;
  }

  #receive(timeout: number | undefined): Promise<Message | undefined> {
    return this.#next(timeout).then((part) =>
      part === undefined || part.final ? part?.data : this.#joinRest(part, timeout)
    );
  }

  /**
   * The pieces of a streamed message from `first` on, joined. The rest of the message is this
   * call's: it waits first in line, ahead of other calls. When it gives up half-way (a timeout),
   * the pieces it took go back to the front of the queue, so the next call gets the whole message.
   */
  async #joinRest(first: MessagePart, timeout: number | undefined): Promise<Message | undefined> {
    const parts = [first];
    try {
      for (let last = first; !last.final;) {
        const part = await this.#next(timeout, true);
        // Closed (cleanly) before the message was complete: there is no message, as for any
        // receive() after the close.
        if (part === undefined) return undefined;
        parts.push(last = part);
      }
    } catch (error) {
      this.#requeue(parts);
      throw error;
    }
    if (typeof first.data === "string") return parts.map((part) => part.data).join("");
    return concat(parts.map((part) => part.data as Uint8Array));
  }

  /** Puts pieces taken back at the front of the queue, for waiters first. */
  #requeue(parts: MessagePart[]): void {
    if (this.#closed) return;
    this.#messages = [...parts, ...this.#messages ?? []];
    const waiting = this.#waiting;
    while (waiting?.length) {
      const message = this.#take(); // Pings and pongs between the pieces reach the application as they come.
      if (message === undefined) break;
      waiting.shift()!.resolve(message);
    }
  }

  /** The next piece received, if one is waiting; the pings and pongs before it reach the application first. */
  #take(): MessagePart | undefined {
    this.reading = true;
    this.#handedOff = false;
    const before = this.#messages?.length ?? 0;
    let message = this.#messages?.shift();
    while (this.#notices > 0 && message !== undefined && isNotice(message)) {
      this.#notices--;
      this.#owner.notice(this.#connection as C, message);
      message = this.#messages!.shift(); // Read again: the callback may have received, and requeued.
    }
    // Crossing the low-water mark, not landing on it: taking notices may skip it.
    const low = this.#high >> 2;
    if (before > low && this.#messages!.length <= low) this.#owner.drained(this.#connection as C);
    return message as MessagePart | undefined;
  }

  /** The next piece; with `first`, ahead of other waiters (the rest of a message being joined). */
  #next(timeout: number | undefined, first = false): Promise<MessagePart | undefined> {
    const message = this.#take();
    if (message !== undefined) return Promise.resolve(message);
    this.#owner.waiting(this.#connection as C);
    if (this.#closed) return ended(this.#closed);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const waiting = this.#waiting ??= [];
      if (first) waiting.unshift(waiter);
      else waiting.push(waiter);
      if (timeout === undefined) return;
      const timer = startTimer(() => {
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

  /** Passes queued messages to the consumer until one returns a promise; settles it after the close. */
  #feed(consumer: Consumer): void {
    while (!consumer.busy && this.#consumer === consumer) {
      const message = this.#take();
      if (message === undefined) break;
      this.#consume(consumer, message);
    }
    if (!consumer.busy && this.#consumer === consumer) this.#owner.answered(this.#connection as C);
    if (this.#closed && !consumer.busy && !this.#messages?.length) {
      settle(consumer, ended(this.#closed));
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
    settle(consumer, Promise.reject(error));
    this.#owner.consumerFailed(this.#connection as C);
  }
}

/** Whether a queue entry is a ping or pong (messages are the core's text and binary events, or pieces put back). */
function isNotice(entry: Entry): entry is PingEvent | PongEvent {
  const type = (entry as { type?: string }).type;
  return type === "ping" || type === "pong";
}
