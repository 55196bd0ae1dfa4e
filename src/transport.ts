/**
 * The one small interface between sock's connections and a runtime's sockets.
 * Adapters (`src/adapters/`) are the only code that implements it with
 * runtime APIs.
 *
 * @module
 */

import type { ProtocolOptions } from "./core/protocol.ts";

/** A network address. */
export interface NetAddress {
  /** The host name or IP address. */
  hostname: string;
  /** The port. */
  port: number;
}

/** A byte stream: one TCP or TLS connection. */
export interface Transport {
  /**
   * Reads the next bytes, in a buffer the caller may keep and modify.
   *
   * @returns The bytes, or `null` at end of stream (EOF, reset or close).
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Writes buffers in order. Returns nothing when the runtime took every byte
   * at once; otherwise a promise that resolves once it has, so awaiting the
   * result is backpressure. The buffers must not change until then.
   *
   * @param chunks The buffers to write.
   * @returns Nothing, or a promise when the bytes are not all taken yet.
   */
  write(chunks: Uint8Array[]): Promise<void> | void;
  /**
   * Optional: takes back a buffer `read()` returned (or the receiver was given)
   * that the caller no longer holds any part of, so the transport can read into
   * it again instead of allocating a new one.
   *
   * @param chunk The buffer, as it was handed over.
   */
  release?(chunk: Uint8Array): void;
  /**
   * Optional push mode, for runtimes whose sockets call back with what they read (with `pause`
   * and `resume`): from this call on, every chunk read goes to `receiver` as it arrives, and
   * `null` at the end of the stream, instead of to `read()`; the receiver may keep and modify
   * the chunk. Called with `undefined`, chunks go to `read()` again.
   *
   * @param receiver Called with each chunk, then with `null`; or `undefined` to stop.
   */
  receive?(receiver: ((chunk: Uint8Array | null) => void) | undefined): void;
  /** Push mode: stops reading (TCP pushes back on the peer) until `resume()`. */
  pause?(): void;
  /** Push mode: reads again after `pause()`. */
  resume?(): void;
  /** Closes the connection; pending reads resolve `null`. Safe to call twice. */
  close(): void;
  /** The peer's address, when known. */
  readonly remoteAddress: NetAddress | undefined;
  /** This side's address, when known. */
  readonly localAddress: NetAddress | undefined;
}

/** A listening socket that hands each new connection to a callback. */
export interface Listener {
  /** The address actually bound (the port is chosen by the system for port 0). */
  readonly address: NetAddress;
  /** Stops accepting connections; open ones are not touched. */
  close(): void;
}

/** Where to listen or connect. */
export interface Endpoint {
  /** Host name or address. */
  hostname: string;
  /** Port; 0 to listen on a free one. */
  port: number;
  /** TLS: PEM certificate and key to listen with, or `true`/CA certificates to connect with. */
  tls?: { cert: string; key: string } | { caCerts?: string[] } | boolean;
}

/** What a runtime provides: listening and connecting. */
export interface Adapter {
  /** The runtime's name, for diagnostics. */
  readonly name: string;
  /** Protocol options that suit this runtime; options given to `Sock` or `connect` override them. */
  readonly protocolDefaults?: ProtocolOptions;
  /**
   * Listens and calls `onConnection` for every accepted connection.
   *
   * @param endpoint Where to listen.
   * @param onConnection Called with each new connection.
   * @returns The listener.
   * @throws {ListenError} When it cannot listen there (the promise rejects), with the same `code` on
   *   every runtime.
   */
  listen(endpoint: Endpoint, onConnection: (transport: Transport) => void): Promise<Listener>;
  /**
   * Opens a connection.
   *
   * @param endpoint Where to connect.
   * @returns The connection, once TCP is connected and, with TLS, the TLS handshake is done.
   * @throws {ConnectError} When the connection or the TLS handshake fails (the promise rejects), with
   *   the same `code` on every runtime.
   */
  connect(endpoint: Endpoint): Promise<Transport>;
}
