/**
 * Proxies for the client, as bytes and rules only: the HTTP `CONNECT` request (RFC 9110 §9.3.6)
 * and its answer, the SOCKS5 handshake (RFC 1928, 1929), and which proxy a URL goes through given
 * the usual environment variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), read
 * through a function the caller passes. Only {@linkcode Socks5Error} is public (the `cause` of a
 * SOCKS5 proxy's `ConnectError`); the rest serves the client.
 *
 * @module
 */

import { concat } from "./bytes.ts";
import { HeadReader } from "./http.ts";
import { base64, formatHead } from "./handshake.ts";
import { ProtocolError } from "./errors.ts";
import { CloseCode } from "./close.ts";
import { unbracket } from "./url.ts";

/** Largest answer head a proxy may send to `CONNECT`, in bytes. */
export const MAX_CONNECT_RESPONSE_SIZE = 8192;

/** A host and port, as a `CONNECT` request names it. */
export interface TunnelTarget {
  /** The host name or address (an IPv6 address without brackets). */
  hostname: string;
  /** The port. */
  port: number;
}

/**
 * Builds an HTTP `CONNECT` request for a tunnel to `target` (RFC 9110 §9.3.6), with
 * `Proxy-Authorization: Basic` (RFC 7617) when credentials are given.
 *
 * @param target Where the tunnel goes.
 * @param credentials The proxy's user name and password, already percent-decoded.
 * @returns The request bytes.
 * @throws {TypeError} For a host holding CR, LF or NUL (credentials go base64-encoded).
 *
 * @example A request with credentials
 * ```ts
 * import { formatConnectRequest } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = formatConnectRequest({ hostname: "::1", port: 443 }, { username: "u", password: "p" });
 * assertEquals(
 *   new TextDecoder().decode(bytes),
 *   "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
 * );
 * ```
 */
export function formatConnectRequest(
  target: TunnelTarget,
  credentials?: { username: string; password: string },
): Uint8Array {
  const authority = `${
    target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname
  }:${target.port}`;
  // formatHead() checks the Host value, thus the request line's authority too.
  const headers: [string, string][] = [["Host", authority]];
  if (credentials) {
    const bytes = new TextEncoder().encode(`${credentials.username}:${credentials.password}`);
    headers.push(["Proxy-Authorization", `Basic ${base64(bytes)}`]);
  }
  return formatHead(`CONNECT ${authority} HTTP/1.1`, headers);
}

/** A proxy's answer to `CONNECT`: its status, and the bytes that followed the head. */
export interface ConnectResponse {
  /** The HTTP status; 2xx opens the tunnel. */
  status: number;
  /** The reason phrase. */
  statusText: string;
  /** Bytes after the head (the start of the tunnel's stream, or of an error body). */
  rest: Uint8Array;
}

/**
 * Reads a proxy's answer to `CONNECT` from bytes split in any way, up to
 * {@linkcode MAX_CONNECT_RESPONSE_SIZE} bytes of head; interim (1xx) answers before it are skipped.
 *
 * @example The answer that opens a tunnel
 * ```ts
 * import { ConnectResponseReader } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const reader = new ConnectResponseReader();
 * const bytes = new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n");
 * assertEquals(reader.write(bytes.subarray(0, 5)), undefined);
 * assertEquals(reader.write(bytes.subarray(5))?.status, 200);
 * ```
 */
export class ConnectResponseReader {
  #reader = new HeadReader(false, { maxHeadSize: MAX_CONNECT_RESPONSE_SIZE });

  /**
   * Adds bytes.
   *
   * @param chunk The next bytes from the proxy; not kept.
   * @returns The answer once its head is complete, else `undefined`.
   * @throws {ProtocolError} For a head that is not an HTTP response, or over the size limit.
   */
  write(chunk: Uint8Array): ConnectResponse | undefined {
    while (true) {
      let result;
      try {
        result = this.#reader.write(chunk);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new ProtocolError(`malformed proxy answer: ${reason}`, CloseCode.ProtocolError);
      }
      if (!result) return undefined;
      const [version, status, statusText] = result.head.startLine;
      if (!/^HTTP\/1\.\d$/.test(version) || !/^\d{3}$/.test(status)) {
        throw new ProtocolError("malformed proxy answer: bad status line", CloseCode.ProtocolError);
      }
      // An interim answer (100 Continue…) comes before the real one; 101 would be final.
      if (!status.startsWith("1") || status === "101") {
        return { status: Number(status), statusText, rest: result.rest };
      }
      this.#reader = new HeadReader(false, { maxHeadSize: MAX_CONNECT_RESPONSE_SIZE });
      chunk = result.rest;
    }
  }
}

/** Reads an environment variable; `undefined` when it is not set (or cannot be read). */
export type EnvLookup = (name: string) => string | undefined;

/** The first of `NAME` and `name` that is set, not empty and `usable`. */
function variable(env: EnvLookup, name: string, usable: (value: string) => boolean): string | undefined {
  for (const key of [name.toUpperCase(), name.toLowerCase()]) {
    const value = env(key);
    if (value && usable(value)) return value;
  }
  return undefined;
}

/** An IPv4 (dotted quad) or IPv6 address's 4 or 16 bytes; `undefined` for anything else. */
function ipBytes(text: string): number[] | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((n) => n <= 255) ? bytes : undefined;
  }
  const halves = text.split("::");
  if (!text.includes(":") || halves.length > 2) return undefined;
  const groups = (s: string) => s ? s.split(":") : [];
  const head = groups(halves[0]!), tail = groups(halves[1] ?? "");
  // "::" stands for one or more zero groups.
  const zeros = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...new Array<string>(Math.max(zeros, 0)).fill("0"), ...tail];
  if (zeros < halves.length - 1 || all.length !== 8 || !all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) {
    return undefined;
  }
  return all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

/** Whether `ip` is in the network of `net`'s first `bits` bits (same family only). */
function inNetwork(ip: number[], net: number[], bits: number): boolean {
  if (ip.length !== net.length || bits > ip.length * 8) return false;
  return ip.every((byte, i) => {
    const mask = bits >= 8 * (i + 1) ? 0xff : bits <= 8 * i ? 0 : (0xff00 >> (bits - 8 * i)) & 0xff;
    return ((byte ^ net[i]!) & mask) === 0;
  });
}

/**
 * Whether `NO_PROXY` exempts a host: a comma (or space) separated list of host names, which also
 * match their subdomains (`example.com`, `.example.com` and `*.example.com` all match
 * `a.example.com`), IP addresses (`10.0.0.1`, `::1`, `[::1]`, compared as addresses) and networks
 * (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port` (`[::1]:443`, `*:443`); `*` exempts every
 * host. An address host matches only address and network entries, never a name's suffix.
 *
 * @param noProxy The variable's value.
 * @param hostname The target host (an IPv6 address with or without brackets).
 * @param port The target port.
 * @returns `true` when the host goes direct.
 *
 * @example Suffixes, networks and ports
 * ```ts
 * import { noProxyMatches } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(noProxyMatches("localhost,.internal:8080", "api.internal", 8080), true);
 * assertEquals(noProxyMatches("localhost,.internal:8080", "api.internal", 80), false);
 * assertEquals(noProxyMatches("10.0.0.0/8", "10.1.2.3", 80), true);
 * assertEquals(noProxyMatches("0.0.1", "10.0.0.1", 80), false);
 * assertEquals(noProxyMatches("*", "example.com", 443), true);
 * ```
 */
export function noProxyMatches(noProxy: string, hostname: string, port: number): boolean {
  const host = unbracket(hostname.toLowerCase()).replace(/\.$/, "");
  const hostIp = ipBytes(host);
  for (let entry of noProxy.toLowerCase().split(/[\s,]+/)) {
    const withPort = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(entry);
    if (withPort) {
      if (Number(withPort[2]) !== port) continue;
      entry = withPort[1]!;
    }
    if (!entry) continue;
    if (entry === "*") return true;
    const [address = "", bits, ...more] = entry.split("/");
    const ip = ipBytes(unbracket(address));
    if (ip) {
      if (more.length > 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits))) continue;
      if (hostIp && inNetwork(hostIp, ip, bits === undefined ? ip.length * 8 : Number(bits))) return true;
      continue;
    }
    entry = entry.replace(/^\*?\./, "").replace(/\.$/, "");
    if (!hostIp && (host === entry || host.endsWith(`.${entry}`))) return true;
  }
  return false;
}

/**
 * The proxy the environment names for a WebSocket URL: `ws:` uses `HTTP_PROXY`, `wss:` uses
 * `HTTPS_PROXY`, either falls back to `ALL_PROXY` (each name upper-case first, then lower-case; a
 * value `usable` refuses is skipped, as if not set), and `NO_PROXY` (see {@linkcode noProxyMatches})
 * exempts hosts. `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set: in a CGI script it may come
 * from a request's `Proxy:` header ("httpoxy").
 *
 * @param target Whether the connection uses TLS, and its host and port.
 * @param env Reads a variable.
 * @param usable Whether the caller can use a proxy URL; all by default.
 * @returns The proxy URL as written in the variable, or `undefined` to go direct.
 *
 * @example Choosing by scheme, with exemptions
 * ```ts
 * import { proxyFromEnv } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const env = { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: "localhost" } as Record<string, string>;
 * const lookup = (name: string) => env[name];
 * assertEquals(proxyFromEnv({ secure: true, hostname: "example.com", port: 443 }, lookup), "http://proxy:3128");
 * assertEquals(proxyFromEnv({ secure: false, hostname: "example.com", port: 80 }, lookup), undefined);
 * assertEquals(proxyFromEnv({ secure: true, hostname: "localhost", port: 443 }, lookup), undefined);
 * ```
 */
export function proxyFromEnv(
  target: { secure: boolean; hostname: string; port: number },
  env: EnvLookup,
  usable: (value: string) => boolean = () => true,
): string | undefined {
  const own = target.secure ? "HTTPS_PROXY" : env("REQUEST_METHOD") === undefined ? "HTTP_PROXY" : "";
  const proxy = (own ? variable(env, own, usable) : undefined) ?? variable(env, "ALL_PROXY", usable);
  if (!proxy) return undefined;
  const noProxy = variable(env, "NO_PROXY", () => true);
  if (noProxy && noProxyMatches(noProxy, target.hostname, target.port)) return undefined;
  return proxy;
}

/** RFC 1928 §6: what a SOCKS5 reply's code means. */
const SOCKS_REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/**
 * Why a SOCKS5 handshake failed: `auth` (no method both sides accept, or credentials refused),
 * `refused` (the proxy's reply to `CONNECT` is not success; `reply` holds its code), `protocol` (the
 * proxy's bytes break RFC 1928/1929). `connect()` through a SOCKS5 proxy rejects with a
 * `ConnectError` (`PROXY_AUTH_FAILED`, `PROXY_REFUSED` or `PROXY_PROTOCOL_ERROR`) whose `cause` is
 * this error.
 *
 * @category Errors
 *
 * @example Which reply a SOCKS5 proxy refused the tunnel with
 * ```ts
 * import { ConnectError, Socks5Error } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const cause = new Socks5Error("refused", "SOCKS5 reply 5: connection refused", 5);
 * const error = new ConnectError("PROXY_REFUSED", { hostname: "127.0.0.1", port: 1080 }, { cause });
 * assertEquals(error.cause instanceof Socks5Error ? error.cause.reply : undefined, 5);
 * ```
 */
export class Socks5Error extends Error {
  /** The kind of failure. */
  readonly kind: "auth" | "refused" | "protocol";
  /** The reply code (RFC 1928 §6), for `refused`. */
  readonly reply: number | undefined;

  /**
   * Creates the error.
   *
   * @param kind The kind of failure.
   * @param message What happened.
   * @param reply The reply code, for `refused`.
   */
  constructor(kind: "auth" | "refused" | "protocol", message: string, reply?: number) {
    super(message);
    this.name = "Socks5Error";
    this.kind = kind;
    this.reply = reply;
  }
}

const enum Socks {
  Method,
  Auth,
  Reply,
  Done,
}

/**
 * The client side of a SOCKS5 handshake (RFC 1928, with RFC 1929's user name and password), sans
 * I/O: send what {@linkcode Socks5Handshake.dataToSend} hands out, feed what the proxy answers to
 * {@linkcode Socks5Handshake.receiveData} until `done`. The target's name goes to the proxy as it
 * is (the proxy resolves it); addresses go as addresses.
 *
 * @example A handshake without credentials, the proxy's answers given by hand
 * ```ts
 * import { Socks5Handshake } from "./proxy.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const socks = new Socks5Handshake({ hostname: "127.0.0.1", port: 80 });
 * assertEquals(socks.dataToSend(), new Uint8Array([5, 1, 0]));
 * socks.receiveData(new Uint8Array([5, 0]));
 * assertEquals(socks.dataToSend(), new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
 * socks.receiveData(new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
 * assertEquals(socks.done, true);
 * ```
 */
export class Socks5Handshake {
  #target: TunnelTarget;
  #credentials: { username: Uint8Array; password: Uint8Array } | undefined;
  #state = Socks.Method;
  /** What waits to be sent, in order. */
  #out: Uint8Array[] = [];
  /** What was received and not parsed yet: a few hundred bytes at most. */
  #in = new Uint8Array(0);

  /**
   * Starts the handshake: the greeting is ready to send.
   *
   * @param target Where the tunnel goes.
   * @param credentials The user name and password (RFC 1929), each 1 to 255 bytes of UTF-8.
   * @throws {TypeError} For credentials or a host name over 255 bytes, or empty.
   */
  constructor(target: TunnelTarget, credentials?: { username: string; password: string }) {
    this.#target = target;
    if (credentials) this.#credentials = socks5Credentials(credentials);
    address(target.hostname); // Checked now.
    // RFC 1928 §3: version, the methods offered: 0 (none), and 2 (user name and password) with them.
    this.#out.push(new Uint8Array(credentials ? [5, 2, 0, 2] : [5, 1, 0]));
  }

  /** Whether the tunnel is open. */
  get done(): boolean {
    return this.#state === Socks.Done;
  }

  /**
   * What to send to the proxy now; empty when nothing.
   *
   * @returns The bytes, handed over.
   */
  dataToSend(): Uint8Array {
    const out = this.#out;
    this.#out = [];
    return out.length === 1 ? out[0]! : concat(out);
  }

  /**
   * Takes bytes from the proxy.
   *
   * @param chunk The bytes; not kept.
   * @throws {Socks5Error} When the proxy refuses, or breaks the protocol (also for bytes after its
   *   last reply: the server behind cannot have spoken yet).
   */
  receiveData(chunk: Uint8Array): void {
    const data = new Uint8Array(this.#in.length + chunk.length);
    data.set(this.#in);
    data.set(chunk, this.#in.length);
    let at = 0;
    while (at < data.length) {
      const used = this.#step(data.subarray(at));
      if (used === 0) break;
      at += used;
    }
    if (this.#state === Socks.Done && at < data.length) {
      throw new Socks5Error("protocol", "bytes after the SOCKS5 reply");
    }
    this.#in = data.slice(at);
  }

  /** Parses one message at the start of `b`; returns its length, or 0 while incomplete. */
  #step(b: Uint8Array): number {
    switch (this.#state) {
      case Socks.Method: {
        if (b.length < 2) return 0;
        if (b[0] !== 5) throw new Socks5Error("protocol", "not a SOCKS5 proxy");
        const method = b[1]!;
        if (method === 0xff) throw new Socks5Error("auth", "the proxy accepts none of the offered methods");
        if (method === 2 && this.#credentials) {
          const { username, password } = this.#credentials;
          // RFC 1929 §2: version 1, the user name, the password.
          const out = new Uint8Array(3 + username.length + password.length);
          out.set([1, username.length]);
          out.set(username, 2);
          out[2 + username.length] = password.length;
          out.set(password, 3 + username.length);
          this.#out.push(out);
          this.#state = Socks.Auth;
        } else if (method === 0) {
          this.#request();
        } else {
          throw new Socks5Error("protocol", `the proxy chose method ${method}, which was not offered`);
        }
        return 2;
      }
      case Socks.Auth:
        if (b.length < 2) return 0;
        if (b[0] !== 1) throw new Socks5Error("protocol", "bad SOCKS5 authentication reply");
        if (b[1] !== 0) throw new Socks5Error("auth", "the proxy refused the user name and password");
        this.#request();
        return 2;
      case Socks.Reply: {
        if (b.length < 5) return 0;
        if (b[0] !== 5 || b[2] !== 0) throw new Socks5Error("protocol", "bad SOCKS5 reply");
        const type = b[3];
        const length = type === 1 ? 10 : type === 4 ? 22 : type === 3 ? 7 + b[4]! : -1;
        if (length < 0) throw new Socks5Error("protocol", `bad SOCKS5 address type ${type}`);
        const reply = b[1]!;
        if (reply !== 0) {
          const text = SOCKS_REPLIES[reply] ?? "unknown error";
          throw new Socks5Error("refused", `SOCKS5 reply ${reply}: ${text}`, reply);
        }
        if (b.length < length) return 0;
        this.#state = Socks.Done;
        return length;
      }
      default:
        return 0;
    }
  }

  /** RFC 1928 §4: `CONNECT` to the target. */
  #request(): void {
    const addr = address(this.#target.hostname);
    const out = new Uint8Array(3 + addr.length + 2);
    out.set([5, 1, 0]);
    out.set(addr, 3);
    out[out.length - 2] = this.#target.port >> 8;
    out[out.length - 1] = this.#target.port & 0xff;
    this.#out.push(out);
    this.#state = Socks.Reply;
  }
}

/**
 * A user name and password as RFC 1929 sends them: each 1 to 255 bytes of UTF-8.
 *
 * @throws {TypeError} For an empty or longer one.
 */
export function socks5Credentials(
  credentials: { username: string; password: string },
): { username: Uint8Array; password: Uint8Array } {
  const username = new TextEncoder().encode(credentials.username);
  const password = new TextEncoder().encode(credentials.password);
  for (const field of [username, password]) {
    if (field.length < 1 || field.length > 255) {
      throw new TypeError("SOCKS5 user names and passwords are 1 to 255 bytes");
    }
  }
  return { username, password };
}

/** A host as a SOCKS5 address: type, then the address (RFC 1928 §5). */
function address(hostname: string): Uint8Array {
  const ip = ipBytes(hostname);
  if (ip) return new Uint8Array([ip.length === 4 ? 1 : 4, ...ip]);
  if (hostname.includes(":")) throw new TypeError(`not an IPv6 address: ${hostname}`);
  const name = new TextEncoder().encode(hostname);
  if (name.length < 1 || name.length > 255) throw new TypeError("SOCKS5 host names are 1 to 255 bytes");
  return new Uint8Array([3, name.length, ...name]);
}
