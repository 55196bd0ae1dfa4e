import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ProtocolError,
  ReadyState,
  type ServerEvent,
  ServerProtocol,
  type ServerProtocolOptions,
  type UpgradeRequest,
} from "../../src/core/mod.ts";
import {
  frameBytes,
  joinBytes,
  latin1Bytes,
  latin1Text,
  readFrames,
  RFC_ACCEPT,
  RFC_MASK,
  upgradeRequest,
  type UpgradeRequestOptions,
} from "../_helpers.ts";

/** Bytes a client may send before the answer: one read of any adapter (Bun's are up to 512 KiB). */
const EARLY_DATA_LIMIT = 512 << 10;

/** The RFC 6455 §5.7 masked "Hello" from a client. */
const MASKED_HELLO = new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);

/** A server fed `input` in one piece; returns it with the request from its only event. */
function serverWith(input: string | Uint8Array, options: ServerProtocolOptions = {}) {
  const server = new ServerProtocol(options);
  server.receiveData(typeof input === "string" ? latin1Bytes(input) : input);
  const events = server.events();
  assert.deepEqual(events.map((e) => e.type), ["request"]);
  const event = events[0];
  assert.ok(event.type === "request");
  assert.equal(server.request, event.request);
  return { server, request: event.request };
}

/** A server given the default request with changes. */
function serverFor(changes: UpgradeRequestOptions = {}, options: ServerProtocolOptions = {}) {
  return serverWith(upgradeRequest(changes), options);
}

/** The request's error status. */
function errorStatus(request: UpgradeRequest): number | undefined {
  return request.error?.status;
}

/** Parses an HTTP response as the server queued it. */
function parseResponse(chunks: Uint8Array[]) {
  const text = latin1Text(chunks);
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no complete head in ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  assert.ok(match, `bad status line ${JSON.stringify(statusLine)}`);
  const headers = lines.map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
  });
  const get = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  return { status: Number(match[1]), headers, get, body: text.slice(end + 4), text };
}

/** A server that failed the handshake: returns the status it answered with. */
function handshakeFailure(input: string | Uint8Array | Uint8Array[], options: ServerProtocolOptions = {}) {
  const server = new ServerProtocol(options);
  const chunks = Array.isArray(input) ? input : [typeof input === "string" ? latin1Bytes(input) : input];
  for (const chunk of chunks) server.receiveData(chunk);
  const events = server.events();
  assert.deepEqual(events.map((e) => e.type), ["failed", "closed"]);
  assert.ok(events[0].type === "failed");
  const error = events[0].error;
  assert.ok(error instanceof ProtocolError);
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, error.status);
  assert.deepEqual(response.get("connection"), ["close"]);
  assert.equal(response.get("content-length")[0], String(latin1Bytes(response.body).length));
  assert.equal(server.readyState, ReadyState.Closed);
  return { status: error.status, response, server };
}

function types(events: ServerEvent[]): string[] {
  return events.map((e) => e.type);
}

/** Everything a request event tells, as plain data. */
function requestSummary(request: UpgradeRequest) {
  return {
    method: request.method,
    target: request.target,
    path: request.path,
    query: request.query,
    version: request.version,
    key: request.key,
    subprotocols: request.subprotocols,
    extensions: request.extensions,
    headers: [...request.headers],
    error: request.error?.status,
  };
}

const FULL_REQUEST = upgradeRequest({
  target: "/chat?room=1&x=%20",
  extra: [
    ["Origin", "http://example.com"],
    ["Sec-WebSocket-Protocol", "chat, superchat"],
    ["sec-websocket-protocol", "json"],
    ["Sec-WebSocket-Extensions", 'permessage-deflate; client_max_window_bits, x-foo; a="b \\"c\\""'],
    ["X-Multi", "1"],
    ["x-multi", "2"],
  ],
});

// ---- Incremental parsing

test("ServerProtocol emits one request event exposing the target, headers, subprotocols and extensions", () => {
  const { request } = serverWith(FULL_REQUEST);
  assert.equal(request.error, undefined);
  assert.equal(request.method, "GET");
  assert.equal(request.target, "/chat?room=1&x=%20");
  assert.equal(request.path, "/chat");
  assert.equal(request.query, "room=1&x=%20");
  assert.deepEqual(request.subprotocols, ["chat", "superchat", "json"]);
  assert.deepEqual(request.extensions, [
    { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
    { name: "x-foo", params: [["a", 'b "c"']] },
  ]);
  assert.deepEqual(request.headers.getAll("X-MULTI"), ["1", "2"]);
  assert.equal(request.headers.get("origin"), "http://example.com");
  assert.equal(request.headers.get("SEC-WEBSOCKET-PROTOCOL"), "chat, superchat, json");
});

test("ServerProtocol emits the same request event for a request split at every offset", () => {
  const bytes = latin1Bytes(FULL_REQUEST);
  const expected = requestSummary(serverWith(bytes).request);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const server = new ServerProtocol();
    server.receiveData(bytes.subarray(0, cut));
    if (cut < bytes.length) assert.deepEqual(server.events(), [], `early event at ${cut}`);
    server.receiveData(bytes.subarray(cut));
    const events = server.events();
    assert.deepEqual(types(events), ["request"], `split at ${cut}`);
    assert.ok(events[0].type === "request");
    assert.deepEqual(requestSummary(events[0].request), expected, `split at ${cut}`);
  }
});

test("ServerProtocol emits the same request event for a request fed one byte at a time", () => {
  const bytes = latin1Bytes(FULL_REQUEST);
  const server = new ServerProtocol();
  for (let i = 0; i < bytes.length; i++) {
    assert.deepEqual(server.events(), [], `event before byte ${i}`);
    server.receiveData(bytes.subarray(i, i + 1));
  }
  const events = server.events();
  assert.deepEqual(types(events), ["request"]);
  assert.ok(events[0].type === "request");
  assert.deepEqual(requestSummary(events[0].request), requestSummary(serverWith(bytes).request));
});

test("ServerProtocol keeps a frame pipelined after the head and delivers it after accept()", () => {
  const bytes = joinBytes([latin1Bytes(upgradeRequest()), MASKED_HELLO]);
  for (let cut = 1; cut < bytes.length; cut++) {
    const server = new ServerProtocol();
    server.receiveData(bytes.subarray(0, cut));
    server.receiveData(bytes.subarray(cut));
    assert.deepEqual(types(server.events()), ["request"], `split at ${cut}`);
    server.accept();
    assert.deepEqual(server.events(), [{ type: "text", data: "Hello", final: true }], `split at ${cut}`);
    assert.equal(parseResponse(server.dataToSend()).status, 101);
  }
});

test("ServerProtocol keeps frames that arrive between the request and accept(), and delivers them after it", () => {
  const { server } = serverFor();
  server.receiveData(MASKED_HELLO.subarray(0, 4));
  server.receiveData(MASKED_HELLO.subarray(4));
  assert.deepEqual(server.events(), []);
  server.accept();
  assert.deepEqual(server.events(), [{ type: "text", data: "Hello", final: true }]);
});

test("ServerProtocol drops early data when it rejects", () => {
  const server = new ServerProtocol();
  server.receiveData(joinBytes([latin1Bytes(upgradeRequest()), MASKED_HELLO]));
  server.events();
  server.reject(403);
  server.receiveData(MASKED_HELLO);
  assert.deepEqual(types(server.events()), ["closed"]);
  assert.equal(parseResponse(server.dataToSend()).status, 403);
});

test("ServerProtocol fails with 400 when early data goes beyond its limit", () => {
  const { server } = serverFor();
  server.receiveData(new Uint8Array(EARLY_DATA_LIMIT - 1000));
  assert.deepEqual(server.events(), []);
  server.receiveData(new Uint8Array(1000));
  assert.deepEqual(server.events(), [], "up to the limit is kept");
  server.receiveData(new Uint8Array(1));
  const events = server.events();
  assert.deepEqual(types(events), ["failed", "closed"]);
  assert.ok(events[0].type === "failed");
  assert.equal(events[0].error.status, 400);
  assert.equal(parseResponse(server.dataToSend()).status, 400);
  assert.throws(() => server.reject(), TypeError);
});

test("ServerProtocol fails with 400 when the head arrives with early data beyond its limit", () => {
  const server = new ServerProtocol();
  server.receiveData(joinBytes([latin1Bytes(upgradeRequest()), new Uint8Array(EARLY_DATA_LIMIT + 1)]));
  const events = server.events();
  assert.deepEqual(types(events).slice(-2), ["failed", "closed"]);
  const failed = events.at(-2)!;
  assert.ok(failed.type === "failed");
  assert.equal(failed.error.status, 400);
  assert.equal(parseResponse(server.dataToSend()).status, 400);
});

test("ServerProtocol rejects accept() after early data failed the handshake", () => {
  const { server } = serverFor();
  server.receiveData(new Uint8Array(EARLY_DATA_LIMIT + 1));
  assert.throws(() => server.accept(), TypeError);
});

// ---- Limits and syntax

test("ServerProtocol answers a head over maxHeadSize with 431 and fails", () => {
  const request = upgradeRequest({ extra: [["X-Pad", "p".repeat(300)]] });
  assert.equal(handshakeFailure(request, { maxHeadSize: 256 }).status, 431);
  serverWith(request, { maxHeadSize: request.length });
});

test("ServerProtocol answers a head that never ends with 431 before it gets large", () => {
  const chunks = [latin1Bytes("GET / HTTP/1.1\r\n")];
  for (let i = 0; i < 200; i++) chunks.push(latin1Bytes(`X-Pad-${i}: ${"p".repeat(100)}\r\n`));
  assert.equal(handshakeFailure(chunks).status, 431);
});

test("ServerProtocol answers an overlong request line with 414", () => {
  const { status, response } = handshakeFailure(upgradeRequest({ target: "/" + "a".repeat(100) }), {
    maxLineLength: 64,
  });
  assert.equal(status, 414);
  assert.match(response.text, /^HTTP\/1\.1 414 /);
});

test("ServerProtocol answers an overlong header line with 431", () => {
  const request = upgradeRequest({ extra: [["Cookie", "c".repeat(100)]] });
  assert.equal(handshakeFailure(request, { maxLineLength: 64 }).status, 431);
});

test("ServerProtocol answers too many header fields with 431", () => {
  const extra: [string, string][] = Array.from({ length: 10 }, (_, i) => [`X-${i}`, "1"]);
  assert.equal(handshakeFailure(upgradeRequest({ extra }), { maxHeaders: 14 }).status, 431);
  serverFor({ extra }, { maxHeaders: 15 });
});

const BAD_SYNTAX: [string, string][] = [
  ["a bare LF", upgradeRequest().replace("Upgrade: websocket\r\n", "Upgrade: websocket\n")],
  ["a bare CR", upgradeRequest().replace("Upgrade: websocket\r\n", "Upgrade: websocket\r")],
  ["a NUL", upgradeRequest({ extra: [["X", "a\0b"]] })],
  ["obs-fold", upgradeRequest().replace("Connection: Upgrade\r\n", "Connection:\r\n Upgrade\r\n")],
  [
    "a header without a colon",
    upgradeRequest({ extra: [["X-No-Colon", ""]] }).replace("X-No-Colon: ", "X-No-Colon"),
  ],
  ["a space before a colon", upgradeRequest().replace("Host:", "Host :")],
  ["a malformed request line", upgradeRequest({ target: "/a b" })],
  ["a request target that is not a path", upgradeRequest({ target: "chat" })],
  ["a malformed HTTP version", upgradeRequest({ version: "HTTP/1" })],
];

for (const [what, request] of BAD_SYNTAX) {
  test(`ServerProtocol answers a request with ${what} with 400 and fails`, () => {
    const { status, response } = handshakeFailure(request);
    assert.equal(status, 400);
    assert.match(response.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  });
}

test("ServerProtocol answers HTTP/2.0 with 505 and fails", () => {
  assert.equal(handshakeFailure(upgradeRequest({ version: "HTTP/2.0" })).status, 505);
});

test("ServerProtocol ignores bytes after it failed the handshake", () => {
  const { server } = handshakeFailure("GET / HTTP/1.1\nHost: a\r\n\r\n");
  server.receiveData(latin1Bytes(upgradeRequest()));
  assert.deepEqual(server.events(), []);
  assert.deepEqual(server.dataToSend(), []);
});

// ---- Validation

test("ServerProtocol reports a POST upgrade as 405 and reject() answers 405 with Allow: GET", () => {
  const { server, request } = serverFor({ method: "POST" });
  assert.equal(errorStatus(request), 405);
  server.reject();
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 405);
  assert.deepEqual(response.get("allow"), ["GET"]);
  assert.deepEqual(response.get("connection"), ["close"]);
  assert.deepEqual(types(server.events()), ["closed"]);
});

test("ServerProtocol.accept() throws the request's error for an invalid upgrade", () => {
  const { server } = serverFor({ method: "POST" });
  assert.throws(() => server.accept(), (e) => e instanceof ProtocolError && e.status === 405);
  assert.deepEqual(server.dataToSend(), []);
  server.reject();
  assert.equal(parseResponse(server.dataToSend()).status, 405);
});

test("ServerProtocol reports HTTP/1.0 as 400", () => {
  const { server, request } = serverFor({ version: "HTTP/1.0" });
  assert.equal(errorStatus(request), 400);
  server.reject();
  assert.equal(parseResponse(server.dataToSend()).status, 400);
});

test("ServerProtocol reports a missing Host as 400", () => {
  assert.equal(errorStatus(serverFor({ set: { Host: null } }).request), 400);
});

test("ServerProtocol requires a websocket token in Upgrade, in any case (426)", () => {
  for (const upgrade of ["websocket", "WebSocket", "h2c, websocket"]) {
    assert.equal(errorStatus(serverFor({ set: { Upgrade: upgrade } }).request), undefined, upgrade);
  }
  for (const upgrade of [null, "h2c", "websockets"]) {
    const { server, request } = serverFor({ set: { Upgrade: upgrade } });
    assert.equal(errorStatus(request), 426, String(upgrade));
    server.reject();
    const response = parseResponse(server.dataToSend());
    assert.equal(response.status, 426);
    assert.deepEqual(response.get("upgrade"), ["websocket"]);
  }
});

test("ServerProtocol requires an upgrade token in Connection (400)", () => {
  for (const connection of ["Upgrade", "keep-alive, Upgrade", "upgrade"]) {
    assert.equal(errorStatus(serverFor({ set: { Connection: connection } }).request), undefined, connection);
  }
  for (const connection of [null, "keep-alive", "close"]) {
    assert.equal(
      errorStatus(serverFor({ set: { Connection: connection } }).request),
      400,
      String(connection),
    );
  }
});

test("ServerProtocol answers a missing or wrong Sec-WebSocket-Version with 426 and Sec-WebSocket-Version: 13", () => {
  for (const version of [null, "8", "14", "13, 8"]) {
    const { server, request } = serverFor({ set: { "Sec-WebSocket-Version": version } });
    assert.equal(errorStatus(request), 426, String(version));
    server.reject();
    const response = parseResponse(server.dataToSend());
    assert.equal(response.status, 426, String(version));
    assert.deepEqual(response.get("sec-websocket-version"), ["13"]);
  }
  const { server } = serverFor({ set: { "Sec-WebSocket-Version": "8" } });
  server.reject(426);
  assert.deepEqual(parseResponse(server.dataToSend()).get("sec-websocket-version"), ["13"]);
});

test("ServerProtocol reports a Sec-WebSocket-Key that is not base64 of 16 bytes, or repeated, as 400", () => {
  for (
    const key of [
      null,
      "abc",
      "AAAAAAAAAAAAAAAAAAAAAAA=",
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "dGhlIHNhbXBsZSBub25jZR==",
    ]
  ) {
    assert.equal(errorStatus(serverFor({ set: { "Sec-WebSocket-Key": key } }).request), 400, String(key));
  }
  assert.equal(
    errorStatus(serverFor({ extra: [["Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="]] }).request),
    400,
  );
});

test("ServerProtocol.reject() without a status answers a valid upgrade with 403", () => {
  const { server } = serverFor();
  server.reject();
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 403);
  assert.deepEqual(response.get("content-length"), ["0"]);
  assert.equal(response.body, "");
});

// ---- accept()

test("ServerProtocol.accept() sends 101 with the right accept token and opens", () => {
  const { server } = serverFor();
  server.accept();
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 101);
  assert.deepEqual(response.get("upgrade"), ["websocket"]);
  assert.deepEqual(response.get("connection"), ["Upgrade"]);
  assert.deepEqual(response.get("sec-websocket-accept"), [RFC_ACCEPT]);
  assert.deepEqual(response.get("sec-websocket-protocol"), []);
  assert.equal(response.body, "");
  assert.equal(server.readyState, ReadyState.Open);
  assert.equal(server.subprotocol, "");
  assert.deepEqual(server.events(), []);
});

test("ServerProtocol.accept() sends the chosen subprotocol when the client offered it", () => {
  const { server } = serverFor({ extra: [["Sec-WebSocket-Protocol", "chat, superchat"]] });
  server.accept({ subprotocol: "superchat" });
  assert.deepEqual(parseResponse(server.dataToSend()).get("sec-websocket-protocol"), ["superchat"]);
  assert.equal(server.subprotocol, "superchat");
});

test("ServerProtocol.accept() may choose no subprotocol when some are offered", () => {
  const { server } = serverFor({ extra: [["Sec-WebSocket-Protocol", "chat"]] });
  server.accept();
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 101);
  assert.deepEqual(response.get("sec-websocket-protocol"), []);
  assert.equal(server.subprotocol, "");
});

test("ServerProtocol.accept() refuses a subprotocol the client did not offer with TypeError, and can be retried", () => {
  const { server } = serverFor({ extra: [["Sec-WebSocket-Protocol", "chat"]] });
  assert.throws(() => server.accept({ subprotocol: "superchat" }), TypeError);
  assert.deepEqual(server.dataToSend(), []);
  assert.equal(server.readyState, ReadyState.Connecting);
  server.accept({ subprotocol: "chat" });
  assert.equal(parseResponse(server.dataToSend()).status, 101);
});

test("ServerProtocol.accept() sends extra response headers", () => {
  const { server } = serverFor();
  server.accept({ headers: [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"], ["X-Server", "sock"]] });
  const response = parseResponse(server.dataToSend());
  assert.deepEqual(response.get("set-cookie"), ["a=1", "b=2"]);
  assert.deepEqual(response.get("x-server"), ["sock"]);
});

test("ServerProtocol.accept() refuses header injection with TypeError and sends nothing", () => {
  for (
    const headers of [
      { "X-A": "1\r\nSet-Cookie: evil=1" } as Record<string, string>,
      { "X-A": "1\nX: y" },
      { "X-A": "1\rX: y" },
      { "X-A\r\nSet-Cookie": "evil" },
    ]
  ) {
    const { server } = serverFor();
    assert.throws(() => server.accept({ headers }), TypeError, JSON.stringify(headers));
    assert.deepEqual(server.dataToSend(), []);
    assert.equal(server.readyState, ReadyState.Connecting);
  }
});

test("ServerProtocol then exchanges messages with the client", () => {
  const { server } = serverFor();
  server.accept();
  server.dataToSend();
  server.receiveData(MASKED_HELLO);
  server.receiveData(frameBytes(0x82, new Uint8Array([1, 2, 3]), RFC_MASK));
  assert.deepEqual(server.events(), [
    { type: "text", data: "Hello", final: true },
    { type: "binary", data: new Uint8Array([1, 2, 3]), final: true },
  ]);
  server.send("Hello");
  assert.deepEqual(server.dataToSend(), [new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])]);
  server.receiveData(frameBytes(0x81, "unmasked"));
  const events = server.events();
  assert.deepEqual(types(events), ["failed", "closed"]);
  assert.ok(events[0].type === "failed");
  assert.equal(events[0].error.code, 1002);
  const [close] = readFrames(server.dataToSend());
  assert.equal(close.first, 0x88);
  assert.equal(close.masked, false);
  assert.deepEqual([...close.payload.subarray(0, 2)], [0x03, 0xea]);
});

// ---- reject()

test("ServerProtocol.reject() sends any status with headers and a text body, then closes", () => {
  const { server } = serverFor();
  server.reject(401, { headers: { "WWW-Authenticate": 'Basic realm="chat"' }, body: "who are you? \u2603" });
  const chunks = server.dataToSend();
  const response = parseResponse(chunks);
  assert.equal(response.status, 401);
  assert.deepEqual(response.get("www-authenticate"), ['Basic realm="chat"']);
  assert.deepEqual(response.get("content-type"), ["text/plain; charset=utf-8"]);
  assert.deepEqual(response.get("content-length"), [
    String(new TextEncoder().encode("who are you? \u2603").length),
  ]);
  assert.deepEqual(response.get("connection"), ["close"]);
  const all = joinBytes(chunks);
  const body = new TextEncoder().encode("who are you? \u2603");
  assert.deepEqual(all.subarray(all.length - body.length), body);
  const events = server.events();
  assert.deepEqual(types(events), ["closed"]);
  assert.ok(events[0].type === "closed");
  assert.equal(events[0].wasClean, false);
  assert.equal(server.readyState, ReadyState.Closed);
});

test("ServerProtocol.reject() sends a binary body without a Content-Type, and keeps the caller's", () => {
  const { server } = serverFor();
  server.reject(418, { body: new Uint8Array([0xff, 0x00, 0x41]) });
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 418);
  assert.deepEqual(response.get("content-type"), []);
  assert.deepEqual(response.get("content-length"), ["3"]);
  assert.equal(response.body, "\xff\x00A");
  const other = serverFor().server;
  other.reject(400, { headers: [["content-type", "application/json"]], body: "{}" });
  assert.deepEqual(parseResponse(other.dataToSend()).get("content-type"), ["application/json"]);
});

test("ServerProtocol.reject() with final: false sends the body in parts through rejectData()", () => {
  const { server } = serverFor();
  server.reject(503, { body: "first ", final: false });
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 503);
  assert.deepEqual(response.get("content-length"), []);
  assert.deepEqual(response.get("connection"), ["close"]);
  assert.equal(response.body, "first ");
  assert.deepEqual(server.events(), []);
  server.rejectData("second ");
  server.rejectData(new Uint8Array([0x41]));
  assert.equal(latin1Text(server.dataToSend()), "second A");
  assert.deepEqual(server.events(), []);
  server.rejectData("last", true);
  assert.equal(latin1Text(server.dataToSend()), "last");
  assert.deepEqual(types(server.events()), ["closed"]);
  assert.throws(() => server.rejectData("more"), TypeError);
});

test("ServerProtocol.reject() answers a HEAD request without a body, with the Content-Length a GET gets", () => {
  const { server } = serverFor({ method: "HEAD" });
  server.reject(200, { body: "<p>page</p>" });
  const response = parseResponse(server.dataToSend());
  assert.equal(response.status, 200);
  assert.deepEqual(response.get("content-length"), ["11"]);
  assert.equal(response.body, "");
  assert.deepEqual(types(server.events()), ["closed"]);
  // In parts, too: rejectData() sends nothing for HEAD.
  const parts = serverFor({ method: "HEAD" }).server;
  parts.reject(200, { body: "first ", final: false });
  parts.rejectData("second", true);
  assert.equal(parseResponse(parts.dataToSend()).body, "");
  assert.deepEqual(types(parts.events()), ["closed"]);
  // And the error response for early data beyond the limit.
  const early = serverFor({ method: "HEAD" }).server;
  early.receiveData(new Uint8Array(EARLY_DATA_LIMIT + 1));
  const failed = parseResponse(early.dataToSend());
  assert.equal(failed.status, 400);
  assert.notEqual(failed.get("content-length")[0], "0");
  assert.equal(failed.body, "");
});

test("ServerProtocol.reject() refuses header injection with TypeError and sends nothing", () => {
  for (
    const headers of [
      [["X-A", "1\r\nSet-Cookie: evil=1"]] as [string, string][],
      [["X-A", "1\nX: y"]] as [string, string][],
      [["X-A", "1\r"]] as [string, string][],
      [["X-A\r\nX", "1"]] as [string, string][],
      [["", "1"]] as [string, string][],
    ]
  ) {
    const { server } = serverFor();
    assert.throws(() => server.reject(400, { headers }), TypeError, JSON.stringify(headers));
    assert.deepEqual(server.dataToSend(), []);
    assert.equal(server.readyState, ReadyState.Connecting);
  }
});

test("ServerProtocol.reject() refuses 101 and statuses outside 100–599 with RangeError", () => {
  const { server } = serverFor();
  assert.throws(() => server.reject(101), RangeError);
  assert.throws(() => server.reject(99), RangeError);
  assert.throws(() => server.reject(600), RangeError);
  assert.deepEqual(server.dataToSend(), []);
  server.reject(404);
  assert.equal(parseResponse(server.dataToSend()).status, 404);
});

test("ServerProtocol refuses accept() after reject() with TypeError", () => {
  const { server } = serverFor();
  server.reject(403, { final: false });
  assert.throws(() => server.accept(), TypeError);
  server.rejectData("", true);
  assert.throws(() => server.accept(), TypeError);
});

test("ServerProtocol refuses reject() after accept() with TypeError, even while accept() is pending", async () => {
  const { server } = serverFor();
  const accepting = server.accept();
  assert.throws(() => server.reject(403), TypeError);
  await accepting;
  assert.throws(() => server.reject(403), TypeError);
  assert.throws(() => server.rejectData("x"), TypeError);
  assert.throws(() => server.accept(), TypeError);
  assert.equal(parseResponse(server.dataToSend()).status, 101);
});

test("ServerProtocol refuses reject() twice and answers before a request with TypeError", () => {
  const server = new ServerProtocol();
  assert.equal(server.request, undefined);
  assert.throws(() => server.reject(), TypeError);
  assert.throws(() => server.accept(), TypeError);
  assert.throws(() => server.rejectData("x"), TypeError);
  server.receiveData(latin1Bytes(upgradeRequest()));
  server.reject(403, { final: false });
  assert.throws(() => server.reject(403), TypeError);
});

test("ServerProtocol ends a pending rejection at EOF", () => {
  const { server } = serverFor();
  server.reject(500, { body: "partial", final: false });
  server.receiveEof();
  const events = server.events();
  assert.deepEqual(types(events), ["closed"]);
  assert.ok(events[0].type === "closed");
  assert.equal(events[0].code, 1006);
  assert.throws(() => server.rejectData("more"), TypeError);
});

test("ServerProtocol.accept() is synchronous: the 101 is queued and the state OPEN when it returns", () => {
  const server = new ServerProtocol();
  server.receiveData(latin1Bytes(upgradeRequest()));
  server.events();
  server.accept();
  assert.equal(server.readyState, ReadyState.Open);
  assert.ok(latin1Text(server.dataToSend()).startsWith("HTTP/1.1 101 "));
  // An EOF after it ends the open connection, as any EOF does.
  server.receiveEof();
  assert.equal(server.readyState, ReadyState.Closed);
  assert.throws(() => server.accept(), TypeError);
});
