/**
 * The client: `connect("ws://…" | "wss://…")` over any adapter.
 *
 * @module
 */

import { type ClientEvent, ClientProtocol } from "./core/client_protocol.ts";
import { PerMessageDeflateClient, type PerMessageDeflateOptions } from "./core/deflate/permessage_deflate.ts";
import { type HandshakeResponse, headerPairs, type HeadersInit } from "./core/handshake.ts";
import type { ProtocolEvent, ProtocolOptions } from "./core/protocol.ts";
import type { HeadLimits } from "./core/http.ts";
import { parseWebSocketUrl, type WebSocketUrl } from "./core/url.ts";
import { detectAdapter } from "./adapters/mod.ts";
import { Connection } from "./connection/connection.ts";
import { type ConnectionOptions, connectionSettings } from "./connection/options.ts";
import { Link } from "./connection/link.ts";
import { ConnectError, hostPort } from "./net_errors.ts";
import type { Adapter, Endpoint } from "./transport.ts";
import { type Attempt, closedEarly, openTunnel, parseProxyUrl, proxyFor, send, track } from "./proxy.ts";
import { startTimer } from "./timers.ts";

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
  /**
   * The proxy to tunnel through: `"http://user:password@host:port"` (HTTP `CONNECT`; the
   * credentials, if any, go as `Proxy-Authorization: Basic`) or `"socks5://user:password@host:port"`
   * (SOCKS5, RFC 1928, with RFC 1929's user name and password; `socks5h:` alike: the proxy
   * resolves the server's name either way). `wss:` runs TLS inside the tunnel, checked against the
   * server's host. A `Proxy-Authorization` in `headers` is not sent through a tunnel (it would reach
   * the server): put the credentials in the proxy URL. `false`: never a proxy. By default, the one
   * the environment names: `HTTP_PROXY` for `ws:` (ignored when `REQUEST_METHOD` is set, as in a
   * CGI script), `HTTPS_PROXY` for `wss:`, else `ALL_PROXY` (upper case first, then lower case; a
   * value this option would refuse, such as an `https:` or `socks4:` proxy, is skipped), except for
   * hosts that `NO_PROXY` lists (names and their subdomains, addresses, networks such as
   * `10.0.0.0/8`, each with an optional `:port`, or `*`; on Deno, variables it is not allowed to
   * read count as unset). Failures are {@linkcode ConnectError}s naming the proxy:
   * `PROXY_AUTH_FAILED`, `PROXY_REFUSED` (its `cause` is `{ status, statusText }` from an HTTP
   * proxy, a `Socks5Error` with the `reply` from a SOCKS5 one), `PROXY_PROTOCOL_ERROR`, or the codes
   * of any connection (`ECONNREFUSED` when it is down). The connection's `remoteAddress` is then
   * the proxy's.
   */
  proxy?: string | URL | false | undefined;
  /**
   * Follows redirects (301, 302, 303, 307, 308 with a `Location`) to the URL they name, `http:`
   * and `https:` taken as `ws:` and `wss:`. A redirect to another origin (scheme, host or port)
   * drops the `Authorization`, `Cookie` and `Proxy-Authorization` headers; one from `wss:` to
   * `ws:` is refused, and so is a `Location` with credentials of its own (a relative one does not
   * take the first URL's). Default `false`: the redirect is a {@linkcode HandshakeRejected}.
   */
  followRedirects?: boolean | undefined;
  /** The most redirects followed before giving up (`TOO_MANY_REDIRECTS`). Default 10. */
  maxRedirects?: number | undefined;
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
    endpoint = endpointOf(parseWebSocketUrl(url), options);
    connectionSettings(options); // Every option checked before connecting.
    const { proxy, maxRedirects } = options;
    if (proxy !== undefined && proxy !== false) parseProxyUrl(proxy);
    if (maxRedirects !== undefined && !(Number.isInteger(maxRedirects) && maxRedirects >= 0)) {
      throw new RangeError(`maxRedirects must be an integer >= 0, got ${maxRedirects}`);
    }
  } catch (error) {
    return Promise.reject(error);
  }
  const gaveUp = Promise.withResolvers<never>();
  // The caller's deadline, reported as AbortSignal.timeout() would, so that both fail alike. (A
  // ConnectError ETIMEDOUT is the system giving up on a TCP connection.)
  const timer = startTimer(() => {
    const message = `connecting to ${hostPort(endpoint)}: not open within ${timeout} ms`;
    gaveUp.reject(new DOMException(message, "TimeoutError"));
  }, timeout);
  const abort = () => gaveUp.reject(signal!.reason);
  signal?.addEventListener("abort", abort, { once: true });
  // Giving up closes the transport, which ends whatever read or write is pending.
  const cancel = new AbortController();
  const attempt: Attempt = { transport: undefined, signal: cancel.signal };
  gaveUp.promise.catch((reason) => {
    attempt.transport?.close();
    cancel.abort(reason);
  });
  return Promise.race([follow(url, options, attempt), gaveUp.promise]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", abort);
  });
}

/** Where a URL points: host, port and TLS settings. */
function endpointOf({ hostname, port, secure }: WebSocketUrl, options: ConnectOptions): Endpoint {
  return {
    hostname,
    port,
    tls: secure ? (options.caCerts ? { caCerts: options.caCerts } : true) : undefined,
  };
}

/** What `closedEarly()` says of a server that closed. */
const DURING_HANDSHAKE = "during the WebSocket handshake";

/** The statuses of a redirect `followRedirects` follows. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** The headers dropped by a redirect to another origin. */
const CREDENTIALS = new Set(["authorization", "cookie", "proxy-authorization"]);
/** The header left out of a request sent through a tunnel: it is for a proxy, not the server. */
const PROXY_CREDENTIALS = new Set(["proxy-authorization"]);

/** `headers` without those named in `names` (lower case). */
function without(headers: HeadersInit | undefined, names: ReadonlySet<string>): [string, string][] {
  return headerPairs(headers).filter(([name]) => !names.has(name.toLowerCase()));
}

/** Opens the connection, following redirects when asked. */
async function follow(url: string | URL, options: ConnectOptions, attempt: Attempt): Promise<Connection> {
  const { maxRedirects = 10 } = options;
  let target = parseWebSocketUrl(url);
  const visited = new Set([target.url.href]);
  for (let redirects = 0;; redirects++) {
    attempt.signal.throwIfAborted(); // Given up on: no next hop.
    const endpoint = endpointOf(target, options);
    const result = await open(target, endpoint, options, attempt);
    if (result instanceof Connection) return result;
    const next = redirectTarget(target.url, result, endpoint);
    const nextUrl = next.url;
    if (visited.has(nextUrl.href)) {
      throw new ConnectError("TOO_MANY_REDIRECTS", endpoint, { reason: `a loop back to ${nextUrl.href}` });
    }
    if (redirects >= maxRedirects) {
      throw new ConnectError("TOO_MANY_REDIRECTS", endpoint, { reason: `more than ${maxRedirects}` });
    }
    visited.add(nextUrl.href);
    if (origin(nextUrl) !== origin(target.url)) {
      options = { ...options, headers: without(options.headers, CREDENTIALS) };
    }
    target = next;
  }
}

function origin(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

/** Where a redirect goes, checked: `http:`/`https:` become `ws:`/`wss:`, the fragment is dropped. */
function redirectTarget(from: URL, location: string, endpoint: Endpoint): WebSocketUrl {
  const bad = (reason: string) => new ConnectError("BAD_REDIRECT", endpoint, { reason });
  let url: URL;
  try {
    // Resolved against `from` without its credentials: a relative Location does not inherit them
    // (they are never sent anyway), so only credentials the Location itself names are refused.
    const base = new URL(from);
    base.username = base.password = "";
    url = new URL(location, base);
  } catch {
    throw bad(`Location is not a URL: ${JSON.stringify(location.slice(0, 200))}`);
  }
  url.hash = "";
  if (!/^(wss?|https?):$/.test(url.protocol)) throw bad(`Location has the scheme ${url.protocol}`);
  if (url.username || url.password) throw bad("Location has credentials");
  const next = parseWebSocketUrl(url);
  if (from.protocol === "wss:" && !next.secure) {
    throw new ConnectError("INSECURE_REDIRECT", endpoint, { reason: `to ${next.url.href}` });
  }
  return next;
}

/**
 * Opens one connection and does the opening handshake: the connection, or where a redirect points
 * when `followRedirects` is set.
 */
async function open(
  target: WebSocketUrl,
  endpoint: Endpoint,
  options: ConnectOptions,
  attempt: Attempt,
): Promise<Connection | string> {
  const { deflate } = options;
  const url = target.url;
  const extensions = deflate ? [new PerMessageDeflateClient(deflate === true ? {} : deflate)] : [];
  const adapter = options.adapter ?? detectAdapter();
  const proxy = proxyFor(options.proxy, target, adapter);
  const protocol = new ClientProtocol({
    ...options,
    headers: proxy ? without(options.headers, PROXY_CREDENTIALS) : options.headers,
    url,
    extensions,
    // Connection tells the core when the application has answered (endings wait for its replies),
    // and reads the frames that came with the 101 within its per-turn bounds.
    holdEndings: true,
    leaveUnread: true,
  });
  let link: Link;
  if (proxy) {
    const tls = endpoint.tls ? { caCerts: options.caCerts } : undefined;
    link = await openTunnel(
      adapter,
      proxy,
      { hostname: endpoint.hostname, port: endpoint.port, tls },
      attempt,
    );
  } else {
    // Adapters reject with a ConnectError.
    link = new Link(track(attempt, await adapter.connect(endpoint)));
  }
  try {
    protocol.sendRequest();
    // A write fails only once the connection is gone (reads just end, below).
    await send(link, protocol.dataToSend(), endpoint, DURING_HANDSHAKE);
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
        if (event.type === "rejected") {
          const location = event.response.headers.get("location");
          if (options.followRedirects && REDIRECTS.has(event.response.status) && location !== null) {
            link.close();
            return location;
          }
          throw new HandshakeRejected(event.response, event.body);
        }
        if (event.type === "failed") throw event.error;
        if (event.type === "closed") throw closedEarly(endpoint, DURING_HANDSHAKE);
      }
      if (link.ended) throw closedEarly(endpoint, DURING_HANDSHAKE);
    }
  } catch (error) {
    link.close();
    throw error;
  }
}
