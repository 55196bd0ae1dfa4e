/**
 * The Bun adapter: `Bun.listen` and `Bun.connect`, with and without TLS, as
 * sock transports. Bun pushes data to callbacks; this adapter hands it on to
 * the sink, holds it while the sink pauses (and pauses the socket), and
 * finishes partial writes on `drain`.
 *
 * @module
 */

import { byteLength } from "../core/bytes.ts";
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

/** The parts of Bun's socket API used here, declared locally instead of depending on bun-types. */
interface BunSocket {
  data: BunTransport | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
  /** Starts TLS on this socket; the TLS socket calls `socket`'s callbacks. */
  upgradeTLS(options: {
    tls: { ca?: string[] | undefined; serverName: string };
    socket: BunSocketHandler;
  }): unknown;
}

interface BunSocketHandler {
  binaryType: "uint8array";
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  /** The peer sent FIN; with `allowHalfOpen`, the socket stays open for writing. */
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
  connectError(socket: BunSocket, error: Error): void;
  /** TLS only. When present, Bun calls `open` before the TLS handshake, and this after it. */
  handshake?(socket: BunSocket, success: boolean, authorizationError: Error | null): void;
}

interface BunListenerLike {
  readonly hostname: string;
  readonly port: number;
  stop(closeActive?: boolean): void;
}

interface BunApi {
  env: Record<string, string | undefined>;
  listen(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string } | undefined;
    allowHalfOpen: boolean;
    reusePort?: boolean | undefined;
    socket: BunSocketHandler;
  }): BunListenerLike;
  connect(options: {
    hostname: string;
    port: number;
    tls?: boolean | { ca?: string[] | undefined } | undefined;
    allowHalfOpen: boolean;
    socket: BunSocketHandler;
  }): Promise<BunSocket>;
}

const bun = () => (globalThis as unknown as { Bun: BunApi }).Bun;

const LISTEN_CODES: ListenErrorCode[] = ["EADDRINUSE", "EADDRNOTAVAIL", "EACCES", "ENOTFOUND"];
/** Bun's (OpenSSL's and Node's) codes for certificate errors, by sock's code. */
const CERT_CODES: [ConnectErrorCode, string[]][] = [
  ["CERT_UNTRUSTED", [
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_GET_ISSUER_CERT",
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "CERT_UNTRUSTED",
  ]],
  ["CERT_HOSTNAME_MISMATCH", ["ERR_TLS_CERT_ALTNAME_INVALID", "HOSTNAME_MISMATCH"]],
  ["CERT_EXPIRED", ["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]],
];

/** A failure of `Bun.connect` in sock's terms. */
function connectFailed(error: unknown, endpoint: Endpoint): ConnectError {
  // Bun puts Node's system error `code` on its errors.
  const code = systemCode(error, SYSTEM_CONNECT_CODES) ?? "UNKNOWN";
  return new ConnectError(code, endpoint, {
    reason: code === "UNKNOWN" ? messageOf(error) : undefined,
    cause: error,
  });
}

/** A failed TLS handshake, from what Bun's `handshake` callback reports, in sock's terms. */
function handshakeFailed(error: Error | null, endpoint: Endpoint): ConnectError {
  const bunCode = (error as { code?: unknown } | null)?.code;
  if (bunCode === "ECONNRESET") {
    return new ConnectError("ECONNRESET", endpoint, { reason: "during the TLS handshake", cause: error });
  }
  const code = CERT_CODES.find(([, codes]) => codes.includes(bunCode as string))?.[0] ??
    "TLS_HANDSHAKE_FAILED";
  const reason = error
    ? (typeof bunCode === "string" ? `${bunCode}: ${error.message}` : error.message)
    : undefined;
  return new ConnectError(code, endpoint, { reason, cause: error ?? undefined });
}

/** A failure of `Bun.listen` in sock's terms (Bun's own message names the address but not the port). */
function listenFailed(error: unknown, endpoint: Endpoint): ListenError {
  const code = systemCode(error, LISTEN_CODES) ?? "UNKNOWN";
  return new ListenError(code, endpoint, {
    reason: code === "UNKNOWN" ? messageOf(error) : undefined,
    cause: error,
  });
}

/** Bytes held before the sink starts beyond which the socket pauses until it does. */
const HIGH_WATER = 1 << 20;

/** On JavaScriptCore a view of a fresh buffer costs more than a copy of a small message. */
const HINTS: RuntimeHints = { copySmallMessages: true };

/** How far the end of input got. */
const enum End {
  None,
  /** Nothing more to read: the peer sent FIN, or the socket closed. */
  Received,
  /** The sink was told. */
  Delivered,
}

class BunTransport implements Transport {
  #socket: BunSocket;
  #sink: TransportSink | undefined;
  /** What arrived while paused (or before `start()`), in order; made on first use. */
  #held: Uint8Array[] | undefined;
  /** Paused by the sink: chunks are held. */
  #paused = false;
  /** The socket itself is paused (Bun reads nothing more from the kernel). */
  #socketPaused = false;
  #end = End.None;
  /** The socket closed: nothing can be written either. */
  #closed = false;
  /** Closed by `close()`: what is held is dropped, and the end goes to the sink even while paused. */
  #dropped = false;
  /** Buffers Bun has not taken yet, waiting for `drain` (made on first use: Bun usually takes all). */
  #pending: Uint8Array[] | undefined;
  /** Settles once Bun took every pending buffer (or the socket closed): every waiting write's promise. */
  #drained: PromiseWithResolvers<void> | undefined;
  // A transport has 12 fields, not 15, where JavaScriptCore stores 12 in 112 bytes and 15 in 160:
  // `hints` is a getter, the end one field of three states, and what is held summed when needed.
  get hints(): RuntimeHints {
    return HINTS;
  }
  // Read at once, though each costs a system call: Bun forgets them once the socket closes.
  readonly remoteAddress: NetAddress | undefined;
  readonly localAddress: NetAddress | undefined;

  constructor(socket: BunSocket, local: NetAddress) {
    this.#socket = socket;
    this.remoteAddress = { hostname: socket.remoteAddress, port: socket.remotePort };
    this.localAddress = local;
  }

  start(sink: TransportSink): void {
    this.#sink = sink;
    this.#deliver();
  }

  /** Bun's `data` callback: each call brings a fresh buffer, handed over as is. */
  push(bytes: Uint8Array): void {
    if (this.#dropped) return;
    // Straight to the sink, unless it paused or earlier chunks still wait (order is kept).
    if (this.#sink && !this.#paused && !this.#held?.length) return this.#give(bytes);
    const held = this.#held ??= [];
    held.push(bytes);
    // Summed only while not paused: chunks are held then only before `start()` (in the turn the
    // socket opened) or while earlier ones are being delivered.
    if (this.#paused || byteLength(held) > HIGH_WATER) this.#pauseSocket();
  }

  /**
   * Bun's `end`: the peer sent FIN. Reading is over, but the socket stays open for writing (it
   * listens and connects half-open), so replies to what the peer sent last can still go out.
   */
  eof(): void {
    if (this.#end !== End.None) return;
    this.#end = End.Received;
    this.#deliver();
  }

  /**
   * Bun's `close` or `error`: the socket is gone, and a write waiting for `drain` is over too. What
   * was read before still reaches the sink, then the end.
   */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = undefined;
    this.#settleWrites();
    this.eof();
  }

  /** Hands the sink what was held while it does not pause, then the end of the stream. */
  #deliver(): void {
    const sink = this.#sink;
    if (!sink) return;
    const held = this.#held;
    // Stops as soon as the sink pauses or closes (from inside `data()`).
    while (!this.#paused && this.#held === held && held?.length) {
      this.#give(held.shift()!);
    }
    if (!this.#paused && this.#socketPaused && this.#end === End.None) {
      this.#socketPaused = false;
      this.#socket.resume();
    }
    // Once what came before it was taken (at once after close()). Later, not from inside close(),
    // which the sink may have called while handling a chunk.
    if (this.#end === End.Received && (this.#dropped || (!this.#paused && !this.#held?.length))) {
      this.#end = End.Delivered;
      queueMicrotask(() => sink.end());
    }
  }

  /** One chunk to the sink; a sink that throws ends the connection rather than Bun's callback. */
  #give(bytes: Uint8Array): void {
    try {
      this.#sink!.data(bytes);
    } catch {
      this.close();
    }
  }

  #pauseSocket(): void {
    if (this.#socketPaused || this.#end !== End.None) return;
    this.#socketPaused = true;
    this.#socket.pause();
  }

  /**
   * Holds chunks from now on; the socket itself pauses only once one arrives. A pause that ends
   * before more data comes (the usual case: between the opening handshake and the open
   * connection) then costs no system call, where pausing and resuming the socket cost two
   * (`epoll_ctl`) per connection (with the synchronous SHA-1 of the same commit, bench (e) on Bun
   * 7,570 -> 8,678 handshakes/s over 3 rounds; within noise over 7).
   */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#deliver();
  }

  write(chunks: Uint8Array[]): Promise<void> | void {
    if (this.#closed) return; // Reading reports it.
    if (this.#pending) {
      for (const chunk of chunks) this.#pending.push(chunk);
    } else {
      for (let i = 0; i < chunks.length; i++) {
        const chunk = chunks[i]!;
        const written = this.#socket.write(chunk);
        if (written === chunk.length) continue;
        if (written < 0) return; // Closed: reading reports it.
        this.#pending = chunks.slice(i);
        this.#pending[0] = chunk.subarray(written);
        break;
      }
      if (!this.#pending) return;
    }
    return (this.#drained ??= Promise.withResolvers()).promise;
  }

  /** Bun's `drain`: writes what Bun takes of what waits; the rest waits for the next. */
  drain(): void {
    const pending = this.#pending;
    while (pending && pending.length > 0) {
      const chunk = pending[0]!;
      const written = this.#socket.write(chunk);
      if (written < 0) break;
      if (written < chunk.length) {
        pending[0] = chunk.subarray(written);
        return;
      }
      pending.shift();
    }
    this.#pending = undefined;
    this.#settleWrites();
  }

  #settleWrites(): void {
    const drained = this.#drained;
    this.#drained = undefined;
    drained?.resolve();
  }

  /**
   * Hands the socket over (to `upgradeTLS()`): its callbacks no longer reach this transport, and
   * `close()` no longer touches it.
   *
   * @returns The socket, or `undefined` when bytes came after the pause (nothing may come before
   *   the TLS handshake).
   */
  detach(): BunSocket | undefined {
    if (this.#dropped || this.#held?.length) return undefined;
    this.#dropped = true;
    this.#closed = true;
    this.#sink = undefined;
    this.#socket.data = undefined;
    if (this.#socketPaused) this.#socket.resume();
    return this.#socket;
  }

  close(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#held = undefined;
    if (!this.#closed) this.#socket.end();
    this.closed();
    this.#deliver(); // The end, even when paused, or when the socket had closed already.
  }
}

function handler(
  local: (socket: BunSocket) => NetAddress,
  onOpen: (transport: BunTransport) => void,
): BunSocketHandler {
  return {
    // Plain Uint8Arrays rather than Buffers, so messages are the same type on every runtime.
    binaryType: "uint8array",
    open(socket) {
      socket.data = new BunTransport(socket, local(socket));
      onOpen(socket.data);
    },
    // Bun.connect() rejects with the same error, which connect() maps.
    connectError: () => {},
    data: (socket, data) => socket.data?.push(data),
    drain: (socket) => socket.data?.drain(),
    end: (socket) => socket.data?.eof(),
    close: (socket) => socket.data?.closed(),
    error: (socket) => socket.data?.closed(),
  };
}

/**
 * The callbacks of a socket being opened, and the transport they give once the TCP connection and,
 * with `tls`, the TLS handshake are done (with TLS that may come after `Bun.connect()` resolves),
 * or the error that stopped it.
 */
function opening(
  endpoint: Endpoint,
  tls: boolean,
  local: (socket: BunSocket) => NetAddress,
): { handlers: BunSocketHandler; opened: Promise<BunTransport> } {
  const opened = Promise.withResolvers<BunTransport>();
  let settled = false;
  const open = (transport: BunTransport) => {
    settled = true;
    opened.resolve(transport);
  };
  const fail = (error: () => ConnectError) => {
    if (settled) return;
    settled = true;
    opened.reject(error());
  };
  // When Bun.connect() itself rejects, nobody awaits `opened`: keep its rejection handled.
  opened.promise.catch(() => {});
  const handlers = handler(local, tls ? () => {} : open);
  const { close, error } = handlers;
  // Closed, or failed, before it opened (TLS: before the handshake finished): reset by the peer.
  handlers.close = (socket, cause) => {
    close(socket, cause);
    fail(() =>
      new ConnectError("ECONNRESET", endpoint, {
        reason: tls ? "during the TLS handshake" : undefined,
        cause,
      })
    );
  };
  handlers.error = (socket, cause) => {
    error(socket, cause);
    fail(() => tls ? handshakeFailed(cause, endpoint) : connectFailed(cause, endpoint));
  };
  // With this callback, Bun calls `open` before the TLS handshake and tells here how it went: the
  // only place that says why a certificate was refused (without it, the socket just closes).
  handlers.handshake = (socket, success, authorizationError) => {
    if (success && !authorizationError) return open(socket.data!);
    fail(() => handshakeFailed(authorizationError, endpoint));
    socket.end();
  };
  return { handlers, opened: opened.promise };
}

/**
 * Bun's sockets as a sock {@linkcode Adapter}.
 *
 * @category Adapters
 *
 * @example Listening and connecting on loopback (under Bun)
 * ```ts ignore
 * import { bunAdapter } from "@sock/sock/bun";
 *
 * const listener = await bunAdapter.listen({ hostname: "127.0.0.1", port: 0 }, async (transport) => {
 *   await transport.write([new TextEncoder().encode("hi")]);
 *   transport.close();
 * });
 * const client = await bunAdapter.connect(listener.address);
 * client.start({
 *   data: (chunk) => (console.log(new TextDecoder().decode(chunk)), false), // "hi"
 *   end: () => client.close(),
 * });
 * ```
 */
export const bunAdapter: Adapter = {
  name: "bun",
  listen(endpoint: Endpoint, onConnection: (transport: Transport) => void): Promise<Listener> {
    const { hostname, port, tls } = endpoint;
    // Every accepted connection's local address is the listener's: one object for all, and no
    // getsockname() per connection.
    let local: NetAddress | undefined;
    let listener: BunListenerLike;
    try {
      listener = bun().listen({
        hostname,
        port,
        tls: tls && typeof tls === "object" && "cert" in tls ? { cert: tls.cert, key: tls.key } : undefined,
        allowHalfOpen: true, // After the peer's FIN, replies to what it sent last can still go out.
        reusePort: endpoint.reusePort,
        socket: handler(
          () => local ??= Object.freeze({ hostname: listener.hostname, port: listener.port }),
          onConnection,
        ),
      });
    } catch (error) {
      return Promise.reject(listenFailed(error, endpoint));
    }
    return Promise.resolve({
      address: { hostname: listener.hostname, port: listener.port },
      close: () => listener.stop(false),
    });
  },
  async connect(endpoint: Endpoint): Promise<Transport> {
    const { hostname, port, tls } = endpoint;
    const { handlers, opened } = opening(
      endpoint,
      Boolean(tls),
      (socket) => ({ hostname, port: socket.localPort }),
    );
    try {
      await bun().connect({
        hostname,
        port,
        tls: tls ? (typeof tls === "object" && "caCerts" in tls ? { ca: tls.caCerts } : true) : undefined,
        allowHalfOpen: true,
        socket: handlers,
      });
    } catch (error) {
      throw connectFailed(error, endpoint);
    }
    return opened;
  },
  startTls(transport: Transport, options: StartTlsOptions): Promise<Transport> {
    const { hostname, port, caCerts, signal } = options;
    const endpoint = { hostname, port };
    if (!(transport instanceof BunTransport)) {
      return Promise.reject(new TypeError("startTls() takes a connection from bunAdapter.connect()"));
    }
    const socket = transport.detach();
    if (!socket) {
      transport.close();
      return Promise.reject(
        new ConnectError("TLS_HANDSHAKE_FAILED", endpoint, { reason: "bytes came before the TLS handshake" }),
      );
    }
    const local = transport.localAddress!;
    const { handlers, opened } = opening(endpoint, true, () => local);
    let sockets: BunSocket[] = [socket];
    const close = () => sockets.forEach((s) => s.end());
    if (signal?.aborted) {
      close();
      return Promise.reject(signal.reason);
    }
    try {
      sockets = socket.upgradeTLS({
        tls: { ca: caCerts, serverName: hostname },
        socket: handlers,
      }) as BunSocket[];
    } catch (error) {
      close();
      return Promise.reject(handshakeFailed(error as Error, endpoint));
    }
    signal?.addEventListener("abort", close, { once: true });
    // Aborted: the closed socket's ECONNRESET is reported as the signal's reason, as on Deno.
    return opened.catch((error) => Promise.reject(signal?.aborted ? signal.reason : error))
      .finally(() => signal?.removeEventListener("abort", close));
  },
  env(name: string): string | undefined {
    return bun().env[name];
  },
};
