/**
 * The client: `connect("ws://…" | "wss://…")` over any adapter.
 *
 * @module
 */

import { type ClientEvent, ClientProtocol } from "./core/client_protocol.ts";
import { PerMessageDeflateClient, type PerMessageDeflateOptions } from "./core/deflate/permessage_deflate.ts";
import type { HandshakeResponse, HeadersInit } from "./core/handshake.ts";
import type { ProtocolEvent, ProtocolOptions } from "./core/protocol.ts";
import type { HeadLimits } from "./core/http.ts";
import { parseWebSocketUrl } from "./core/url.ts";
import { detectAdapter } from "./adapters/mod.ts";
import { Connection } from "./connection/connection.ts";
import { type ConnectionOptions, connectionSettings } from "./connection/options.ts";
import { Link } from "./connection/link.ts";
import { ConnectError, hostPort } from "./net_errors.ts";
import type { Adapter, Endpoint, Transport } from "./transport.ts";

/**
 * Options of {@linkcode connect}.
 *
 * @category Client
 */
export interface ConnectOptions extends ConnectionOptions, ProtocolOptions, HeadLimits {
  /** Subprotocols to offer. */
  subprotocols?: string[] | undefined;
  /** Extra request headers. */
  headers?: HeadersInit;
  /** The runtime adapter; detected by default. */
  adapter?: Adapter;
  /** CA certificates to trust for `wss:`. */
  caCerts?: string[];
  /**
   * Gives up on connecting and the handshake after this many ms, with a `DOMException` named
   * `TimeoutError`, as `AbortSignal.timeout()` would. Default 30000.
   */
  timeout?: number;
  /** Aborts connecting and the handshake. */
  signal?: AbortSignal;
  /**
   * Offer permessage-deflate (RFC 7692): `true` with the defaults, or the
   * settings. Default `false`.
   */
  deflate?: boolean | PerMessageDeflateOptions;
}

/**
 * The server answered the handshake with something other than 101.
 *
 * @category Errors
 *
 * @example Telling a refusal from other failures
 * ```ts
 * import { connect, HandshakeRejected, Sock } from "@sock/sock";
 * import { assertEquals, assertInstanceOf } from "@std/assert";
 *
 * const app = new Sock();
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 * const error = await connect(`ws://127.0.0.1:${port}/nowhere`).catch((e) => e);
 * assertInstanceOf(error, HandshakeRejected);
 * assertEquals(error.response.status, 404);
 * await app.close();
 * ```
 */
export class HandshakeRejected extends Error {
  /** The response status and headers. */
  readonly response: HandshakeResponse;
  /** The response body. */
  readonly body: Uint8Array;

  /** Creates the error from the server's response. */
  constructor(response: HandshakeResponse, body: Uint8Array) {
    super(`server rejected the WebSocket handshake: ${response.status} ${response.statusText}`);
    this.name = "HandshakeRejected";
    this.response = response;
    this.body = body;
  }
}

/**
 * Opens a WebSocket connection.
 *
 * @category Client
 *
 * @param url A `ws:` or `wss:` URL.
 * @param options Subprotocols, headers, TLS and the adapter.
 * @returns The open connection.
 * @throws {ConnectError} When the connection cannot be opened (refused, name not found, TLS
 *   certificate…) or is closed before the handshake finished (`ECONNRESET`); `code` tells why, the
 *   same on every runtime.
 * @throws {HandshakeRejected} When the server answers with another status.
 * @throws {TypeError} For a URL that is not `ws:`, `wss:`, `http:` or `https:`, or has a fragment.
 * @throws {RangeError} For an option out of its range.
 * @throws {ProtocolError} When the server's answer breaks RFC 6455.
 * @throws {DOMException} A `TimeoutError` once `timeout` passes (naming the host and port), or the
 *   signal's reason when aborted. The caller's own deadlines are not `ConnectError`s: `timeout` and
 *   `signal: AbortSignal.timeout(ms)` fail the same way.
 *
 * @example Echo round trip
 * ```ts ignore
 * import { connect } from "@sock/sock/client";
 *
 * const ws = await connect("ws://127.0.0.1:9001/echo");
 * await ws.send("hello");
 * console.log(await ws.receive());
 * await ws.close();
 * ```
 */
export function connect(url: string | URL, options: ConnectOptions = {}): Promise<Connection> {
  // A copy: the settings checked now are those the connection uses, whatever the caller does to
  // its object meanwhile.
  options = { ...options };
  const { signal, timeout = 30000 } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  let endpoint: Endpoint;
  try {
    endpoint = endpointOf(url, options);
    connectionSettings(options); // Every option checked before connecting.
  } catch (error) {
    return Promise.reject(error);
  }
  const gaveUp = Promise.withResolvers<never>();
  // The caller's deadline, reported as AbortSignal.timeout() would, so that both fail alike. (A
  // ConnectError ETIMEDOUT is the system giving up on a TCP connection.)
  const timer = setTimeout(() => {
    const message = `connecting to ${hostPort(endpoint)}: not open within ${timeout} ms`;
    gaveUp.reject(new DOMException(message, "TimeoutError"));
  }, timeout);
  const abort = () => gaveUp.reject(signal!.reason);
  signal?.addEventListener("abort", abort, { once: true });
  // Giving up closes the transport, which ends whatever read or write is pending.
  const attempt: Attempt = { cancelled: false, transport: undefined };
  gaveUp.promise.catch(() => {
    attempt.cancelled = true;
    attempt.transport?.close();
  });
  return Promise.race([open(url, endpoint, options, attempt), gaveUp.promise]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", abort);
  });
}

/** A connection attempt that `connect()` may give up on. */
interface Attempt {
  cancelled: boolean;
  transport: Transport | undefined;
}

/** Where a URL points: host, port and TLS settings. */
function endpointOf(url: string | URL, options: ConnectOptions): Endpoint {
  const { hostname, port, secure } = parseWebSocketUrl(url);
  return {
    hostname,
    port,
    tls: secure ? (options.caCerts ? { caCerts: options.caCerts } : true) : undefined,
  };
}

/** Closed or reset by the peer before the WebSocket handshake finished. */
function closedEarly(endpoint: Endpoint, cause?: unknown): ConnectError {
  return new ConnectError("ECONNRESET", endpoint, { reason: "during the WebSocket handshake", cause });
}

async function open(
  url: string | URL,
  endpoint: Endpoint,
  options: ConnectOptions,
  attempt: Attempt,
): Promise<Connection> {
  const { deflate } = options;
  const extensions = deflate ? [new PerMessageDeflateClient(deflate === true ? {} : deflate)] : [];
  const adapter = options.adapter ?? detectAdapter();
  const protocol = new ClientProtocol({
    ...options,
    url,
    extensions,
    // Connection tells the core when the application has answered (endings wait for its replies),
    // and reads the frames that came with the 101 within its per-turn bounds.
    holdEndings: true,
    leaveUnread: true,
  });
  // Adapters reject with a ConnectError.
  const transport = await adapter.connect(endpoint);
  attempt.transport = transport;
  if (attempt.cancelled) transport.close();
  const link = new Link(transport);
  try {
    protocol.sendRequest();
    // A write fails only once the connection is gone (reads just end, below).
    await Promise.resolve(transport.write(protocol.dataToSend())).catch((error) => {
      throw closedEarly(endpoint, error);
    });
    while (true) {
      let events: ClientEvent[] = [];
      await link.handshake((chunk) => {
        if (chunk === null) protocol.receiveEof();
        else protocol.receiveData(chunk);
        events = protocol.events();
        return events.length > 0;
      });
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!;
        if (event.type === "accepted") {
          return new Connection(protocol, link, options, events.slice(i + 1) as ProtocolEvent[]);
        }
        if (event.type === "rejected") throw new HandshakeRejected(event.response, event.body);
        if (event.type === "failed") throw event.error;
        if (event.type === "closed") throw closedEarly(endpoint);
      }
      if (link.ended) throw closedEarly(endpoint);
    }
  } catch (error) {
    link.close();
    throw error;
  }
}
