/**
 * WebSocket URLs (RFC 6455 §3, WHATWG WebSockets): the one place that reads a `ws:`/`wss:` URL,
 * for the client's opening request and for whoever opens its connection.
 *
 * @module
 */

/**
 * A WebSocket URL, checked and taken apart: everything a client needs to connect and to ask.
 *
 * @category Handshake
 */
export interface WebSocketUrl {
  /** The URL, normalized: `http:` became `ws:` and `https:` became `wss:`. A fresh object. */
  url: URL;
  /** Whether the connection uses TLS (`wss:`). */
  secure: boolean;
  /** The host to connect to, an IPv6 address without its brackets (`::1`, not `[::1]`). */
  hostname: string;
  /** The port to connect to: the URL's, else 80 (`ws:`) or 443 (`wss:`). */
  port: number;
  /** The request target: the path and the query, e.g. `/chat?room=1` (at least `/`). */
  target: string;
  /** The `Host` header value: the host, with the port only when it is not the scheme's default. */
  host: string;
}

/**
 * Reads a WebSocket URL (RFC 6455 §3): `ws:` and `wss:`, with `http:` and `https:` taken as their
 * WebSocket forms (as the WHATWG `WebSocket` constructor does), and no fragment (not even an empty
 * `#`).
 *
 * @category Handshake
 *
 * @param url The URL.
 * @returns The normalized URL and its parts.
 * @throws {TypeError} For a string that is not a URL, another scheme, or a fragment.
 *
 * @example Taking a URL apart
 * ```ts
 * import { parseWebSocketUrl } from "@sock/sock";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const parsed = parseWebSocketUrl("https://[::1]:8443/chat?room=1");
 * assertEquals(parsed.url.href, "wss://[::1]:8443/chat?room=1");
 * assertEquals([parsed.secure, parsed.hostname, parsed.port], [true, "::1", 8443]);
 * assertEquals([parsed.target, parsed.host], ["/chat?room=1", "[::1]:8443"]);
 * assertEquals(parseWebSocketUrl("ws://example.com").port, 80);
 * assertThrows(() => parseWebSocketUrl("ftp://example.com/"), TypeError);
 * assertThrows(() => parseWebSocketUrl("ws://example.com/#top"), TypeError);
 * ```
 */
export function parseWebSocketUrl(url: string | URL): WebSocketUrl {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`unsupported URL scheme ${parsed.protocol}; use ws: or wss:`);
  }
  // An empty fragment leaves `hash` empty; `href` still ends with it.
  if (parsed.hash !== "" || parsed.href.endsWith("#")) {
    throw new TypeError("a WebSocket URL cannot have a fragment");
  }
  const secure = parsed.protocol === "wss:";
  return {
    url: parsed,
    secure,
    hostname: unbracket(parsed.hostname),
    // URL drops a port that is the scheme's default, so `port` is empty then, and `host` carries none.
    port: parsed.port === "" ? (secure ? 443 : 80) : Number(parsed.port),
    target: (parsed.pathname || "/") + parsed.search,
    host: parsed.host,
  };
}

/**
 * An IPv6 address without its brackets (`[::1]` → `::1`); anything else as it is.
 *
 * @param host A URL's host name.
 * @returns The name or address.
 */
export function unbracket(host: string): string {
  return host.replace(/^\[(.*)\]$/, "$1");
}
