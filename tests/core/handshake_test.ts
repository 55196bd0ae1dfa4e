import { test } from "node:test";
import assert from "node:assert/strict";
import {
  acceptResponse,
  acceptToken,
  checkAcceptResponse,
  formatRequest,
  formatResponse,
  generateKey,
  type HandshakeResponse,
  HttpHeaders,
  parseUpgradeRequest,
  ProtocolError,
  type UpgradeRequest,
  WEBSOCKET_GUID,
} from "../../src/core/mod.ts";
import { checkSubprotocols } from "../../src/core/handshake.ts";
import { latin1Text, RFC_ACCEPT, RFC_KEY } from "../_helpers.ts";

const VALID: [string, string][] = [
  ["Host", "server.example.com"],
  ["Upgrade", "websocket"],
  ["Connection", "Upgrade"],
  ["Sec-WebSocket-Key", RFC_KEY],
  ["Sec-WebSocket-Version", "13"],
];

/** The RFC 6455 §1.3 request with headers replaced (a string), dropped (`null`) or added (`extra`). */
function request(
  set: Record<string, string | null> = {},
  extra: [string, string][] = [],
  startLine: [string, string, string] = ["GET", "/chat", "HTTP/1.1"],
): UpgradeRequest {
  const fields: [string, string][] = [];
  for (const [name, value] of VALID) {
    const v = name in set ? set[name] : value;
    if (v !== null) fields.push([name, v]);
  }
  return parseUpgradeRequest({ startLine, headers: new HttpHeaders([...fields, ...extra]) });
}

function errorStatus(r: UpgradeRequest): number | undefined {
  if (r.error === undefined) return undefined;
  assert.ok(r.error instanceof ProtocolError);
  return r.error.status;
}

// ---- acceptToken / generateKey

test("acceptToken() gives the RFC 6455 §1.3 answer", () => {
  assert.equal(WEBSOCKET_GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  assert.equal(acceptToken("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

test("acceptToken() matches SHA-1 computed elsewhere for other keys", () => {
  // Computed with Python's hashlib and base64.
  assert.equal(acceptToken("AAAAAAAAAAAAAAAAAAAAAA=="), "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
  assert.equal(acceptToken("AAECAwQFBgcICQoLDA0ODw=="), "Bz3qJYTGdOe8gUSpLosEdiLKDrk=");
  assert.equal(acceptToken("AQIDBAUGBwgJCgsMDQ4PEA=="), "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=");
});

test("acceptToken() gives each key its own answer when computed at once, whatever the key's length", async () => {
  const tokens = await Promise.all([
    acceptToken("AAAAAAAAAAAAAAAAAAAAAA=="),
    acceptToken("AAECAwQFBgcICQoLDA0ODw=="),
    acceptToken("AQIDBAUGBwgJCgsMDQ4PEA=="),
    acceptToken("dGhlIHNhbXBsZSBub25jZQ=="),
  ]);
  assert.deepEqual(tokens, [
    "ICX+Yqv66kxgM0FcWaLWlFLwTAI=",
    "Bz3qJYTGdOe8gUSpLosEdiLKDrk=",
    "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=",
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  ]);
  // Not a 24-character ASCII key: the same SHA-1 of key and GUID, through the general path.
  const expected = async (key: string) => {
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WEBSOCKET_GUID));
    return btoa(String.fromCharCode(...new Uint8Array(digest)));
  };
  for (const key of ["short", "é".repeat(24), "x".repeat(25)]) {
    assert.equal(acceptToken(key), await expected(key), key);
  }
});

test("generateKey() is base64 of the 16 bytes its random source gives", () => {
  assert.equal(generateKey((b) => b.fill(0)), "AAAAAAAAAAAAAAAAAAAAAA==");
  assert.equal(generateKey((b) => b.fill(0xff)), "/////////////////////w==");
  assert.equal(generateKey((b) => b.forEach((_, i) => b[i] = i)), "AAECAwQFBgcICQoLDA0ODw==");
  let size = 0;
  generateKey((b) => size = b.length);
  assert.equal(size, 16);
});

test("generateKey() by default makes fresh keys that a server accepts", () => {
  const keys = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const key = generateKey();
    assert.match(key, /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(atob(key).length, 16);
    assert.equal(request({ "Sec-WebSocket-Key": key }).error, undefined);
    keys.add(key);
  }
  assert.equal(keys.size, 20);
});

// ---- parseUpgradeRequest

test("parseUpgradeRequest() accepts the RFC 6455 §1.3 request", () => {
  const r = request({}, [["Origin", "http://example.com"], ["Sec-WebSocket-Protocol", "chat, superchat"]]);
  assert.equal(r.error, undefined);
  assert.equal(r.method, "GET");
  assert.equal(r.target, "/chat");
  assert.equal(r.path, "/chat");
  assert.equal(r.query, "");
  assert.equal(r.version, "HTTP/1.1");
  assert.equal(r.key, RFC_KEY);
  assert.deepEqual(r.subprotocols, ["chat", "superchat"]);
  assert.deepEqual(r.extensions, []);
  assert.equal(r.headers.get("origin"), "http://example.com");
});

test("parseUpgradeRequest() splits the target into path and query", () => {
  const withQuery = request({}, [], ["GET", "/a/b?x=1&y=2?z", "HTTP/1.1"]);
  assert.deepEqual([withQuery.path, withQuery.query], ["/a/b", "x=1&y=2?z"]);
  const emptyQuery = request({}, [], ["GET", "/?", "HTTP/1.1"]);
  assert.deepEqual([emptyQuery.path, emptyQuery.query], ["/", ""]);
});

test("parseUpgradeRequest() takes the path and query of an absolute-form target", () => {
  const r = request({}, [], ["GET", "ws://server.example.com:8080/chat?room=1", "HTTP/1.1"]);
  assert.equal(r.error, undefined);
  assert.deepEqual([r.target, r.path, r.query], [
    "ws://server.example.com:8080/chat?room=1",
    "/chat",
    "room=1",
  ]);
  const bare = request({}, [], ["GET", "http://server.example.com", "HTTP/1.1"]);
  assert.deepEqual([bare.path, bare.query], ["/", ""]);
  const query = request({}, [], ["GET", "http://server.example.com?x", "HTTP/1.1"]);
  assert.deepEqual([query.path, query.query], ["/", "x"]);
});

test("parseUpgradeRequest() throws 400 for a malformed target, method or version", () => {
  const cases: [string, string, string][] = [
    ["GET", "chat", "HTTP/1.1"],
    ["GET", "*", "HTTP/1.1"],
    ["G(T", "/", "HTTP/1.1"],
    ["GET", "/", "HTTP/1"],
    ["GET", "/", "HTTP/1.10"],
    ["GET", "/", "http/1.1"],
    ["GET", "/", "HTTPS/1.1"],
  ];
  for (const startLine of cases) {
    assert.throws(
      () => request({}, [], startLine),
      (e) => e instanceof ProtocolError && e.status === 400,
      startLine.join(" "),
    );
  }
});

test("parseUpgradeRequest() throws 505 for HTTP/2.0 and HTTP/0.9", () => {
  for (const version of ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0"]) {
    assert.throws(
      () => request({}, [], ["GET", "/", version]),
      (e) => e instanceof ProtocolError && e.status === 505,
      version,
    );
  }
});

test("parseUpgradeRequest() reports a method other than GET as 405 with Allow: GET", () => {
  for (const method of ["POST", "HEAD", "get", "CONNECT"]) {
    const r = request({}, [], [method, "/", "HTTP/1.1"]);
    assert.equal(errorStatus(r), 405, method);
    assert.deepEqual(r.error!.headers, [["Allow", "GET"]]);
    assert.equal(r.method, method);
  }
});

test("parseUpgradeRequest() reports HTTP/1.0 as 400 and accepts HTTP/1.2", () => {
  assert.equal(errorStatus(request({}, [], ["GET", "/", "HTTP/1.0"])), 400);
  assert.equal(errorStatus(request({}, [], ["GET", "/", "HTTP/1.2"])), undefined);
});

test("parseUpgradeRequest() requires a websocket token in Upgrade, in any case (426)", () => {
  for (const ok of ["websocket", "WebSocket", "WEBSOCKET", "h2c, websocket", " websocket ,foo/2"]) {
    assert.equal(errorStatus(request({ Upgrade: ok })), undefined, ok);
  }
  assert.equal(errorStatus(request({ Upgrade: "h2c" }, [["Upgrade", "websocket"]])), undefined);
  for (const bad of [null, "", "h2c", "websockets", "web socket", "websocket/13"]) {
    const r = request({ Upgrade: bad });
    assert.equal(errorStatus(r), 426, String(bad));
    const names = r.error!.headers.map(([n, v]) => `${n.toLowerCase()}: ${v.toLowerCase()}`);
    assert.ok(names.includes("upgrade: websocket"), String(bad));
  }
});

test("parseUpgradeRequest() requires an upgrade token in Connection, in any case (400)", () => {
  for (const ok of ["Upgrade", "upgrade", "keep-alive, Upgrade", "Upgrade , close"]) {
    assert.equal(errorStatus(request({ Connection: ok })), undefined, ok);
  }
  assert.equal(errorStatus(request({ Connection: "keep-alive" }, [["Connection", "Upgrade"]])), undefined);
  for (const bad of [null, "", "keep-alive", "upgrades", "Upgrade;x", "keep alive"]) {
    assert.equal(errorStatus(request({ Connection: bad })), 400, String(bad));
  }
});

test("parseUpgradeRequest() requires exactly one non-empty Host (400)", () => {
  assert.equal(errorStatus(request({ Host: null })), 400);
  assert.equal(errorStatus(request({ Host: "" })), 400);
  assert.equal(errorStatus(request({}, [["Host", "other.example.com"]])), 400);
});

test("parseUpgradeRequest() requires Sec-WebSocket-Version 13 (426 with Sec-WebSocket-Version: 13)", () => {
  for (const bad of [null, "8", "12", "14", "13, 8", "", "013"]) {
    const r = request({ "Sec-WebSocket-Version": bad });
    assert.equal(errorStatus(r), 426, String(bad));
    assert.deepEqual(r.error!.headers, [["Sec-WebSocket-Version", "13"]]);
  }
  assert.equal(errorStatus(request({}, [["Sec-WebSocket-Version", "13"]])), 426);
});

test("parseUpgradeRequest() requires one Sec-WebSocket-Key of base64 for exactly 16 bytes (400)", () => {
  const bad = [
    null,
    "",
    "dGhlIHNhbXBsZSBub25jZQ", // no padding
    "dGhlIHNhbXBsZSBub25jZQ=", // short padding
    "dGhlIHNhbXBsZSBub25jZR==", // bits set after the 16th byte
    "AAAAAAAAAAAAAAAAAAAAAAA=", // 17 bytes
    "AAAAAAAAAAAAAAAAAAAA", // 15 bytes
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 21 bytes
    "dGhlIHNhbXBsZSBub25jZ-==", // base64url
    "dGhlIHNhbXBsZSBub2 5jZQ==",
  ];
  for (const key of bad) {
    assert.equal(errorStatus(request({ "Sec-WebSocket-Key": key })), 400, String(key));
  }
  assert.equal(errorStatus(request({}, [["Sec-WebSocket-Key", RFC_KEY]])), 400, "repeated");
  for (const key of ["AAAAAAAAAAAAAAAAAAAAAA==", "/////////////////////w==", "+++++++++++++++++++++g=="]) {
    assert.equal(errorStatus(request({ "Sec-WebSocket-Key": key })), undefined, key);
  }
});

test("parseUpgradeRequest() reads subprotocols from repeated headers in order", () => {
  const r = request({}, [["Sec-WebSocket-Protocol", "chat, superchat"], [
    "sec-websocket-protocol",
    " json ,",
  ]]);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.subprotocols, ["chat", "superchat", "json"]);
});

test("parseUpgradeRequest() reports a subprotocol that is not a token as 400", () => {
  assert.equal(errorStatus(request({}, [["Sec-WebSocket-Protocol", "chat, two words"]])), 400);
});

test("parseUpgradeRequest() reads extension offers with quoted parameters", () => {
  const r = request({}, [
    ["Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"],
    ["Sec-WebSocket-Extensions", 'x-foo; a="b \\"c\\""'],
  ]);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.extensions, [
    { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
    { name: "x-foo", params: [["a", 'b "c"']] },
  ]);
});

test("parseUpgradeRequest() reports a malformed Sec-WebSocket-Extensions as 400", () => {
  assert.equal(errorStatus(request({}, [["Sec-WebSocket-Extensions", "x; a="]])), 400);
});

test("parseUpgradeRequest() keeps every header, repeated ones too", () => {
  const r = request({}, [["X-Multi", "1"], ["x-multi", "2"]]);
  assert.deepEqual(r.headers.getAll("X-MULTI"), ["1", "2"]);
  assert.equal(r.headers.get("sec-websocket-key"), RFC_KEY);
});

// ---- acceptResponse / formatResponse

test("acceptResponse() answers the RFC 6455 §1.3 request byte for byte", () => {
  const r = request({}, [["Sec-WebSocket-Protocol", "chat, superchat"]]);
  const bytes = acceptResponse(r, acceptToken(r.key), undefined, { subprotocol: "chat" });
  assert.equal(
    latin1Text(bytes),
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
      "Sec-WebSocket-Protocol: chat\r\n" +
      "\r\n",
  );
});

test("acceptResponse() adds the extensions header, then extra headers from pairs or a record", () => {
  const r = request();
  const pairs = latin1Text(
    acceptResponse(r, RFC_ACCEPT, "x; a=1", { headers: [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]] }),
  );
  assert.match(pairs, /\r\nSec-WebSocket-Extensions: x; a=1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n$/);
  const record = latin1Text(acceptResponse(r, RFC_ACCEPT, undefined, { headers: { "X-Server": "sock" } }));
  assert.match(record, /\r\nX-Server: sock\r\n\r\n$/);
  assert.doesNotMatch(record, /Sec-WebSocket-(Protocol|Extensions)/);
});

test("acceptResponse() refuses a subprotocol the client did not offer with TypeError", () => {
  const r = request({}, [["Sec-WebSocket-Protocol", "chat"]]);
  assert.throws(() => acceptResponse(r, RFC_ACCEPT, undefined, { subprotocol: "superchat" }), TypeError);
  assert.throws(() => acceptResponse(r, RFC_ACCEPT, undefined, { subprotocol: "Chat" }), TypeError);
  assert.throws(() => acceptResponse(request(), RFC_ACCEPT, undefined, { subprotocol: "chat" }), TypeError);
});

test("acceptResponse() refuses header names and values that could inject a header", () => {
  const r = request();
  for (
    const headers of [
      { "X-A": "1\r\nSet-Cookie: evil=1" } as Record<string, string>,
      { "X-A": "1\nSet-Cookie: evil=1" },
      { "X-A": "1\rX" },
      { "X-A": "1\0" },
      { "X-A\r\nSet-Cookie": "evil=1" },
      { "X A": "1" },
      { "": "1" },
    ]
  ) {
    assert.throws(
      () => acceptResponse(r, RFC_ACCEPT, undefined, { headers }),
      TypeError,
      JSON.stringify(headers),
    );
  }
});

test("formatResponse() writes the status line with its reason and the headers", () => {
  assert.equal(
    latin1Text(formatResponse(404, [["Content-Length", "0"]])),
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
  );
  assert.equal(
    latin1Text(formatResponse(426, { "Sec-WebSocket-Version": "13" })),
    "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  assert.match(latin1Text(formatResponse(431)), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n\r\n$/);
  // A status without a registered reason phrase gets none (RFC 9112 §4), not a made-up one.
  assert.equal(latin1Text(formatResponse(599)), "HTTP/1.1 599 \r\n\r\n");
  assert.equal(latin1Text(formatResponse(418)), "HTTP/1.1 418 \r\n\r\n");
});

test("formatResponse() writes the standard reason phrase of every RFC 9110 status and the registered ones", () => {
  // RFC 9110 §15 (306 and 418 are unused there), then others from the IANA HTTP Status Code Registry.
  const reasons: Record<number, string> = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    203: "Non-Authoritative Information",
    204: "No Content",
    205: "Reset Content",
    206: "Partial Content",
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
    426: "Upgrade Required",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    102: "Processing",
    103: "Early Hints",
    207: "Multi-Status",
    208: "Already Reported",
    226: "IM Used",
    423: "Locked",
    424: "Failed Dependency",
    425: "Too Early",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    451: "Unavailable For Legal Reasons",
    506: "Variant Also Negotiates",
    507: "Insufficient Storage",
    508: "Loop Detected",
    511: "Network Authentication Required",
  };
  for (const [status, reason] of Object.entries(reasons)) {
    assert.equal(latin1Text(formatResponse(Number(status))), `HTTP/1.1 ${status} ${reason}\r\n\r\n`);
  }
});

test("formatResponse() refuses a status outside 100–599 with RangeError", () => {
  for (const status of [0, 99, 600, 1000, 200.5, NaN, -404]) {
    assert.throws(() => formatResponse(status), RangeError, String(status));
  }
});

test("formatResponse() refuses CR, LF or NUL in a value and a non-token name with TypeError", () => {
  assert.throws(() => formatResponse(200, [["X", "a\r\nSet-Cookie: b"]]), TypeError);
  assert.throws(() => formatResponse(200, [["X", "a\n"]]), TypeError);
  assert.throws(() => formatResponse(200, [["X", "\ra"]]), TypeError);
  assert.throws(() => formatResponse(200, [["X", "a\0"]]), TypeError);
  assert.throws(() => formatResponse(200, [["X:Y", "a"]]), TypeError);
  assert.throws(() => formatResponse(200, { "X\n": "a" }), TypeError);
});

// ---- formatRequest

test("formatRequest() writes the opening request byte for byte", () => {
  const bytes = formatRequest({
    url: "ws://server.example.com/chat",
    subprotocols: ["chat", "superchat"],
    extensions: [{ name: "permessage-deflate", params: [["client_max_window_bits", true]] }],
    headers: [["Origin", "http://example.com"]],
  }, RFC_KEY);
  assert.equal(
    latin1Text(bytes),
    "GET /chat HTTP/1.1\r\n" +
      "Host: server.example.com\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${RFC_KEY}\r\n` +
      "Sec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Protocol: chat, superchat\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
      "Origin: http://example.com\r\n" +
      "\r\n",
  );
});

test("formatRequest() writes the port in Host only when it is not the scheme's default", () => {
  const host = (url: string) =>
    /\r\nHost: ([^\r]*)\r\n/.exec(latin1Text(formatRequest({ url }, RFC_KEY)))![1];
  assert.equal(host("ws://h:80/"), "h");
  assert.equal(host("wss://h:443/"), "h");
  assert.equal(host("ws://h:8080/"), "h:8080");
  assert.equal(host("ws://h:443/"), "h:443");
  assert.equal(host("wss://h:80/"), "h:80");
  assert.equal(host("http://h:80/"), "h");
  assert.equal(host("https://h:443/"), "h");
  assert.equal(host("ws://[::1]:9001/"), "[::1]:9001");
  assert.equal(host("ws://EXAMPLE.com/"), "example.com");
});

test("formatRequest() sends the path and query, and / for an empty path", () => {
  const line = (url: string | URL) => latin1Text(formatRequest({ url }, RFC_KEY)).split("\r\n")[0];
  assert.equal(line("ws://h"), "GET / HTTP/1.1");
  assert.equal(line("ws://h?x=1"), "GET /?x=1 HTTP/1.1");
  assert.equal(line("wss://h/a/b?x=1&y=%20"), "GET /a/b?x=1&y=%20 HTTP/1.1");
  assert.equal(line(new URL("ws://h/a b")), "GET /a%20b HTTP/1.1");
});

test("formatRequest() takes http: and https: as ws: and wss:", () => {
  assert.match(
    latin1Text(formatRequest({ url: "http://h/x" }, RFC_KEY)),
    /^GET \/x HTTP\/1\.1\r\nHost: h\r\n/,
  );
  assert.match(
    latin1Text(formatRequest({ url: "https://h:8443/x" }, RFC_KEY)),
    /^GET \/x HTTP\/1\.1\r\nHost: h:8443\r\n/,
  );
});

test("formatRequest() refuses other schemes, fragments and unparsable URLs with TypeError", () => {
  for (
    const url of [
      "ftp://h/",
      "file:///x",
      "data:,x",
      "ws://h/#frag",
      "wss://h/chat#x",
      "not a url",
      "/relative",
    ]
  ) {
    assert.throws(() => formatRequest({ url }, RFC_KEY), TypeError, url);
  }
});

test("formatRequest() refuses subprotocols that are not unique tokens with TypeError", () => {
  for (const subprotocols of [["two words"], [""], ["chat", "a,b"], ["chat\r\nX: y"], ["chat", "chat"]]) {
    assert.throws(
      () => formatRequest({ url: "ws://h/", subprotocols }, RFC_KEY),
      TypeError,
      JSON.stringify(subprotocols),
    );
  }
});

test("checkSubprotocols() passes distinct tokens and refuses the rest with TypeError", () => {
  checkSubprotocols([]);
  checkSubprotocols(["chat", "chat.v2", "Chat", "x-y_z~!#$%&'*+^`|"]);
  for (const subprotocols of [["two words"], [""], ["a,b"], ["é"], ["chat", "chat"]]) {
    assert.throws(() => checkSubprotocols(subprotocols), TypeError, JSON.stringify(subprotocols));
  }
});

test("formatRequest() refuses header injection through extra headers with TypeError", () => {
  assert.throws(
    () => formatRequest({ url: "ws://h/", headers: { Origin: "a\r\nX: y" } }, RFC_KEY),
    TypeError,
  );
  assert.throws(() => formatRequest({ url: "ws://h/", headers: [["Bad Name", "a"]] }, RFC_KEY), TypeError);
});

test("formatRequest() leaves out empty subprotocol and extension lists", () => {
  const text = latin1Text(formatRequest({ url: "ws://h/", subprotocols: [], extensions: [] }, RFC_KEY));
  assert.doesNotMatch(text, /Sec-WebSocket-(Protocol|Extensions)/);
});

// ---- checkAcceptResponse

function response(fields: [string, string][], status = 101): HandshakeResponse {
  return { status, statusText: "Switching Protocols", headers: new HttpHeaders(fields) };
}

const GOOD: [string, string][] = [
  ["Upgrade", "websocket"],
  ["Connection", "Upgrade"],
  ["Sec-WebSocket-Accept", RFC_ACCEPT],
];

function check(fields: [string, string][], offered: string[] = [], status = 101) {
  return checkAcceptResponse(response(fields, status), RFC_ACCEPT, offered);
}

function checkFails(fields: [string, string][], offered: string[] = [], status = 101): number {
  try {
    check(fields, offered, status);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
    return error.code;
  }
  assert.fail("expected the response to be refused");
}

test("checkAcceptResponse() accepts a valid 101 and returns the subprotocol and extensions", () => {
  assert.deepEqual(check(GOOD), { subprotocol: "", extensions: [] });
  assert.deepEqual(
    check([...GOOD, ["Sec-WebSocket-Protocol", "superchat"], ["Sec-WebSocket-Extensions", "x; a=1"]], [
      "chat",
      "superchat",
    ]),
    { subprotocol: "superchat", extensions: [{ name: "x", params: [["a", "1"]] }] },
  );
});

test("checkAcceptResponse() takes Upgrade and Connection in any case and Connection as a list", () => {
  assert.doesNotThrow(() =>
    check([["upgrade", "WebSocket"], ["CONNECTION", "keep-alive, upgrade"], GOOD[2]])
  );
});

test("checkAcceptResponse() refuses a status other than 101 with 1002", () => {
  assert.equal(checkFails(GOOD, [], 200), 1002);
  assert.equal(checkFails(GOOD, [], 403), 1002);
});

test("checkAcceptResponse() refuses a missing or wrong Upgrade with 1002", () => {
  assert.equal(checkFails([GOOD[1], GOOD[2]]), 1002);
  assert.equal(checkFails([["Upgrade", "h2c"], GOOD[1], GOOD[2]]), 1002);
  assert.equal(checkFails([["Upgrade", "websocket, h2c"], GOOD[1], GOOD[2]]), 1002);
});

test("checkAcceptResponse() refuses a missing or wrong Connection with 1002", () => {
  assert.equal(checkFails([GOOD[0], GOOD[2]]), 1002);
  assert.equal(checkFails([GOOD[0], ["Connection", "close"], GOOD[2]]), 1002);
  assert.equal(checkFails([GOOD[0], ["Connection", "up grade"], GOOD[2]]), 1002);
});

test("checkAcceptResponse() refuses a missing, wrong or repeated Sec-WebSocket-Accept with 1002", () => {
  assert.equal(checkFails([GOOD[0], GOOD[1]]), 1002);
  assert.equal(
    checkFails([GOOD[0], GOOD[1], ["Sec-WebSocket-Accept", "ICX+Yqv66kxgM0FcWaLWlFLwTAI="]]),
    1002,
  );
  assert.equal(checkFails([GOOD[0], GOOD[1], ["Sec-WebSocket-Accept", RFC_ACCEPT.toLowerCase()]]), 1002);
  assert.equal(checkFails([...GOOD, ["Sec-WebSocket-Accept", RFC_ACCEPT]]), 1002);
});

test("checkAcceptResponse() refuses a subprotocol that was not offered, or two, with 1002", () => {
  assert.equal(checkFails([...GOOD, ["Sec-WebSocket-Protocol", "chat"]]), 1002);
  assert.equal(checkFails([...GOOD, ["Sec-WebSocket-Protocol", "json"]], ["chat"]), 1002);
  assert.equal(
    checkFails([...GOOD, ["Sec-WebSocket-Protocol", "chat, superchat"]], ["chat", "superchat"]),
    1002,
  );
  assert.equal(
    checkFails([...GOOD, ["Sec-WebSocket-Protocol", "chat"], ["Sec-WebSocket-Protocol", "chat"]], ["chat"]),
    1002,
  );
});

test("checkAcceptResponse() refuses a malformed Sec-WebSocket-Extensions with 1002", () => {
  assert.equal(checkFails([...GOOD, ["Sec-WebSocket-Extensions", 'x; a="']]), 1002);
});
