/**
 * The sending half of a connection: when the bytes the core queued are written, in as few writes
 * as possible, and what `bufferedAmount` counts.
 *
 * @module
 */

import { byteLength, concat } from "../core/bytes.ts";
import { LARGE_PAYLOAD } from "../core/frame.ts";
import type { Protocol } from "../core/protocol.ts";
import type { Transport } from "../transport.ts";
import { Deadlines, nextTurn, TurnEnd } from "../timers.ts";
import { quiet } from "./closed.ts";
import type { Message } from "./inbox.ts";

/**
 * What `send()` returns when the message was queued without waiting: one promise for all, which
 * `forEach()` knows needs no wait, so an echo makes no promise per message (+32% on bench (b) and
 * +12% on (a), Bun; +17% on (b), Deno).
 */
export const QUEUED: Promise<void> = Promise.resolve();

/**
 * Under permessage-deflate, a message longer than this is compressed in slices of this size, as
 * a fragmented message, so compressing it never holds the event loop for long: 16 KiB take about
 * 1 ms for English-like text and 1.6 ms for the compressor's worst input.
 */
export const DEFLATE_SLICE = 16 * 1024;
/**
 * Slices are compressed back to back for this long (ms), then the others get a turn. A turn per
 * slice made a 64 MiB echo take 20 s on Deno instead of about 2, as a timer costs 1-4 ms there.
 */
const DEFLATE_TURN_MS = 4;

/** `data` in slices of `DEFLATE_SLICE` (text cut between characters), yielding every `DEFLATE_TURN_MS`. */
export async function* slices(data: Message): AsyncGenerator<Message> {
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

/** What is to be written after the write in progress, if any. */
const enum Next {
  /** Nothing. */
  None,
  /** What was queued goes at the end of this turn of the event loop, or once the application waits. */
  Turn,
  /** What was queued goes as soon as the write in progress is done. */
  Now,
}

/** A connection that wrote nothing for this long lets go of its send buffers (ms). */
const IDLE_BUFFERS = 10000;

/**
 * Writes what the core queued once the write in progress is done and the application has
 * answered what it read (it waits for the next message, or the turn of the event loop ended), so
 * everything sent meanwhile goes out in one write, as ws's `Sender` corks and uncorks.
 */
export class Outbox<C> {
  readonly #protocol: Protocol<unknown>;
  readonly #transport: Transport;
  /** Handed to the owner's functions (kept as `unknown`, so any part fits the shared queues). */
  readonly #connection: unknown;
  /** Settles with `ConnectionClosed` once the connection has closed: one function for every connection. */
  readonly #rejectOnceClosed: (connection: C) => Promise<never>;
  #next = Next.None;
  /** In the queue of the turn's end. */
  #queued = false;
  /** Settles when the next write is done; made only when someone waits for it. */
  #written: PromiseWithResolvers<void> | undefined;
  /** `#written` as the application sees it (see `afterWrite`). */
  #whenWritten: Promise<void> | undefined;
  /**
   * Bytes handed to the transport and not yet taken by it: while above 0, a write is in progress
   * and the next waits for it. (No flag of its own: one field less brings an outbox down to 112
   * bytes on JavaScriptCore, from 160.)
   */
  #inFlight = 0;
  /** Wrote since the idle-buffer deadline was set. */
  #wrote = false;
  /** The connection closed (the last frames may still be written). */
  #closed = false;
  /** A write failed: the socket is broken, and nothing more is written. */
  #broken: { error: unknown } | undefined;

  /**
   * @param protocol The core whose output this writes.
   * @param transport Where it goes.
   * @param connection The connection it belongs to.
   * @param rejectOnceClosed What a write that failed settles with for the application.
   */
  constructor(
    protocol: Protocol<unknown>,
    transport: Transport,
    connection: C,
    rejectOnceClosed: (connection: C) => Promise<never>,
  ) {
    this.#protocol = protocol;
    this.#transport = transport;
    this.#connection = connection;
    this.#rejectOnceClosed = rejectOnceClosed;
  }

  /** Bytes queued for the socket and not yet taken by it. */
  get bufferedAmount(): number {
    return this.#protocol.bufferedAmount + this.#inFlight;
  }

  /** Whether a write is queued. */
  get scheduled(): boolean {
    return this.#next !== Next.None;
  }

  /** What the core queued goes at the end of this turn, or earlier with `now()`. */
  schedule(): void {
    if (this.#next !== Next.None) return;
    this.#next = Next.Turn;
    if (this.#queued) return;
    this.#queued = true;
    Outbox.#turnEnd.add(this);
  }

  /** Outboxes whose write waits for the end of the turn. */
  static #turnEnd = new TurnEnd<Outbox<never>>((outbox) => {
    outbox.#queued = false;
    if (outbox.#next !== Next.None) outbox.now();
  });

  /** Writes what the core queued as soon as the write in progress, if any, is done. */
  now(): void {
    this.#next = Next.Now;
    if (this.#inFlight > 0) return; // Writing: the next write waits for this one.
    this.#next = Next.None;
    const written = this.#written;
    this.#written = undefined;
    this.#whenWritten = undefined;
    if (this.#broken) {
      // What was queued can never be written: whoever waits for it learns so.
      this.#protocol.dataToSend();
      written?.reject(this.#broken.error);
      return;
    }
    // One write at a time: the previous one is done, so its buffers can be filled again.
    let chunks = this.#protocol.dataToSend({ reuse: true });
    const size = byteLength(chunks);
    if (size === 0) return written?.resolve();
    // Small buffers are joined: a copy costs less than a system call per buffer (bench (c) on Deno:
    // 9.2k -> 13.5k msg/s). The core queues payloads from LARGE_PAYLOAD on by reference, and those go
    // as they are.
    if (chunks.length > 1 && size < LARGE_PAYLOAD) chunks = [concat(chunks, size)];
    this.#inFlight += size;
    this.#watchIdle();
    let pending: Promise<void> | void;
    try {
      pending = this.#transport.write(chunks);
    } catch (error) {
      pending = Promise.reject(error);
    }
    if (!pending) {
      // All taken at once: no promise to wait for.
      this.#done(size);
      written?.resolve();
      return;
    }
    pending.then(() => {
      this.#done(size);
      written?.resolve();
    }, (error) => {
      // The socket broke: the connection ends, as the reader then reports.
      this.#broken = { error };
      this.#transport.close();
      this.#done(size);
      written?.reject(error);
    });
  }

  #done(size: number): void {
    this.#inFlight -= size;
    if (this.#next === Next.Now) this.now();
  }

  /**
   * Resolves when the bytes queued before the call are handed to the socket. The write starts
   * now, as the caller waits for it, or with `lazy` at the end of the turn.
   */
  flush(lazy = false): Promise<void> {
    this.schedule();
    const written = (this.#written ??= Promise.withResolvers<void>()).promise;
    if (!lazy) this.now();
    return written;
  }

  /**
   * Settles when the next write is done: one promise for every caller that waits on that write,
   * not one each (500,000 tiny sends to a peer that does not read kept 199 MB of promises on
   * Deno, and 5 MB with one), rejecting with `ConnectionClosed` when the write failed.
   */
  afterWrite(): Promise<void> {
    if (this.#whenWritten) return this.#whenWritten;
    const after = this.#whenWritten = this.settled((this.#written ??= Promise.withResolvers()).promise);
    this.flush(); // Its promise is `#written`'s, handled just above; a write done at once clears the cache.
    return after;
  }

  /** A write's outcome for the application: a failed write is the connection closing. */
  settled(written: Promise<void>): Promise<void> {
    return quiet(written.then(undefined, () => this.#rejectOnceClosed(this.#connection as C)));
  }

  /**
   * Lets go of what is queued and not yet handed to the transport (whole frames, so a close frame
   * queued next still parses).
   */
  drop(): void {
    this.#protocol.dataToSend();
  }

  /** Whether the idle-buffer deadline of this outbox is set (it is after a write, until it closes). */
  get idleWatched(): boolean {
    return idle.has(this);
  }

  /** The connection closed: its buffers go with it, so they need no watching. */
  close(): void {
    this.#closed = true;
    idle.delete(this);
  }

  /** A connection that stops writing lets go of the send buffers a past burst left, later. */
  #watchIdle(): void {
    this.#wrote = true;
    if (!this.#closed && !idle.has(this)) idle.set(this, IDLE_BUFFERS);
  }

  /** Idle buffers' deadline: nothing written since, and nothing being written, they go. */
  static expireIdle(outbox: Outbox<never>): void {
    if (outbox.#wrote || outbox.#inFlight > 0 || outbox.#next !== Next.None) {
      outbox.#wrote = false;
      idle.set(outbox, IDLE_BUFFERS);
    } else {
      outbox.#protocol.shrinkBuffers();
    }
  }
}

/** The idle-buffer deadlines of every connection, on one timer. */
const idle = new Deadlines<Outbox<never>>(IDLE_BUFFERS / 4, Outbox.expireIdle);
