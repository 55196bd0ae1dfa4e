/**
 * The client's way through a proxy: which proxy a URL uses (the `proxy` option, else the
 * environment through the adapter), and the tunnel (HTTP `CONNECT` or SOCKS5), with TLS to the
 * server inside it.
 *
 * @module
 */

import {
  ConnectResponseReader,
  formatConnectRequest,
  proxyFromEnv,
  socks5Credentials,
  Socks5Error,
  Socks5Handshake,
  type TunnelTarget,
} from "./core/proxy.ts";
import { unbracket } from "./core/url.ts";
import { Link } from "./connection/link.ts";
import { ConnectError, hostPort } from "./net_errors.ts";
import type { Adapter, NetAddress, Transport } from "./transport.ts";

/** A proxy URL, checked and taken apart. */
export interface ProxyServer extends NetAddress {
  /** `http:` (CONNECT) or `socks5:`/`socks5h:` (both let the proxy resolve the target's name). */
  protocol: "http" | "socks5";
  /** The user name and password from the URL, percent-decoded. */
  credentials: { username: string; password: string } | undefined;
}

/** A connection attempt that `connect()` may give up on: it closes the transport of the moment. */
export interface Attempt {
  transport: Transport | undefined;
  /** Aborted once `connect()` gives up: ends a TLS handshake under way. */
  signal: AbortSignal;
}

/** Makes `transport` the attempt's current one, closed at once if the attempt was given up on. */
export function track<T extends Transport>(attempt: Attempt, transport: T): T {
  attempt.transport = transport;
  if (attempt.signal.aborted) transport.close();
  return transport;
}

/** The peer at `at` closed (or reset) the connection `during` a handshake. */
export function closedEarly(at: NetAddress, during: string, cause?: unknown): ConnectError {
  return new ConnectError("ECONNRESET", at, { reason: during, cause });
}

/** Writes to the peer at `at`; a failed write means it closed `during` a handshake. */
export async function send(link: Link, chunks: Uint8Array[], at: NetAddress, during: string): Promise<void> {
  await Promise.resolve(link.transport.write(chunks)).catch((error) => {
    throw closedEarly(at, during, error);
  });
}

/**
 * Reads a proxy URL: `http://[user:password@]host[:port]` (port 80 by default) or
 * `socks5://[user:password@]host[:port]` (`socks5h:` alike; port 1080 by default); a bare
 * `host:port`, as environment variables often hold, is taken as `http:`.
 *
 * @throws {TypeError} For anything else (`https:` proxies are not supported), or credentials that
 *   cannot be sent: bad percent-encoding, CR, LF or NUL, or for SOCKS5 an empty user name or
 *   password (RFC 1929 needs both). The message never shows the credentials.
 */
export function parseProxyUrl(proxy: string | URL): ProxyServer {
  const text = String(proxy);
  // Up to the last "@": a password may hold a "/" that ends the authority for the URL parser.
  const bad = (why: string) =>
    new TypeError(`${why}: ${text.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, "$1…@")}`);
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw bad("invalid proxy URL");
  }
  const socks = url.protocol === "socks5:" || url.protocol === "socks5h:";
  if (url.protocol !== "http:" && !socks) {
    throw new TypeError(`unsupported proxy scheme ${url.protocol}; use an http: or socks5: proxy`);
  }
  let credentials;
  if (url.username || url.password) {
    try {
      credentials = {
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      };
    } catch {
      throw bad("invalid percent-encoding in the proxy URL's credentials");
    }
    if (/[\r\n\0]/.test(credentials.username + credentials.password)) {
      throw bad("CR, LF or NUL in the proxy URL's credentials");
    }
    if (socks) socks5Credentials(credentials);
  }
  const port = url.port ? Number(url.port) : socks ? 1080 : 80;
  return { protocol: socks ? "socks5" : "http", hostname: unbracket(url.hostname), port, credentials };
}

/** A proxy URL from the environment, or `undefined` for one this client cannot use. */
function parseOrSkip(proxy: string): ProxyServer | undefined {
  try {
    return parseProxyUrl(proxy);
  } catch {
    return undefined;
  }
}

/**
 * The proxy a WebSocket URL goes through: the `proxy` option when given (`false`: none), else the
 * one the environment names, when the adapter can read it. A variable this client cannot use (an
 * `https:` or `socks4:` proxy, not a URL) is skipped, as Deno's `fetch` does; the same value given
 * as the option is a `TypeError`.
 */
export function proxyFor(
  option: string | URL | false | undefined,
  target: { secure: boolean; hostname: string; port: number },
  adapter: Adapter,
): ProxyServer | undefined {
  if (option === false) return undefined;
  if (option !== undefined) return parseProxyUrl(option);
  const env = adapter.env;
  if (!env) return undefined;
  const fromEnv = proxyFromEnv(target, (name) => env.call(adapter, name), (value) => !!parseOrSkip(value));
  return fromEnv ? parseOrSkip(fromEnv) : undefined;
}

/**
 * Opens a tunnel to `target` through `proxy` (HTTP `CONNECT` or SOCKS5), then TLS inside it for `wss:` (the
 * certificate checked against the target's host).
 *
 * @returns A link on the tunnel, not started yet (TLS) or paused (plain).
 * @throws {ConnectError} Naming the proxy for its failures, the target for TLS's.
 */
export async function openTunnel(
  adapter: Adapter,
  proxy: ProxyServer,
  target: TunnelTarget & { tls: { caCerts?: string[] | undefined } | undefined },
  attempt: Attempt,
): Promise<Link> {
  const at: NetAddress = { hostname: proxy.hostname, port: proxy.port };
  // The adapter's errors name the proxy; so do these.
  const transport = track(attempt, await adapter.connect(at));
  const link = new Link(transport);
  try {
    if (proxy.protocol === "socks5") await socks5(link, proxy, target, at);
    else await httpConnect(link, proxy, target, at);
    if (!target.tls) return link;
    if (!adapter.startTls) {
      throw new TypeError(`the ${adapter.name} adapter cannot start TLS through a proxy`);
    }
    const tls = await adapter.startTls(transport, {
      hostname: target.hostname,
      port: target.port,
      caCerts: target.tls.caCerts,
      signal: attempt.signal,
    });
    return new Link(track(attempt, tls));
  } catch (error) {
    link.close();
    throw error;
  }
}

/** What `closedEarly()` says of a proxy that closed. */
const BEFORE_TUNNEL = "before the tunnel was open";

/** An HTTP `CONNECT` through `link`, to the proxy at `at`. */
async function httpConnect(
  link: Link,
  proxy: ProxyServer,
  target: TunnelTarget,
  at: NetAddress,
): Promise<void> {
  await send(link, [formatConnectRequest(target, proxy.credentials)], at, BEFORE_TUNNEL);
  const reader = new ConnectResponseReader();
  let answer;
  await link.handshake((chunk) => {
    if (chunk === null) throw closedEarly(at, BEFORE_TUNNEL);
    try {
      answer = reader.write(chunk);
    } catch (error) {
      throw new ConnectError("PROXY_PROTOCOL_ERROR", at, { reason: (error as Error).message, cause: error });
    }
    return answer !== undefined;
  });
  const { status, statusText, rest } = answer!;
  const said = `${status} ${statusText}`.trim();
  // 401 too: some proxies (tinyproxy) answer wrong credentials with it.
  if (status === 407 || status === 401) {
    const reason = `${said}; ${
      proxy.credentials ? "credentials refused" : "no credentials in the proxy URL"
    }`;
    throw new ConnectError("PROXY_AUTH_FAILED", at, { reason });
  }
  if (status < 200 || status > 299) {
    // The status as `cause`, for isRetryable().
    const cause = { status, statusText };
    throw new ConnectError("PROXY_REFUSED", at, { reason: `${said} to CONNECT ${hostPort(target)}`, cause });
  }
  // The server cannot have spoken yet: it waits for the WebSocket request, or the TLS hello.
  if (rest.length > 0) {
    throw new ConnectError("PROXY_PROTOCOL_ERROR", at, { reason: "bytes after the answer to CONNECT" });
  }
}

/** A SOCKS5 handshake (RFC 1928, 1929) through `link`, to the proxy at `at`. */
async function socks5(link: Link, proxy: ProxyServer, target: TunnelTarget, at: NetAddress): Promise<void> {
  const handshake = new Socks5Handshake(target, proxy.credentials);
  let out = handshake.dataToSend();
  while (!handshake.done) {
    await send(link, [out], at, BEFORE_TUNNEL);
    await link.handshake((chunk) => {
      if (chunk === null) throw closedEarly(at, BEFORE_TUNNEL);
      try {
        handshake.receiveData(chunk);
      } catch (error) {
        if (!(error instanceof Socks5Error)) throw error;
        const code = error.kind === "auth"
          ? "PROXY_AUTH_FAILED"
          : error.kind === "refused"
          ? "PROXY_REFUSED"
          : "PROXY_PROTOCOL_ERROR";
        const reason = error.kind === "refused" ? `${error.message} to ${hostPort(target)}` : error.message;
        throw new ConnectError(code, at, { reason, cause: error });
      }
      out = handshake.dataToSend();
      return out.length > 0 || handshake.done;
    });
  }
}
