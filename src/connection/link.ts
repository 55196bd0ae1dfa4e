/**
 * The one sink of a transport, for the whole life of a connection: the opening handshake, the
 * open connection, and the linger after a failure are its states.
 *
 * @module
 */

import type { Transport, TransportSink } from "../transport.ts";

/**
 * Takes a chunk during the opening handshake (`null` at the end of the stream); returns `true` once
 * the step is complete. The chunk is valid only during the call: the transport may read into its
 * buffer again, so a feed copies what it keeps (the core's handshakes do).
 *
 * @category Connection
 */
export type HandshakeFeed = (chunk: Uint8Array | null) => boolean;

/** A failed connection's socket is closed once the peer sent nothing for this long (ms)… */
const LINGER_QUIET = 100;
/** …or after this long at most (ms). */
const LINGER_MAX = 2000;

const enum State {
  /** The transport is not started yet. */
  New,
  /** Paused between handshake steps. */
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

/** A handshake step: what takes the bytes, and how it ends. */
interface Step {
  feed: HandshakeFeed;
  done: PromiseWithResolvers<void>;
}

/** A linger: its quiet timer, and what to call once the transport is closed. */
interface Lingering {
  quiet: ReturnType<typeof setTimeout> | undefined;
  done: () => void;
}

/**
 * A transport and the states its bytes go through. The handshake drivers (server and client) call
 * `handshake()` until the core has what it needs; `Connection` then calls `open()`; after a
 * failure, `linger()` drains the peer before the socket closes.
 *
 * @category Connection
 *
 * @example Reading a request head through a link (the bytes come from a stream pair here)
 * ```ts
 * import { Link } from "@sock/sock";
 * import { streamTransport } from "@sock/sock/streams";
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
  /** The transport whose bytes this link takes. */
  readonly transport: Transport;
  #state = State.New;
  #step: Step | undefined;
  #reader: TransportSink | undefined;
  #lingering: Lingering | undefined;

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
    return this.#state === State.Ended;
  }

  /**
   * Reads until `feed` returns `true` (it is called with each chunk, and with `null` at the end of
   * the stream, after which the step is over too), then pauses the transport.
   *
   * @param feed Takes each chunk; returns `true` once the step is complete.
   * @returns Once the step is complete; rejects with what `feed` threw, if it throws (the
   *   transport is paused then too).
   */
  handshake(feed: HandshakeFeed): Promise<void> {
    if (this.ended) {
      try {
        feed(null);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve();
    }
    const step: Step = { feed, done: Promise.withResolvers() };
    this.#step = step;
    this.#go(State.Handshake);
    return step.done.promise;
  }

  /**
   * The connection is open: from now on the bytes go to `reader`, once it calls `resume()` (the
   * transport stays paused until then, so the reader can first read what came with the handshake).
   * A stream that ended already ends the reader at once.
   *
   * @param reader Takes every chunk and the end of the stream.
   */
  open(reader: TransportSink): void {
    this.#reader = reader;
    if (this.ended) return reader.end();
    const fresh = this.#state === State.New;
    this.#state = State.Open;
    if (!fresh) return;
    // No handshake through this link (a connection made by hand): started paused.
    this.transport.pause();
    this.transport.start(this);
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
    if (this.ended) {
      this.close();
      return Promise.resolve();
    }
    const done = Promise.withResolvers<void>();
    const max = setTimeout(() => this.close(), Math.min(timeout, LINGER_MAX));
    const lingering: Lingering = {
      quiet: undefined,
      done: () => {
        clearTimeout(max);
        clearTimeout(lingering.quiet);
        done.resolve();
      },
    };
    this.#lingering = lingering;
    this.#heard(lingering);
    this.#go(State.Linger);
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

  /** Enters `state`: starts the transport the first time, resumes it later. */
  #go(state: State): void {
    const started = this.#state !== State.New;
    this.#state = state;
    if (started) this.transport.resume();
    else this.transport.start(this);
  }

  /** {@inheritDoc TransportSink.data} */
  data(chunk: Uint8Array): boolean {
    switch (this.#state) {
      case State.Open:
        return this.#reader!.data(chunk);
      case State.Handshake:
        this.#feed(chunk);
        return false; // A feed copies what it keeps.
      case State.Linger:
        this.#heard(this.#lingering!);
        return false;
      default:
        return false;
    }
  }

  /** {@inheritDoc TransportSink.end} */
  end(): void {
    const state = this.#state;
    if (state === State.Ended) return;
    this.#state = State.Ended;
    if (state === State.Open) this.#reader!.end();
    else if (state === State.Handshake) this.#feed(null);
    else if (state === State.Linger) {
      this.transport.close();
      this.#lingering!.done();
    }
  }

  /** Hands a chunk to the handshake step; ends the step once it is complete, or threw. */
  #feed(chunk: Uint8Array | null): void {
    const step = this.#step!;
    let failed = false;
    let error: unknown;
    try {
      if (!step.feed(chunk) && chunk !== null) return;
    } catch (thrown) {
      failed = true;
      error = thrown;
    }
    this.#step = undefined;
    if (this.#state === State.Handshake) {
      this.#state = State.Idle;
      this.transport.pause();
    }
    if (failed) step.done.reject(error);
    else step.done.resolve();
  }

  /** Lingering: the peer sent something, so it is not quiet yet. */
  #heard(lingering: Lingering): void {
    clearTimeout(lingering.quiet);
    lingering.quiet = setTimeout(() => this.close(), LINGER_QUIET);
  }
}
