/**
 * The one sink of a transport, for the whole life of a connection: the opening handshake, the
 * open connection, and the linger after a failure are its states.
 *
 * @module
 */

import type { Transport, TransportSink } from "../transport.ts";

/** Takes a chunk during the opening handshake (`null` at the end of the stream); returns `true` once the step is complete. */
type HandshakeFeed = (chunk: Uint8Array | null) => boolean;

/** Where the bytes of an open connection go. */
export interface OpenSink {
  /** A chunk read; returns whether it kept the buffer (see `TransportSink.data`). */
  data(chunk: Uint8Array): boolean;
  /** The end of the stream. */
  end(): void;
}

/** A failed connection's socket is closed once the peer sent nothing for this long (ms)… */
const LINGER_QUIET = 100;
/** …or after this long at most (ms). */
const LINGER_MAX = 2000;

const enum State {
  /** Not started, or paused between handshake steps. */
  Idle,
  /** Bytes go to the handshake's feed. */
  Handshake,
  /** Bytes go to the open connection's reader. */
  Open,
  /** Bytes are read and dropped until the peer goes quiet. */
  Linger,
  /** The stream ended. */
  Ended,
}

/**
 * A transport and the states its bytes go through. The handshake drivers (server and client) call
 * `handshake()` until the core has what it needs; `Connection` then calls `open()`; after a
 * failure, `linger()` drains the peer before the socket closes.
 *
 * @example Reading a request head through a link (the bytes come from a stream pair here)
 * ```ts
 * import { Link } from "./link.ts";
 * import { streamTransport } from "../adapters/streams.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const pipe = new TransformStream<Uint8Array, Uint8Array>();
 * const link = new Link(streamTransport({ readable: pipe.readable, writable: new WritableStream() }));
 * const writer = pipe.writable.getWriter();
 * writer.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
 * let head = "";
 * await link.handshake((chunk) => {
 *   head += chunk ? new TextDecoder().decode(chunk) : "";
 *   return head.endsWith("\r\n\r\n");
 * });
 * assertEquals(head, "GET / HTTP/1.1\r\n\r\n");
 * link.close();
 * ```
 */
export class Link implements TransportSink {
  readonly transport: Transport;
  #state = State.Idle;
  #started = false;
  #feed: HandshakeFeed | undefined;
  #step: (() => void) | undefined;
  #reader: OpenSink | undefined;
  /** The end of the stream arrived. */
  #ended = false;
  #quiet: ReturnType<typeof setTimeout> | undefined;
  #lingered: (() => void) | undefined;

  /**
   * Wraps a transport that was not started yet.
   *
   * @param transport The connection's bytes.
   */
  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Whether the stream ended (EOF, reset, or closed). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Reads until `feed` returns `true` (it is called with each chunk, and with `null` at the end of
   * the stream, after which the step is over too), then pauses the transport.
   *
   * @param feed Takes each chunk; returns `true` once the step is complete.
   * @returns Once the step is complete.
   */
  handshake(feed: HandshakeFeed): Promise<void> {
    if (this.#ended) {
      feed(null);
      return Promise.resolve();
    }
    const step = Promise.withResolvers<void>();
    this.#feed = feed;
    this.#step = step.resolve;
    this.#state = State.Handshake;
    this.#go();
    return step.promise;
  }

  /**
   * The connection is open: from now on the bytes go to `reader`.
   *
   * @param reader Takes every chunk and the end of the stream.
   */
  open(reader: OpenSink): void {
    this.#reader = reader;
    if (this.#ended) return reader.end();
    this.#state = State.Open;
    this.#go();
  }

  /**
   * After a failure: reads and drops what the peer still sends (RFC 6455 §7.1.7: nothing more is
   * processed) until it closes or goes quiet, for at most `timeout` ms (2 s at most), then closes:
   * closing with unread bytes resets the connection (RST), and a peer whose writes then fail may
   * never read the close frame that says why.
   *
   * @param timeout In ms.
   * @returns Once the transport is closed.
   */
  linger(timeout: number): Promise<void> {
    if (this.#ended) {
      this.close();
      return Promise.resolve();
    }
    const done = Promise.withResolvers<void>();
    const max = setTimeout(() => this.close(), Math.min(timeout, LINGER_MAX));
    this.#lingered = () => {
      clearTimeout(max);
      clearTimeout(this.#quiet);
      done.resolve();
    };
    this.#state = State.Linger;
    this.#heard();
    this.#go();
    return done.promise;
  }

  /** Stops reading until `resume()`. */
  pause(): void {
    this.transport.pause();
  }

  /** Reads again after `pause()`. */
  resume(): void {
    this.transport.resume();
  }

  /** Closes the transport. */
  close(): void {
    this.transport.close();
  }

  /** Starts the transport the first time, resumes it later. */
  #go(): void {
    if (this.#started) return this.transport.resume();
    this.#started = true;
    this.transport.start(this);
  }

  /** {@inheritDoc TransportSink.data} */
  data(chunk: Uint8Array): boolean {
    switch (this.#state) {
      case State.Open:
        return this.#reader!.data(chunk);
      case State.Handshake:
        if (this.#feed!(chunk)) this.#stepDone();
        return false;
      case State.Linger:
        this.#heard();
        return false;
      default:
        // Paused between steps; a transport that read on anyway loses nothing worth keeping.
        return false;
    }
  }

  /** {@inheritDoc TransportSink.end} */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const state = this.#state;
    this.#state = State.Ended;
    if (state === State.Open) this.#reader!.end();
    else if (state === State.Handshake) {
      this.#feed!(null);
      this.#stepDone();
    } else if (state === State.Linger) {
      this.transport.close();
      this.#lingered?.();
    }
  }

  #stepDone(): void {
    if (this.#state === State.Handshake) {
      this.#state = State.Idle;
      this.transport.pause();
    }
    const step = this.#step;
    this.#feed = undefined;
    this.#step = undefined;
    step?.();
  }

  /** Lingering: the peer sent something, so it is not quiet yet. */
  #heard(): void {
    clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => this.close(), LINGER_QUIET);
  }
}
