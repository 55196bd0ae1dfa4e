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
  Socks5Error,
  Socks5Handshake,
  type TunnelTarget,
} from "./core/proxy.ts";
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
  cancelled: boolean;
  transport: Transport | undefined;
  /** Aborted once `connect()` gives up: ends a TLS handshake under way. */
  signal: AbortSignal;
}

/**
 * Reads a proxy URL: `http://[user:password@]host[:port]` (port 80 by default) or
 * `socks5://[user:password@]host[:port]` (`socks5h:` alike; port 1080 by default); a bare
 * `host:port`, as environment variables often hold, is taken as `http:`.
 *
 * @throws {TypeError} For anything else (`https:` proxies are not supported).
 */
export function parseProxyUrl(proxy: string | URL): ProxyServer {
  const text = String(proxy);
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw new TypeError(`invalid proxy URL: ${text.replace(/\/\/[^@/]*@/, "//…@")}`);
  }
  const socks = url.protocol === "socks5:" || url.protocol === "socks5h:";
  if (url.protocol !== "http:" && !socks) {
    throw new TypeError(`unsupported proxy scheme ${url.protocol}; use an http: or socks5: proxy`);
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const credentials = url.username || url.password
    ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
    : undefined;
  const port = url.port ? Number(url.port) : socks ? 1080 : 80;
  return { protocol: socks ? "socks5" : "http", hostname, port, credentials };
}

/**
 * The proxy a WebSocket URL goes through: the `proxy` option when given (`false`: none), else the
 * one the environment names, when the adapter can read it.
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
  const fromEnv = proxyFromEnv(target, (name) => env.call(adapter, name));
  return fromEnv ? parseProxyUrl(fromEnv) : undefined;
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
  const transport = await adapter.connect(at);
  attempt.transport = transport;
  if (attempt.cancelled) transport.close();
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
    attempt.transport = tls;
    if (attempt.cancelled) tls.close();
    return new Link(tls);
  } catch (error) {
    link.close();
    throw error;
  }
}

/** The proxy closed before the tunnel was open. */
function closedEarly(at: NetAddress, cause?: unknown): ConnectError {
  return new ConnectError("ECONNRESET", at, { reason: "before the tunnel was open", cause });
}

/** Writes to the proxy; a failed write means it closed. */
async function send(link: Link, bytes: Uint8Array, at: NetAddress): Promise<void> {
  await Promise.resolve(link.transport.write([bytes])).catch((error) => {
    throw closedEarly(at, error);
  });
}

/** An HTTP `CONNECT` through `link`, to the proxy at `at`. */
async function httpConnect(
  link: Link,
  proxy: ProxyServer,
  target: TunnelTarget,
  at: NetAddress,
): Promise<void> {
  await send(link, formatConnectRequest(target, proxy.credentials), at);
  const reader = new ConnectResponseReader();
  let answer;
  await link.handshake((chunk) => {
    if (chunk === null) throw closedEarly(at);
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
    throw new ConnectError("PROXY_REFUSED", at, { reason: `${said} to CONNECT ${hostPort(target)}` });
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
    await send(link, out, at);
    await link.handshake((chunk) => {
      if (chunk === null) throw closedEarly(at);
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
