/**
 * The one small interface between sock's connections and a runtime's sockets.
 * Adapters (`src/adapters/`) are the only code that implements it with
 * runtime APIs.
 *
 * I/O is push-only: the adapter owns its read loop (or the runtime's callbacks)
 * and pushes every chunk into one {@linkcode TransportSink}; backpressure is
 * `pause()`/`resume()`.
 *
 * The contract every adapter keeps, and `tests/adapters/transport_test.ts` checks:
 * - `start()` and `resume()` may call `sink.data()` and `sink.end()` before they return (Bun's
 *   adapter hands over what it held at once); a sink must be ready for its bytes before it calls them.
 * - `pause()` may come before `start()`: the transport then starts paused.
 * - After `pause()`, `data()` is not called again until `resume()`, even from inside `data()`; the
 *   end of the stream waits behind a pause too, unless `close()` comes first.
 * - After `close()` (also from inside `data()`), `data()` is not called again; `end()` follows once.
 * - A sink whose `data()` throws ends the connection: the transport closes, and `end()` follows.
 * - One write at a time: `write()` is called again only once the promise of the last one settled.
 *
 * @module
 */

/**
 * A network address.
 *
 * @category Adapters
 */
export interface NetAddress {
  /** The host name or IP address. */
  hostname: string;
  /** The port. */
  port: number;
}

/**
 * Where a transport's bytes go: one sink for the life of a connection (opening handshake, open,
 * and the linger after a failure are its states).
 *
 * @category Adapters
 */
export interface TransportSink {
  /**
   * Bytes read, in a buffer handed over to the sink.
   *
   * @param chunk The bytes; the sink may keep them, and modify them.
   * @returns `true` when the sink kept the buffer (or a view of it) past the call: the transport
   *   then never reads into it again. `false` lets the transport read into it again.
   */
  data(chunk: Uint8Array): boolean;
  /** The stream ended (EOF, reset, or `close()`); called once, and nothing follows it. */
  end(): void;
}

/**
 * What a runtime does faster one way than another, for the code that feeds the protocol core:
 * facts about the runtime, declared by its adapter, never options a user sets.
 *
 * @category Adapters
 */
export interface RuntimeHints {
  /**
   * Copying a small binary message costs less than a view of the buffer it arrived in
   * (JavaScriptCore, so Bun).
   */
  copySmallMessages?: boolean;
  /** A `TextDecoder` call costs more than decoding a short text in script (Deno, where it is an op). */
  scriptedTextDecoding?: boolean;
}

/**
 * A byte stream: one TCP or TLS connection.
 *
 * @category Adapters
 */
export interface Transport {
  /**
   * Starts reading: every chunk read goes to `sink.data()`, then `sink.end()` once. Called once.
   *
   * @param sink Where the bytes go.
   */
  start(sink: TransportSink): void;
  /** Stops calling `sink.data()` (TCP pushes back on the peer) until `resume()`. */
  pause(): void;
  /** Calls `sink.data()` again after `pause()`, first with anything read meanwhile. */
  resume(): void;
  /**
   * Writes buffers in order. Returns nothing when the runtime took every byte
   * at once; otherwise a promise that resolves once it has, so awaiting the
   * result is backpressure. The buffers must not change until then, and
   * `write()` is not called again before (a transport need not queue writes).
   *
   * @param chunks The buffers to write.
   * @returns Nothing, or a promise when the bytes are not all taken yet.
   */
  write(chunks: Uint8Array[]): Promise<void> | void;
  /** Closes the connection; the sink's `end()` follows. Safe to call twice. */
  close(): void;
  /** What this runtime does faster one way than another. */
  readonly hints: RuntimeHints;
  /** The peer's address, when known. */
  readonly remoteAddress: NetAddress | undefined;
  /** This side's address, when known. */
  readonly localAddress: NetAddress | undefined;
}

/**
 * A listening socket that hands each new connection to a callback.
 *
 * @category Adapters
 */
export interface Listener {
  /** The address actually bound (the port is chosen by the system for port 0). */
  readonly address: NetAddress;
  /** Stops accepting connections; open ones are not touched. */
  close(): void;
}

/**
 * Where to listen or connect.
 *
 * @category Adapters
 */
export interface Endpoint {
  /** Host name or address. */
  hostname: string;
  /** Port; 0 to listen on a free one. */
  port: number;
  /** TLS: PEM certificate and key to listen with, or `true`/CA certificates to connect with. */
  tls?: { cert: string; key: string } | { caCerts?: string[] | undefined } | boolean | undefined;
  /**
   * Listening: let other sockets (other processes) listen on the same port, the kernel spreading
   * connections among them (Linux `SO_REUSEPORT`). On Deno this needs `--unstable-net`.
   */
  reusePort?: boolean | undefined;
}

/**
 * TLS on a connection already open: what {@linkcode Adapter.startTls} checks the server against.
 *
 * @category Adapters
 */
export interface StartTlsOptions {
  /** The server's host name (or address): sent as SNI, and what its certificate must be valid for. */
  hostname: string;
  /** The server's port: only to name the server in errors. */
  port: number;
  /** CA certificates (PEM) to trust instead of the runtime's. */
  caCerts?: string[] | undefined;
  /**
   * Abandons the handshake: the promise rejects, and the adapter closes the connection. How soon
   * the TCP connection ends depends on the runtime: Bun's ends at once; on Deno (2.9) a TLS
   * handshake under way cannot be interrupted, and the TCP connection stays open until the peer
   * ends or completes the handshake.
   */
  signal?: AbortSignal | undefined;
}

/**
 * What a runtime provides: listening and connecting.
 *
 * @category Adapters
 */
export interface Adapter {
  /** The runtime's name, for diagnostics. */
  readonly name: string;
  /**
   * Listens and calls `onConnection` for every accepted connection.
   *
   * @param endpoint Where to listen.
   * @param onConnection Called with each new connection, not started yet.
   * @returns The listener.
   * @throws {ListenError} When it cannot listen there (the promise rejects), with the same `code` on
   *   every runtime.
   */
  listen(endpoint: Endpoint, onConnection: (transport: Transport) => void): Promise<Listener>;
  /**
   * Opens a connection.
   *
   * @param endpoint Where to connect.
   * @returns The connection, not started yet, once TCP is connected and, with TLS, the TLS handshake
   *   is done.
   * @throws {ConnectError} When the connection or the TLS handshake fails (the promise rejects), with
   *   the same `code` on every runtime.
   */
  connect(endpoint: Endpoint): Promise<Transport>;
  /**
   * Optional: starts TLS inside a connection this adapter's `connect()` opened (a tunnel through a
   * proxy), checking the certificate against `options.hostname`. The old transport is handed over:
   * it was started, then paused from inside its sink's `data()` (so no read is pending), and is not
   * used again; closing it afterwards does nothing.
   *
   * @param transport A connection from this adapter's `connect()`, paused.
   * @param options The server's host name, and the CAs to trust.
   * @returns The TLS connection, not started yet, once the TLS handshake is done.
   * @throws {ConnectError} When the TLS handshake fails (the promise rejects), with the same `code`
   *   as `connect()` gives, naming `options.hostname`. Once `options.signal` aborts, the promise
   *   rejects with the signal's reason.
   */
  startTls?(transport: Transport, options: StartTlsOptions): Promise<Transport>;
  /**
   * Optional: reads an environment variable (the client's proxy settings, `HTTP_PROXY` and the
   * like).
   *
   * @param name The variable.
   * @returns Its value; `undefined` when it is not set, or may not be read.
   */
  env?(name: string): string | undefined;
}
