/**
 * The Deno adapter: `Deno.listen`, `Deno.listenTls`, `Deno.connect` and
 * `Deno.connectTls` as sock transports.
 *
 * @module
 */

import type {
  Adapter,
  Endpoint,
  Listener,
  NetAddress,
  RuntimeHints,
  StartTlsOptions,
  Transport,
  TransportSink,
} from "../transport.ts";
import {
  ConnectError,
  type ConnectErrorCode,
  ListenError,
  type ListenErrorCode,
  messageOf,
  SYSTEM_CONNECT_CODES,
  systemCode,
} from "../net_errors.ts";
import { Pausable } from "./pausable.ts";

/** The read buffer of a connection receiving little: all an idle connection holds. */
const SMALL_READ_SIZE = 1024;
/**
 * The largest read buffer: bulk data is read in large pieces. Each read that fills its buffer
 * makes the next one 16 times larger, up to this.
 */
const READ_SIZE = 262144;
/** After a read smaller than this, reading goes back to the small buffer. */
const SHRINK_BELOW = 4096;
/** How long accepting pauses after an unexpected accept error, in ms. */
const ACCEPT_RETRY_MS = 100;

const LISTEN_CODES: ListenErrorCode[] = ["EADDRINUSE", "EADDRNOTAVAIL", "EACCES"];
/** A failed name lookup is a plain `Error` on Deno, with no code: its message tells. */
const LOOKUP_FAILED = /failed to lookup address/i;

/**
 * A failure of `Deno.connect`, `Deno.connectTls` or (`duringTls`) the TLS handshake in sock's terms.
 * TLS failures are told apart by rustls' reason (Deno has one error class for all of them):
 * `UnknownIssuer`, `NotValidForName` ("certificate not valid for name"), `Expired` or `NotValidYet`.
 */
function connectFailed(error: unknown, endpoint: Endpoint, duringTls: boolean): ConnectError {
  const reason = messageOf(error);
  const { errors } = Deno;
  // Deno puts a system error code on many of its errors.
  let code: ConnectErrorCode = systemCode(error, SYSTEM_CONNECT_CODES) ??
    (error instanceof errors.ConnectionRefused
      ? "ECONNREFUSED"
      : error instanceof errors.TimedOut
      ? "ETIMEDOUT"
      : error instanceof errors.ConnectionReset || error instanceof errors.UnexpectedEof ||
          error instanceof errors.BrokenPipe || error instanceof errors.ConnectionAborted
      ? "ECONNRESET"
      : LOOKUP_FAILED.test(reason)
      ? "ENOTFOUND"
      : "UNKNOWN");
  if (code === "ECONNRESET") {
    return new ConnectError(code, endpoint, {
      reason: duringTls ? "during the TLS handshake" : undefined,
      cause: error,
    });
  }
  if (code === "UNKNOWN" && duringTls) {
    code = /UnknownIssuer|self.signed/i.test(reason)
      ? "CERT_UNTRUSTED"
      : /NotValidForName|not valid for name/i.test(reason)
      ? "CERT_HOSTNAME_MISMATCH"
      : /expired|NotValidYet|not valid yet/i.test(reason)
      ? "CERT_EXPIRED"
      : "TLS_HANDSHAKE_FAILED";
  }
  // The runtime's reason where the code alone does not say it all: TLS, and the unexpected.
  const telling = code === "UNKNOWN" || code.startsWith("CERT_") || code === "TLS_HANDSHAKE_FAILED";
  return new ConnectError(code, endpoint, { reason: telling ? reason : undefined, cause: error });
}

/** A failure of `Deno.listen` or `Deno.listenTls` in sock's terms. */
function listenFailed(error: unknown, endpoint: Endpoint): ListenError {
  const reason = messageOf(error);
  const { errors } = Deno;
  const code: ListenErrorCode = systemCode(error, LISTEN_CODES) ??
    (error instanceof errors.AddrInUse
      ? "EADDRINUSE"
      : error instanceof errors.AddrNotAvailable
      ? "EADDRNOTAVAIL"
      : LOOKUP_FAILED.test(reason)
      ? "ENOTFOUND"
      : "UNKNOWN");
  return new ListenError(code, endpoint, { reason: code === "UNKNOWN" ? reason : undefined, cause: error });
}

function address(addr: Deno.Addr | undefined): NetAddress | undefined {
  return addr && "hostname" in addr ? { hostname: addr.hostname, port: addr.port } : undefined;
}

/** Deno does a `TextDecoder` call as an op, costlier than decoding a short text in script. */
const HINTS: RuntimeHints = { scriptedTextDecoding: true };

class DenoTransport extends Pausable implements Transport {
  #conn: Deno.Conn;
  #closed = false;
  /** Handed over to `startTls()`: the read loop ends without a word to the sink. */
  #detached = false;
  readonly hints: RuntimeHints = HINTS;
  readonly remoteAddress: NetAddress | undefined;
  readonly localAddress: NetAddress | undefined;

  constructor(conn: Deno.Conn) {
    super();
    this.#conn = conn;
    // Frames go out at once, not held back by Nagle's algorithm (Bun and Deno's own servers do the same).
    try {
      (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    } catch {
      // Closed by the peer already: reads and writes will say so.
    }
    this.remoteAddress = address(conn.remoteAddr);
    this.localAddress = address(conn.localAddr);
  }

  start(sink: TransportSink): void {
    void this.#readLoop(sink);
  }

  /**
   * Reads until the end of the stream, handing each chunk to the sink; while paused, what was read
   * (the end of the stream too) waits for `resume()`, unless `close()` comes first. Never rejects:
   * a sink that throws ends the connection (after its `end()`), not the process, with no handler
   * held for it meanwhile (a closure, a promise and a reaction per idle connection).
   */
  async #readLoop(sink: TransportSink): Promise<void> {
    try {
      // The buffer to read into next: the last one, unless the sink kept it.
      let buffer = new Uint8Array(SMALL_READ_SIZE);
      try {
        while (!this.#closed) {
          let n: number | null;
          try {
            n = await this.#conn.read(buffer);
          } catch {
            n = null;
          }
          while (this.paused && !this.#closed) await this.paused;
          if (n === null || this.#closed) break;
          // The buffer is handed over without a copy (on Deno, allocating even a small buffer costs
          // more than the rest of the read); the next read goes into it again unless the sink kept
          // it (bench (c) on Deno about +15% against a new buffer per read), else into a new one:
          // larger once reads fill their buffer, the small one again once they are small. A kept
          // buffer is replaced by one the size of this read, not of the largest: a fresh buffer is
          // zeroed, and bulk reads that keep theirs (64 KiB messages delivered in place) zeroed
          // 256 KiB each (bench (c) on Deno: 78 -> 68 µs of server CPU per message, medians of 5).
          const kept = sink.data(buffer.subarray(0, n));
          const size = n === buffer.length
            ? Math.min(buffer.length * 16, READ_SIZE)
            : n < SHRINK_BELOW
            ? SMALL_READ_SIZE
            : kept
            ? n
            : buffer.length;
          if (kept || size !== buffer.length) buffer = new Uint8Array(size);
          while (this.paused && !this.#closed) await this.paused;
        }
      } finally {
        if (!this.#detached) sink.end();
      }
    } catch {
      this.close();
    }
  }

  /**
   * Hands the connection over (to `Deno.startTls()`): the read loop, paused with no read pending,
   * ends without a word to the sink, and `close()` no longer touches the connection.
   */
  detach(): Deno.Conn {
    this.#detached = true;
    this.#closed = true;
    this.resume();
    return this.#conn;
  }

  write(chunks: Uint8Array[]): Promise<void> {
    // One buffer written whole, the usual case: no async function around the op.
    if (chunks.length !== 1) return this.#writeAll(chunks);
    const chunk = chunks[0]!;
    try {
      return this.#conn.write(chunk).then((n) =>
        n < chunk.length ? this.#writeAll([chunk.subarray(n)]) : undefined
      );
    } catch (error) {
      // A closed socket may throw at once: callers see a rejection either way.
      return Promise.reject(error);
    }
  }

  async #writeAll(chunks: Uint8Array[]): Promise<void> {
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) at += await this.#conn.write(chunk.subarray(at));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
    // A read loop waiting for resume ends now; one waiting for a read ends as the read fails.
    this.resume();
  }
}

/**
 * Deno's sockets as a sock {@linkcode Adapter}.
 *
 * @category Adapters
 *
 * @example Listening and connecting on loopback
 * ```ts
 * import { denoAdapter } from "@sock/sock/deno";
 * import { assertEquals } from "@std/assert";
 *
 * const listener = await denoAdapter.listen({ hostname: "127.0.0.1", port: 0 }, async (transport) => {
 *   await transport.write([new TextEncoder().encode("hi")]);
 *   transport.close();
 * });
 * const client = await denoAdapter.connect(listener.address);
 * const received = Promise.withResolvers<string>();
 * client.start({
 *   data: (chunk) => (received.resolve(new TextDecoder().decode(chunk)), false),
 *   end: () => {},
 * });
 * assertEquals(await received.promise, "hi");
 * client.close();
 * listener.close();
 * ```
 */
export const denoAdapter: Adapter = {
  name: "deno",
  listen(endpoint: Endpoint, onConnection: (transport: Transport) => void): Promise<Listener> {
    const { hostname, port, tls } = endpoint;
    // Only when asked: Deno refuses the option without --unstable-net, even when false.
    const reuse = endpoint.reusePort ? { reusePort: true } : {};
    let listener: Deno.Listener;
    try {
      listener = tls && typeof tls === "object" && "cert" in tls
        ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key, ...reuse })
        : Deno.listen({ hostname, port, ...reuse });
    } catch (error) {
      return Promise.reject(listenFailed(error, endpoint));
    }
    let closed = false;
    (async () => {
      while (!closed) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch (error) {
          if (closed || error instanceof Deno.errors.BadResource) return;
          // A client that reset its connection before it was accepted fails this accept only
          // (ENOTCONN, ECONNABORTED); anything else, such as running out of file descriptors,
          // pauses accepting briefly rather than spinning.
          if (
            !(error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.ConnectionAborted)
          ) {
            await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
          }
          continue;
        }
        onConnection(new DenoTransport(conn));
      }
    })();
    return Promise.resolve({
      address: address(listener.addr)!,
      close() {
        closed = true;
        try {
          listener.close();
        } catch {
          // Already closed.
        }
      },
    });
  },
  async connect(endpoint: Endpoint): Promise<Transport> {
    const { hostname, port, tls } = endpoint;
    let conn: Deno.Conn | undefined;
    let duringTls = false;
    try {
      if (!tls) return new DenoTransport(await Deno.connect({ hostname, port }));
      const caCerts = typeof tls === "object" && "caCerts" in tls ? tls.caCerts : undefined;
      const tlsConn = await Deno.connectTls(
        caCerts === undefined ? { hostname, port } : { hostname, port, caCerts },
      );
      conn = tlsConn;
      duringTls = true;
      // The handshake here rather than on the first write, so that a certificate error is a
      // connect error, as on Bun (whose sockets open after the handshake).
      await tlsConn.handshake();
      return new DenoTransport(tlsConn);
    } catch (error) {
      try {
        conn?.close();
      } catch {
        // Closed already.
      }
      throw connectFailed(error, endpoint, duringTls);
    }
  },
  async startTls(transport: Transport, options: StartTlsOptions): Promise<Transport> {
    const { hostname, port, caCerts, signal } = options;
    if (!(transport instanceof DenoTransport)) {
      throw new TypeError("startTls() takes a connection from denoAdapter.connect()");
    }
    const conn = transport.detach() as Deno.TcpConn;
    let tlsConn: Deno.TlsConn | undefined;
    const close = () => {
      try {
        (tlsConn ?? conn).close();
      } catch {
        // Closed already.
      }
    };
    signal?.addEventListener("abort", close, { once: true });
    try {
      signal?.throwIfAborted();
      tlsConn = await Deno.startTls(conn, caCerts === undefined ? { hostname } : { hostname, caCerts });
      await tlsConn.handshake();
      signal?.throwIfAborted();
      return new DenoTransport(tlsConn);
    } catch (error) {
      close();
      throw signal?.aborted ? signal.reason : connectFailed(error, { hostname, port }, true);
    } finally {
      signal?.removeEventListener("abort", close);
    }
  },
  env(name: string): string | undefined {
    // Not allowed to read it (no --allow-env): as if not set, without prompting for it.
    try {
      if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  },
};
