/**
 * Why a connection could not be opened, or a port not listened on: the same
 * error classes and codes on every runtime. Each adapter turns its runtime's
 * errors into these (only on failure), so nothing above the adapters ever
 * looks at a runtime's error shapes; the runtime's own error stays as `cause`.
 *
 * @module
 */

import type { NetAddress } from "./transport.ts";

/**
 * What {@linkcode ConnectError.code} can be. The same failure has the same code
 * on Deno and Bun:
 *
 * - `ECONNREFUSED`: nothing listens on that port (the peer answered with a reset).
 * - `ENOTFOUND`: the host name did not resolve.
 * - `ETIMEDOUT`: the system gave up on the TCP connection (no answer to it). The
 *   caller's own deadline, `connect()`'s `timeout` option, is a `DOMException`
 *   named `TimeoutError` instead, as `AbortSignal.timeout()` gives.
 * - `ECONNRESET`: the peer closed or reset the connection before the TLS or
 *   WebSocket handshake finished.
 * - `CERT_UNTRUSTED`: the server's certificate does not chain to a trusted CA
 *   (unknown issuer, self-signed).
 * - `CERT_HOSTNAME_MISMATCH`: the certificate is valid, but not for that host name or address.
 * - `CERT_EXPIRED`: the certificate has expired, or is not valid yet.
 * - `TLS_HANDSHAKE_FAILED`: any other TLS failure (not a TLS server, no common
 *   cipher or version, a fatal alert).
 * - `ENETUNREACH`, `EHOSTUNREACH`: no route to the network or host.
 * - `PROXY_AUTH_FAILED`: the proxy answered `407 Proxy Authentication Required` (or `401`,
 *   as tinyproxy does for wrong ones), or a SOCKS5 proxy refused the user name and password or
 *   accepts none of the methods offered: credentials missing from the proxy URL, or wrong. The error names the proxy.
 * - `PROXY_REFUSED`: the proxy answered `CONNECT` with another status than 2xx (`403` for a port it
 *   does not tunnel to, `502` when it cannot reach the target…), or a SOCKS5 proxy with a failure
 *   reply (RFC 1928 §6: not allowed, connection refused, host unreachable…); the reason carries the
 *   status or reply, and `cause` is `{ status, statusText }` or the `Socks5Error`. The error names
 *   the proxy.
 * - `PROXY_PROTOCOL_ERROR`: the proxy's answer is not an HTTP (or SOCKS5) response, is over 8 KiB, or bytes
 *   came before the tunnel's peer could have sent any. The error names the proxy. (A proxy that is
 *   down fails as any host: `ECONNREFUSED`, `ENOTFOUND`… naming the proxy.)
 * - `TOO_MANY_REDIRECTS`: with `followRedirects`, more than `maxRedirects` redirects, or a redirect
 *   back to a URL already visited (a loop). The error names the server that redirected last.
 * - `INSECURE_REDIRECT`: a redirect from `wss:` to `ws:` (refused: it would drop TLS).
 * - `BAD_REDIRECT`: a redirect whose `Location` is not a URL, or not `ws:`, `wss:`, `http:` or
 *   `https:`, or has credentials.
 * - `UNKNOWN`: anything else; the message carries the runtime's reason.
 *
 * @category Errors
 */
export type ConnectErrorCode =
  | "ECONNREFUSED"
  | "ENOTFOUND"
  | "ETIMEDOUT"
  | "ECONNRESET"
  | "CERT_UNTRUSTED"
  | "CERT_HOSTNAME_MISMATCH"
  | "CERT_EXPIRED"
  | "TLS_HANDSHAKE_FAILED"
  | "ENETUNREACH"
  | "EHOSTUNREACH"
  | "PROXY_AUTH_FAILED"
  | "PROXY_REFUSED"
  | "PROXY_PROTOCOL_ERROR"
  | "TOO_MANY_REDIRECTS"
  | "INSECURE_REDIRECT"
  | "BAD_REDIRECT"
  | "UNKNOWN";

/**
 * What {@linkcode ListenError.code} can be:
 *
 * - `EADDRINUSE`: another socket listens on that address and port.
 * - `EADDRNOTAVAIL`: the address is not one of this machine's.
 * - `EACCES`: not allowed to listen there (a port below 1024 without privileges).
 * - `ENOTFOUND`: the host name did not resolve.
 * - `UNKNOWN`: anything else; the message carries the runtime's reason.
 *
 * @category Errors
 */
export type ListenErrorCode = "EADDRINUSE" | "EADDRNOTAVAIL" | "EACCES" | "ENOTFOUND" | "UNKNOWN";

const CONNECT_TEXT: Record<ConnectErrorCode, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host name not found",
  ETIMEDOUT: "timed out",
  ECONNRESET: "connection closed or reset by the peer",
  CERT_UNTRUSTED: "certificate not trusted",
  CERT_HOSTNAME_MISMATCH: "certificate not valid for this host name",
  CERT_EXPIRED: "certificate expired or not valid yet",
  TLS_HANDSHAKE_FAILED: "TLS handshake failed",
  ENETUNREACH: "network unreachable",
  EHOSTUNREACH: "host unreachable",
  PROXY_AUTH_FAILED: "proxy authentication required",
  PROXY_REFUSED: "the proxy refused the tunnel",
  PROXY_PROTOCOL_ERROR: "the proxy's answer is not valid",
  TOO_MANY_REDIRECTS: "too many redirects",
  INSECURE_REDIRECT: "refused a redirect from wss: to ws:",
  BAD_REDIRECT: "invalid redirect",
  UNKNOWN: "connection failed",
};

const LISTEN_TEXT: Record<ListenErrorCode, string> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available",
  EACCES: "permission denied",
  ENOTFOUND: "host name not found",
  UNKNOWN: "cannot listen",
};

/**
 * Options of {@linkcode ConnectError} and {@linkcode ListenError}.
 *
 * @category Errors
 *
 * @example The runtime's reason and error
 * ```ts
 * import type { NetErrorOptions } from "@sock/sock";
 *
 * const options: NetErrorOptions = { reason: "invalid peer certificate: UnknownIssuer", cause: new Error() };
 * ```
 */
export interface NetErrorOptions {
  /** Details after the code's own description, such as the runtime's TLS reason. */
  reason?: string | undefined;
  /** The runtime's original error. */
  cause?: unknown;
}

/**
 * An address as `host:port`, with an IPv6 address in brackets: how the errors name their target.
 *
 * @param address The host and port.
 * @returns The text.
 *
 * @example IPv4 and IPv6
 * ```ts
 * import { hostPort } from "./net_errors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(hostPort({ hostname: "127.0.0.1", port: 80 }), "127.0.0.1:80");
 * assertEquals(hostPort({ hostname: "::1", port: 80 }), "[::1]:80");
 * ```
 */
export function hostPort(address: NetAddress): string {
  return `${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`;
}

function text(description: string, reason: string | undefined): string {
  return reason ? `${description} (${reason})` : description;
}

/**
 * A connection could not be opened: refused, name not found, timed out, reset
 * during the handshake, or a TLS failure. `code` is the same on every runtime
 * (see {@linkcode ConnectErrorCode}), the message names the target `host:port`,
 * and `cause` is the runtime's own error, when there is one.
 *
 * `connect()` rejects with it, as do adapters' `connect()`.
 *
 * @category Errors
 *
 * @example What `connect("ws://127.0.0.1:1/")` rejects with when nothing listens there
 * ```ts
 * import { ConnectError } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const cause = new Error("Connection refused (os error 111)"); // The runtime's own.
 * const error = new ConnectError("ECONNREFUSED", { hostname: "127.0.0.1", port: 1 }, { cause });
 * assertEquals(error.message, "ECONNREFUSED connecting to 127.0.0.1:1: connection refused");
 * // Worth another try later?
 * assertEquals(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT"].includes(error.code), true);
 * assertEquals(error.cause, cause);
 * ```
 */
export class ConnectError extends Error {
  /** Why, the same on every runtime. */
  readonly code: ConnectErrorCode;
  /** The host connected to. */
  readonly hostname: string;
  /** The port connected to. */
  readonly port: number;

  /**
   * Creates the error.
   *
   * @param code Why.
   * @param address The host and port connected to.
   * @param options The runtime's reason and error.
   */
  constructor(code: ConnectErrorCode, address: NetAddress, options: NetErrorOptions = {}) {
    super(
      `${code} connecting to ${hostPort(address)}: ${text(CONNECT_TEXT[code], options.reason)}`,
      { cause: options.cause },
    );
    this.name = "ConnectError";
    this.code = code;
    this.hostname = address.hostname;
    this.port = address.port;
  }
}

/**
 * A port could not be listened on. `code` is the same on every runtime (see
 * {@linkcode ListenErrorCode}), the message names the `host:port`, and `cause`
 * is the runtime's own error.
 *
 * `Sock`'s `listen()` rejects with it, as do adapters' `listen()`.
 *
 * @category Errors
 *
 * @example A port already in use: `EADDRINUSE`
 * ```ts
 * import { ListenError, Sock } from "@sock/sock";
 * import { assert, assertEquals, assertInstanceOf } from "@std/assert";
 *
 * const first = new Sock();
 * const { port } = await first.listen({ hostname: "127.0.0.1", port: 0 });
 * const error = await new Sock().listen({ hostname: "127.0.0.1", port }).catch((e) => e);
 * assertInstanceOf(error, ListenError);
 * assertEquals(error.code, "EADDRINUSE");
 * assert(error.message.includes(`127.0.0.1:${port}`));
 * await first.close();
 * ```
 */
export class ListenError extends Error {
  /** Why, the same on every runtime. */
  readonly code: ListenErrorCode;
  /** The host or address listened on. */
  readonly hostname: string;
  /** The port listened on. */
  readonly port: number;

  /**
   * Creates the error.
   *
   * @param code Why.
   * @param address The host and port listened on.
   * @param options The runtime's reason and error.
   */
  constructor(code: ListenErrorCode, address: NetAddress, options: NetErrorOptions = {}) {
    super(
      `${code} listening on ${hostPort(address)}: ${text(LISTEN_TEXT[code], options.reason)}`,
      { cause: options.cause },
    );
    this.name = "ListenError";
    this.code = code;
    this.hostname = address.hostname;
    this.port = address.port;
  }
}

/**
 * For adapters: the {@linkcode ConnectErrorCode}s that are system error codes, which runtimes put
 * on their errors as `code` (Bun on all of them, Deno on many) and adapters pass on as they are.
 *
 * @example Passing on a runtime's code
 * ```ts
 * import { SYSTEM_CONNECT_CODES, systemCode } from "./net_errors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const error = Object.assign(new Error("Connection refused"), { code: "ECONNREFUSED" });
 * assertEquals(systemCode(error, SYSTEM_CONNECT_CODES), "ECONNREFUSED");
 * ```
 */
export const SYSTEM_CONNECT_CODES: readonly ConnectErrorCode[] = [
  "ECONNREFUSED",
  "ENOTFOUND",
  "ETIMEDOUT",
  "ECONNRESET",
  "ENETUNREACH",
  "EHOSTUNREACH",
];

/**
 * For adapters: the errno-style `code` a runtime put on its error (Bun's and
 * Deno's errors both carry one for many system errors), when it is one of
 * `codes`.
 *
 * @param error The runtime's error.
 * @param codes The codes to accept.
 * @returns The code, or `undefined`.
 *
 * @example Keeping only the codes sock knows
 * ```ts
 * import { systemCode } from "./net_errors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const error = Object.assign(new Error("Failed to connect"), { code: "ECONNREFUSED" });
 * assertEquals(systemCode(error, ["ECONNREFUSED", "ENOTFOUND"]), "ECONNREFUSED");
 * assertEquals(systemCode(new Error("?"), ["ECONNREFUSED"]), undefined);
 * ```
 */
export function systemCode<T extends string>(error: unknown, codes: readonly T[]): T | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return codes.includes(code as T) ? code as T : undefined;
}

/**
 * For adapters: the message of a runtime's error, as the `reason` of a
 * {@linkcode ConnectError} or {@linkcode ListenError} whose code alone does not say it all.
 *
 * @param error What the runtime threw.
 * @returns Its message, or the value as a string when it is not an `Error`.
 *
 * @example
 * ```ts
 * import { messageOf } from "./net_errors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(messageOf(new Error("Failed to connect")), "Failed to connect");
 * assertEquals(messageOf("reset"), "reset");
 * ```
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
