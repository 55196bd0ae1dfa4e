/**
 * The opening handshake (RFC 6455 §4): accept tokens, request validation and
 * responses on the server side, requests and response validation on the
 * client side. Pure functions over parsed heads; the protocol classes drive them.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { type ExtensionOffer, formatExtensions, parseExtensions } from "./extensions.ts";
import { httpError, type HttpHeaders, isToken, type ParsedHead, parseTokenList } from "./http.ts";
import { cryptoRandom, type RandomSource } from "./mask.ts";
import { sha1 } from "./sha1.ts";
import { parseWebSocketUrl } from "./url.ts";

/**
 * The GUID appended to the key before hashing (RFC 6455 §1.3).
 *
 * @category Handshake
 */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const encoder = new TextEncoder();

/**
 * Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of the
 * SHA-1 of the key and the GUID.
 *
 * @category Handshake
 *
 * @param key The client's key.
 * @returns The accept token.
 *
 * @example The RFC 6455 §1.3 pair
 * ```ts
 * import { acceptToken } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(acceptToken("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
 * ```
 */
export function acceptToken(key: string): string {
  return base64(sha1(tokenInput(key)));
}

/**
 * `key` and the GUID as bytes, for a 24-character ASCII key (all valid ones) in one shared buffer,
 * as sha1() pads it into its own: acceptToken() took 6.4 µs on Deno and takes 1.4 µs (a TextEncoder
 * call is an op there); on Bun it takes 1 µs either way.
 */
const TOKEN_INPUT = encoder.encode("x".repeat(24) + WEBSOCKET_GUID);

function tokenInput(key: string): Uint8Array {
  if (key.length !== 24) return encoder.encode(key + WEBSOCKET_GUID);
  for (let i = 0; i < 24; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) return encoder.encode(key + WEBSOCKET_GUID);
    TOKEN_INPUT[i] = c;
  }
  return TOKEN_INPUT;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 (RFC 4648 §4, padded), for the core's own headers. */
export function base64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64[n >>> 18]! + BASE64[(n >>> 12) & 63]! +
      (i + 1 < bytes.length ? BASE64[(n >>> 6) & 63]! : "=") +
      (i + 2 < bytes.length ? BASE64[n & 63]! : "=");
  }
  return out;
}

/**
 * Makes a fresh `Sec-WebSocket-Key`: base64 of 16 random bytes.
 *
 * @category Handshake
 *
 * @param random The random source; `crypto.getRandomValues` by default.
 * @returns The key, 24 characters.
 *
 * @example A key from a fixed source
 * ```ts
 * import { generateKey } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(generateKey((bytes) => bytes.fill(0)), "AAAAAAAAAAAAAAAAAAAAAA==");
 * ```
 */
export function generateKey(random: RandomSource = cryptoRandom): string {
  const bytes = new Uint8Array(16);
  random(bytes);
  return base64(bytes);
}

/** A valid key: base64 of exactly 16 bytes, i.e. 22 base64 characters then `==`. */
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * An HTTP request head, parsed and checked as a WebSocket upgrade.
 *
 * @category Handshake
 */
export interface UpgradeRequest {
  /** The request method. */
  method: string;
  /** The request target as sent, e.g. `/chat?room=1`. */
  target: string;
  /** The path part of the target, e.g. `/chat`. */
  path: string;
  /** The query part of the target without `?`, e.g. `room=1`; empty when none. */
  query: string;
  /** The HTTP version, e.g. `HTTP/1.1`. */
  version: string;
  /** Every header field, repeated fields kept. */
  headers: HttpHeaders;
  /** `Sec-WebSocket-Key`, when valid. */
  key: string;
  /** The subprotocols offered, in the client's order. */
  subprotocols: string[];
  /** The extensions offered, in the client's order. */
  extensions: ExtensionOffer[];
  /**
   * Why this request is not a valid WebSocket upgrade, with the HTTP status to
   * answer: 400, 405 (not GET), 426 (no `Upgrade: websocket` or an unsupported
   * version). `undefined` for a valid upgrade.
   */
  error: ProtocolError | undefined;
}

/**
 * Checks a parsed request head against RFC 6455 §4.2.1. Problems with the
 * HTTP syntax itself throw; problems with the upgrade are reported in
 * `error`, so a server can still answer a plain HTTP request.
 *
 * @category Handshake
 *
 * @param head The parsed request head.
 * @returns The request, with `error` set when it is not a valid upgrade.
 * @throws {ProtocolError} 400 for a malformed request target; 505 for an HTTP version other than 1.x.
 *
 * @example Checking a request
 * ```ts
 * import { HttpHeaders, parseUpgradeRequest } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const request = parseUpgradeRequest({
 *   startLine: ["GET", "/chat?room=1", "HTTP/1.1"],
 *   headers: new HttpHeaders([
 *     ["Host", "example.com"], ["Upgrade", "websocket"], ["Connection", "Upgrade"],
 *     ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"],
 *   ]),
 * });
 * assertEquals(request.error, undefined);
 * assertEquals(request.path, "/chat");
 * assertEquals(request.query, "room=1");
 * ```
 */
export function parseUpgradeRequest(head: ParsedHead): UpgradeRequest {
  const [method, target, version] = head.startLine;
  const headers = head.headers;
  if (!isToken(method)) throw httpError(400, "malformed request method");
  if (!/^HTTP\/\d\.\d$/.test(version)) throw httpError(400, "malformed HTTP version");
  if (version[5] !== "1") throw httpError(505, `HTTP version ${version} is not supported`);
  const path = requestPath(target);
  const queryAt = path.indexOf("?");
  const request: UpgradeRequest = {
    method,
    target,
    path: queryAt < 0 ? path : path.slice(0, queryAt),
    query: queryAt < 0 ? "" : path.slice(queryAt + 1),
    version,
    headers,
    key: "",
    subprotocols: [],
    extensions: [],
    error: undefined,
  };
  try {
    checkUpgrade(request);
    request.subprotocols = listOf(headers.getAll("sec-websocket-protocol"), parseTokenList);
    request.extensions = listOf(headers.getAll("sec-websocket-extensions"), parseExtensions);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    request.error = error;
  }
  return request;
}

function requestPath(target: string): string {
  if (target.startsWith("/")) return target;
  // absolute-form (RFC 9112 §3.2.2): keep the path and query.
  const match = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*([^#]*)/.exec(target);
  if (!match) throw httpError(400, "malformed request target");
  // The group always takes part in a match (it may be empty).
  const path = match[1]!;
  return path.startsWith("/") ? path : "/" + path;
}

function checkUpgrade(request: UpgradeRequest): void {
  const { headers } = request;
  if (request.method !== "GET") {
    throw httpError(405, "only GET can upgrade to WebSocket", [["Allow", "GET"]]);
  }
  if (request.version === "HTTP/1.0") throw httpError(400, "HTTP/1.1 or later is required");
  if (!hasToken(listOf(headers.getAll("upgrade"), parseUpgradeList), "websocket")) {
    throw httpError(426, "Upgrade: websocket is required", [["Upgrade", "websocket"], [
      "Connection",
      "Upgrade",
    ]]);
  }
  if (!hasToken(listOf(headers.getAll("connection"), parseTokenList), "upgrade")) {
    throw httpError(400, "Connection: upgrade is required");
  }
  // Bytes after the head are frames: a body would be read as frames here, and a proxy could
  // read frames as a body. Refused, as python-websockets does.
  const lengths = headers.getAll("content-length");
  if (headers.has("transfer-encoding") || lengths.some((value) => value !== "0")) {
    throw httpError(400, "an upgrade request cannot have a body");
  }
  const hosts = headers.getAll("host");
  if (hosts.length !== 1 || hosts[0] === "") throw httpError(400, "exactly one Host header is required");
  const versions = headers.getAll("sec-websocket-version");
  if (versions.length !== 1 || versions[0] !== "13") {
    throw httpError(426, "Sec-WebSocket-Version: 13 is required", [["Sec-WebSocket-Version", "13"]]);
  }
  const keys = headers.getAll("sec-websocket-key");
  if (keys.length !== 1) throw httpError(400, "exactly one Sec-WebSocket-Key is required");
  const key = keys[0]!;
  if (!KEY_PATTERN.test(key)) throw httpError(400, "Sec-WebSocket-Key is not base64 of 16 bytes");
  request.key = key;
}

/** `Upgrade` lists protocols, which may carry a version: `websocket`, `h2c`, `foo/2`. */
function parseUpgradeList(value: string): string[] {
  const protocols: string[] = [];
  for (const part of value.split(",")) {
    const protocol = part.trim();
    if (protocol !== "") protocols.push(protocol);
  }
  return protocols;
}

/** Whether `tokens` holds `lower`, compared without case. */
function hasToken(tokens: string[], lower: string): boolean {
  for (const token of tokens) if (token.toLowerCase() === lower) return true;
  return false;
}

/**
 * The elements of a list field's values, each value parsed by `parse`: what `flatMap` does, as a
 * loop. With it and `hasToken()` instead of `flatMap()` and `some()` with closures, Bun's optimizing
 * compiler (FTL) spends 150-200 ms instead of 320-480 ms on `parseUpgradeRequest()` and
 * `checkUpgrade()` in a fresh server's first seconds of handshakes (in-process handshake loop, Bun
 * 1.4.5, 3 runs each): CPU a fresh server spends on its compiler thread before it is warm.
 */
function listOf<T>(values: string[], parse: (value: string) => T[]): T[] {
  if (values.length === 1) return parse(values[0]!);
  const all: T[] = [];
  for (const value of values) for (const element of parse(value)) all.push(element);
  return all;
}

/**
 * The reason phrases of every status RFC 9110 §15 defines, and of the others in the IANA HTTP Status
 * Code Registry that are in use (102, 103, 207, 208, 226, 423–425, 428, 429, 431, 451, 506–508, 511).
 * The one table for every response the core writes; a status without an entry (418, 599 …) goes out
 * with an empty reason phrase, which RFC 9112 §4 allows.
 */
const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  305: "Use Proxy",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  511: "Network Authentication Required",
};

/** A response's status line: the reason phrase from {@linkcode REASONS}, or none. */
function statusLine(statusCode: number): string {
  return `HTTP/1.1 ${statusCode} ${REASONS[statusCode] ?? ""}`;
}

/**
 * Header fields as pairs, a record, or our own class.
 *
 * @category HTTP
 */
export type HeadersInit = Iterable<[string, string]> | Record<string, string>;

/** Header fields in any accepted form, as pairs. */
export function headerPairs(init: HeadersInit | undefined): [string, string][] {
  if (init === undefined) return [];
  if (Symbol.iterator in init) return [...(init as Iterable<[string, string]>)];
  return Object.entries(init);
}

/**
 * Formats an HTTP/1.1 head. Names must be tokens and values may not contain
 * CR, LF or NUL, so nothing can inject a header or split the response.
 *
 * @param startLine The status or request line.
 * @param headers The header fields.
 * @returns The head's bytes, blank line included.
 * @throws {TypeError} For an invalid name or value.
 */
export function formatHead(startLine: string, headers: [string, string][]): Uint8Array {
  return encoder.encode(startLine + "\r\n" + fieldLines(headers) + "\r\n");
}

/** Header fields as lines of a head, checked as `formatHead()` says. */
function fieldLines(headers: [string, string][]): string {
  let text = "";
  for (const [name, value] of headers) {
    if (!isToken(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (/[\r\n\0]/.test(value)) {
      throw new TypeError(`header ${name} has a CR, LF or NUL in its value`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return text;
}

/**
 * Formats an HTTP response head, with the status's standard reason phrase (RFC 9110 §15 and the
 * IANA registry; empty for a status without one).
 *
 * @category HTTP
 *
 * @param statusCode The status, 100–599.
 * @param headers The header fields.
 * @returns The head's bytes.
 * @throws {RangeError} For a status outside 100–599.
 * @throws {TypeError} For an invalid header name or a value with CR, LF or NUL.
 *
 * @example A 404
 * ```ts
 * import { formatResponse } from "@sock/sock";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const bytes = formatResponse(404, [["Content-Length", "0"]]);
 * assertEquals(new TextDecoder().decode(bytes), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
 * assertThrows(() => formatResponse(200, [["X", "a\r\nSet-Cookie: b"]]), TypeError);
 * ```
 */
export function formatResponse(statusCode: number, headers: HeadersInit = []): Uint8Array {
  if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) {
    throw new RangeError(`invalid HTTP status ${statusCode}`);
  }
  return formatHead(statusLine(statusCode), headerPairs(headers));
}

/**
 * What the server agrees to in its 101 response.
 *
 * @category Handshake
 */
export interface AcceptOptions {
  /** The chosen subprotocol; must be one the client offered. Omit to choose none. */
  subprotocol?: string | undefined;
  /** Extra response headers. */
  headers?: HeadersInit | undefined;
}

/** The start of every 101 answer, up to the accept token. */
const ACCEPT_HEAD = `${
  statusLine(101)
}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: `;

/**
 * Builds the `101 Switching Protocols` response for a valid request.
 *
 * @category Handshake
 *
 * @param request The validated request.
 * @param token The accept token for `request.key`.
 * @param extensionsHeader The negotiated `Sec-WebSocket-Extensions` value, if any.
 * @param options The subprotocol and extra headers.
 * @returns The response bytes.
 * @throws {TypeError} When the subprotocol was not offered or a header is invalid.
 *
 * @example Answering the RFC 6455 §1.3 request
 * ```ts
 * import { acceptResponse, acceptToken, HttpHeaders, parseUpgradeRequest } from "@sock/sock";
 * import { assertMatch } from "@std/assert";
 *
 * const request = parseUpgradeRequest({
 *   startLine: ["GET", "/chat", "HTTP/1.1"],
 *   headers: new HttpHeaders([
 *     ["Host", "server.example.com"], ["Upgrade", "websocket"], ["Connection", "Upgrade"],
 *     ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"],
 *     ["Sec-WebSocket-Protocol", "chat, superchat"],
 *   ]),
 * });
 * const bytes = acceptResponse(request, acceptToken(request.key), undefined, { subprotocol: "chat" });
 * assertMatch(new TextDecoder().decode(bytes), /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\nSec-WebSocket-Protocol: chat\r\n/);
 * ```
 */
export function acceptResponse(
  request: UpgradeRequest,
  token: string,
  extensionsHeader: string | undefined,
  options: AcceptOptions = {},
): Uint8Array {
  // The fixed fields, the token (base64) and an offered subprotocol (a token of the request) need no
  // checks, and no pairs are made for them (with them, an in-process handshake on Deno made
  // about 1,000 -> 300 B of garbage here).
  let text = ACCEPT_HEAD + token + "\r\n";
  const { subprotocol } = options;
  if (subprotocol !== undefined) {
    if (!request.subprotocols.includes(subprotocol)) {
      throw new TypeError(`subprotocol ${JSON.stringify(subprotocol)} was not offered by the client`);
    }
    text += `Sec-WebSocket-Protocol: ${subprotocol}\r\n`;
  }
  if (extensionsHeader !== undefined) text += fieldLines([["Sec-WebSocket-Extensions", extensionsHeader]]);
  if (options.headers !== undefined) text += fieldLines(headerPairs(options.headers));
  return encoder.encode(text + "\r\n");
}

/**
 * What a client asks for in its opening request.
 *
 * @category Handshake
 */
export interface RequestOptions {
  /** `ws:` or `wss:` URL (`http:`/`https:` are accepted as their WebSocket forms; see {@linkcode parseWebSocketUrl}). */
  url: string | URL;
  /** Subprotocols to offer, most preferred first. */
  subprotocols?: string[] | undefined;
  /** Extensions to offer, already formatted as offers. */
  extensions?: ExtensionOffer[];
  /** Extra request headers (e.g. `Origin`, `Authorization`). */
  headers?: HeadersInit | undefined;
}

/**
 * Builds the client's opening request (RFC 6455 §4.1).
 *
 * @category Handshake
 *
 * @param options The URL, subprotocols, extension offers and extra headers.
 * @param key The `Sec-WebSocket-Key` to send.
 * @returns The request bytes.
 * @throws {TypeError} For a URL that is not ws/wss, a fragment in the URL, a subprotocol that is not a token, or an invalid header.
 *
 * @example A request with a port and a query
 * ```ts
 * import { formatRequest } from "@sock/sock";
 * import { assertMatch } from "@std/assert";
 *
 * const text = new TextDecoder().decode(formatRequest({ url: "ws://localhost:9001/echo?x=1", subprotocols: ["chat"] }, "dGhlIHNhbXBsZSBub25jZQ=="));
 * assertMatch(text, /^GET \/echo\?x=1 HTTP\/1\.1\r\nHost: localhost:9001\r\n/);
 * assertMatch(text, /\r\nSec-WebSocket-Protocol: chat\r\n/);
 * ```
 */
export function formatRequest(options: RequestOptions, key: string): Uint8Array {
  const { host, target } = parseWebSocketUrl(options.url);
  const subprotocols = options.subprotocols ?? [];
  checkSubprotocols(subprotocols);
  const headers: [string, string][] = [
    ["Host", host],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
  ];
  if (subprotocols.length) headers.push(["Sec-WebSocket-Protocol", subprotocols.join(", ")]);
  if (options.extensions?.length) {
    headers.push(["Sec-WebSocket-Extensions", formatExtensions(options.extensions)]);
  }
  headers.push(...headerPairs(options.headers));
  return formatHead(`GET ${target} HTTP/1.1`, headers);
}

/**
 * Checks the subprotocols a client offers (RFC 6455 §4.1): each an HTTP token
 * ({@linkcode isToken}), none twice.
 *
 * @param subprotocols The subprotocols, in the client's order.
 * @throws {TypeError} For one that is not a token or is repeated.
 *
 * @example Checking an offer
 * ```ts
 * import { checkSubprotocols } from "./handshake.ts";
 * import { assertThrows } from "@std/assert";
 *
 * checkSubprotocols(["chat.v2", "chat.v1"]);
 * assertThrows(() => checkSubprotocols(["two words"]), TypeError);
 * assertThrows(() => checkSubprotocols(["chat", "chat"]), TypeError);
 * ```
 */
export function checkSubprotocols(subprotocols: readonly string[]): void {
  const seen = new Set<string>();
  for (const subprotocol of subprotocols) {
    const name = JSON.stringify(subprotocol);
    if (!isToken(subprotocol)) throw new TypeError(`subprotocol ${name} is not a token`);
    if (seen.has(subprotocol)) throw new TypeError(`subprotocol ${name} is offered twice`);
    seen.add(subprotocol);
  }
}

/**
 * A server's response head, split into what the client needs.
 *
 * @category Handshake
 */
export interface HandshakeResponse {
  /** The HTTP status. */
  status: number;
  /** The reason phrase. */
  statusText: string;
  /** Every header field. */
  headers: HttpHeaders;
}

/**
 * Checks a 101 response against the client's request (RFC 6455 §4.1):
 * `Upgrade`, `Connection`, the accept token, and a subprotocol that was offered.
 * Extensions are checked by the caller with `completeExtensions`.
 *
 * @category Handshake
 *
 * @param response The response head.
 * @param expectedToken The accept token for the key sent.
 * @param offeredSubprotocols The subprotocols offered.
 * @returns The subprotocol chosen (empty when none) and the extensions agreed.
 * @throws {ProtocolError} 1002 for any mismatch.
 *
 * @example Accepting a valid response
 * ```ts
 * import { HttpHeaders, checkAcceptResponse } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const result = checkAcceptResponse({
 *   status: 101, statusText: "Switching Protocols",
 *   headers: new HttpHeaders([["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]]),
 * }, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", []);
 * assertEquals(result, { subprotocol: "", extensions: [] });
 * ```
 */
export function checkAcceptResponse(
  response: HandshakeResponse,
  expectedToken: string,
  offeredSubprotocols: readonly string[],
): { subprotocol: string; extensions: ExtensionOffer[] } {
  const { headers } = response;
  const fail = (message: string) => new ProtocolError(message, CloseCode.ProtocolError);
  if (response.status !== 101) throw fail(`expected status 101, got ${response.status}`);
  const upgrade = headers.getAll("upgrade").flatMap(parseUpgradeList);
  if (upgrade.length !== 1 || upgrade[0]!.toLowerCase() !== "websocket") {
    throw fail("response lacks Upgrade: websocket");
  }
  let connection: string[];
  try {
    connection = headers.getAll("connection").flatMap(parseTokenList);
  } catch {
    throw fail("malformed Connection header");
  }
  if (!connection.some((token) => token.toLowerCase() === "upgrade")) {
    throw fail("response lacks Connection: upgrade");
  }
  const accept = headers.getAll("sec-websocket-accept");
  if (accept.length !== 1 || accept[0] !== expectedToken) throw fail("wrong Sec-WebSocket-Accept");
  const chosen = headers.getAll("sec-websocket-protocol");
  if (chosen.length > 1) throw fail("more than one Sec-WebSocket-Protocol");
  const subprotocol = chosen[0] ?? "";
  if (subprotocol !== "" && !offeredSubprotocols.includes(subprotocol)) {
    throw fail(`server chose subprotocol ${JSON.stringify(subprotocol)}, which was not offered`);
  }
  let extensions: ExtensionOffer[];
  try {
    extensions = headers.getAll("sec-websocket-extensions").flatMap(parseExtensions);
  } catch {
    throw fail("malformed Sec-WebSocket-Extensions");
  }
  return { subprotocol, extensions };
}
