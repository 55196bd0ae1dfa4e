/**
 * The web streams adapter: any `{ readable, writable }` pair of byte streams
 * as a sock transport. That is the shape edge runtimes give raw TCP, e.g.
 * `connect()` from `cloudflare:sockets`, so sock's client runs there with
 * this adapter. It uses only web-standard APIs (no `Deno`, `Bun` or `node:`).
 *
 * Client only: a stream pair is one connection, there is nothing to listen on.
 *
 * @module
 */

import type {
  Adapter,
  Endpoint,
  Listener,
  NetAddress,
  RuntimeHints,
  Transport,
  TransportSink,
} from "../transport.ts";
import { ConnectError, SYSTEM_CONNECT_CODES, systemCode } from "../net_errors.ts";
import { Pausable } from "./pausable.ts";

/**
 * A connection as a pair of byte streams, as `cloudflare:sockets` returns.
 *
 * @category Adapters
 *
 * @example A loopback pair: what is written comes back
 * ```ts
 * import type { StreamPair } from "@sock/sock/streams";
 *
 * const pair: StreamPair = new TransformStream<Uint8Array, Uint8Array>();
 * ```
 */
export interface StreamPair {
  /** The bytes from the peer. */
  readable: ReadableStream<Uint8Array>;
  /** The bytes to the peer. */
  writable: WritableStream<Uint8Array>;
  /** Called last by the transport's `close()` when present (e.g. Cloudflare's `Socket.close`). */
  close?: () => unknown;
}

/**
 * Options of {@linkcode streamTransport}.
 *
 * @category Adapters
 *
 * @example Addresses, and no copies for a source that enqueues fresh buffers
 * ```ts
 * import type { StreamTransportOptions } from "@sock/sock/streams";
 *
 * const options: StreamTransportOptions = { remoteAddress: { hostname: "example.com", port: 443 }, copy: false };
 * ```
 */
export interface StreamTransportOptions {
  /** The peer's address, when known. */
  remoteAddress?: NetAddress;
  /** This side's address, when known. */
  localAddress?: NetAddress;
  /**
   * Whether chunks read from a stream that is not a byte stream are copied.
   * Default `true`: such a stream hands over whatever its source enqueued, and
   * a source may reuse that buffer. Set `false` for a source known to enqueue
   * fresh buffers and never touch them again. Byte streams are never copied:
   * they are read with a BYOB reader into buffers of the transport's own.
   */
  copy?: boolean;
}

/** Size of the buffers a byte stream is read into. */
const READ_SIZE = 65536;

/** A plain `Uint8Array` view of a chunk, or a `TypeError` for something that is not bytes. */
function bytesOf(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) {
    return chunk.constructor === Uint8Array
      ? chunk
      : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError(`the readable stream produced a chunk that is not bytes: ${typeof chunk}`);
}

class StreamTransport extends Pausable implements Transport {
  #pair: StreamPair;
  #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  #byob: boolean;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #copy: boolean;
  #closed = false;
  readonly hints: RuntimeHints = {};
  readonly remoteAddress: NetAddress | undefined;
  readonly localAddress: NetAddress | undefined;

  constructor(pair: StreamPair, options: StreamTransportOptions) {
    super();
    this.#pair = pair;
    let reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
    try {
      reader = pair.readable.getReader({ mode: "byob" });
      this.#byob = true;
    } catch {
      // Not a byte stream (a TypeError); a locked stream throws again just below.
      reader = pair.readable.getReader();
      this.#byob = false;
    }
    this.#reader = reader;
    this.#writer = pair.writable.getWriter();
    this.#copy = options.copy ?? true;
    this.remoteAddress = options.remoteAddress;
    this.localAddress = options.localAddress;
    // A failed stream surfaces as the sink's end() or a rejected write(); no unhandled rejections.
    this.#reader.closed.catch(() => {});
    this.#writer.closed.catch(() => {});
  }

  start(sink: TransportSink): void {
    // A sink that throws ends the connection (after its end()), not the process.
    this.#readLoop(sink).catch(() => this.close());
  }

  /** Reads until the stream ends, handing each chunk to the sink, and waits while paused; then the end. */
  async #readLoop(sink: TransportSink): Promise<void> {
    try {
      // The BYOB read buffer: the last one again, unless the sink kept it.
      let buffer: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
      while (!this.#closed) {
        while (this.paused && !this.#closed) await this.paused;
        if (this.#closed) break;
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          if (this.#byob) {
            if (buffer.byteLength === 0) buffer = new Uint8Array(READ_SIZE);
            result = await (this.#reader as ReadableStreamBYOBReader).read(buffer);
          } else {
            result = await (this.#reader as ReadableStreamDefaultReader<Uint8Array>).read();
          }
        } catch {
          // The stream errored, or the transport was closed meanwhile: the end either way.
          result = { done: true, value: undefined };
        }
        if (result.done) {
          // The end waits behind a pause, as data does, unless close() comes first.
          while (this.paused && !this.#closed) await this.paused;
          break;
        }
        let bytes: Uint8Array;
        if (this.#byob) {
          bytes = result.value;
          // The read moved our buffer into `bytes.buffer`: read into it again unless the sink keeps it.
          buffer = new Uint8Array(bytes.buffer);
        } else {
          try {
            bytes = bytesOf(result.value);
          } catch (error) {
            // Not bytes: the stream is broken, and ends here.
            this.#reader.cancel(error).catch(() => {});
            break;
          }
          if (this.#copy) bytes = bytes.slice();
        }
        if (bytes.length === 0) continue;
        while (this.paused && !this.#closed) await this.paused;
        if (this.#closed) break;
        if (sink.data(bytes) && this.#byob) buffer = new Uint8Array(0);
      }
    } finally {
      sink.end();
    }
  }

  async write(chunks: Uint8Array[]): Promise<void> {
    if (this.#closed) throw new TypeError("cannot write: the transport is closed");
    const writes: Promise<void>[] = [];
    // Queue every chunk at once (the stream keeps their order), then wait until the sink took them all.
    for (const chunk of chunks) if (chunk.length > 0) writes.push(this.#writer.write(chunk));
    await Promise.all(writes);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // A pending read resolves done, and the sink's end() follows; bytes already queued for writing are
    // still flushed.
    this.#reader.cancel().catch(() => {});
    this.resume();
    this.#writer.close().catch(() => this.#writer.abort().catch(() => {}));
    try {
      this.#pair.close?.();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Wraps a pair of byte streams as a sock {@linkcode Transport}.
 *
 * The sink gets buffers it may keep: a byte stream is read with a BYOB
 * reader into the transport's own buffers (read into again when the sink
 * did not keep them); chunks of any other stream are copied unless
 * `options.copy` is `false`. `write()` resolves once
 * the writable stream's sink accepted every chunk (backpressure). `close()`
 * cancels the readable, closes the writable (queued bytes are still
 * delivered; it is aborted if closing fails), calls `pair.close()` if there
 * is one, and does nothing the second time.
 *
 * @category Adapters
 *
 * @param pair The streams, e.g. a Cloudflare `Socket`.
 * @param options Addresses to report, and whether to copy chunks.
 * @returns The transport. The streams are locked to it from now on.
 * @throws {TypeError} When a stream is already locked.
 *
 * @example A loopback pair: what is written is read back
 * ```ts
 * import { streamTransport } from "@sock/sock/streams";
 * import { assertEquals } from "@std/assert";
 *
 * const transport = streamTransport(new TransformStream<Uint8Array, Uint8Array>());
 * const read: string[] = [];
 * const ended = Promise.withResolvers<void>();
 * transport.start({ data: (chunk) => (read.push(new TextDecoder().decode(chunk)), false), end: ended.resolve });
 * // The write resolves once the bytes were taken, here by the reader (backpressure).
 * await transport.write([new TextEncoder().encode("hi")]);
 * transport.close();
 * await ended.promise;
 * assertEquals(read, ["hi"]);
 * ```
 */
export function streamTransport(pair: StreamPair, options: StreamTransportOptions = {}): Transport {
  return new StreamTransport(pair, options);
}

/**
 * A client-only sock {@linkcode Adapter} that opens each connection with
 * `open` and wraps the stream pair it returns with {@linkcode streamTransport}.
 * `open` receives the endpoint, `tls` included (`true` or CA certificates for
 * `wss:`); it is up to `open` to honour it. The transport's `remoteAddress`
 * is the endpoint; its `localAddress` is unknown. `listen` rejects with a
 * `TypeError`. When `open` fails, `connect` rejects with a `ConnectError`: the
 * one `open` threw, or one wrapping its error (code `UNKNOWN` unless the error
 * has a system `code` such as `ECONNREFUSED`).
 *
 * @category Adapters
 *
 * @param open Opens a connection to an endpoint and returns its streams.
 * @param options Whether to copy chunks (see {@linkcode StreamTransportOptions}).
 * @returns The adapter, for `connect(url, { adapter })`.
 *
 * @example On Cloudflare Workers, with `connect()` from `cloudflare:sockets`
 * ```ts ignore
 * import { connect as tcp } from "cloudflare:sockets";
 * import { connect } from "@sock/sock/client";
 * import { streamAdapter } from "@sock/sock/streams";
 *
 * const adapter = streamAdapter(({ hostname, port, tls }) =>
 *   Promise.resolve(tcp({ hostname, port }, { secureTransport: tls ? "on" : "off" }))
 * );
 * const ws = await connect("wss://echo.example/", { adapter });
 * await ws.send("hello");
 * ```
 */
export function streamAdapter(
  open: (endpoint: Endpoint) => Promise<StreamPair> | StreamPair,
  options: Pick<StreamTransportOptions, "copy"> = {},
): Adapter {
  return {
    name: "streams",
    listen(): Promise<Listener> {
      return Promise.reject(
        new TypeError("the streams adapter can only connect: a stream pair has nothing to listen on"),
      );
    },
    async connect(endpoint: Endpoint): Promise<Transport> {
      let pair: StreamPair;
      try {
        pair = await open(endpoint);
      } catch (error) {
        if (error instanceof ConnectError) throw error;
        const code = systemCode(error, SYSTEM_CONNECT_CODES) ?? "UNKNOWN";
        const reason = code === "UNKNOWN"
          ? (error instanceof Error ? error.message : String(error))
          : undefined;
        throw new ConnectError(code, endpoint, { reason, cause: error });
      }
      return streamTransport(pair, {
        ...options,
        remoteAddress: { hostname: endpoint.hostname, port: endpoint.port },
      });
    },
  };
}
