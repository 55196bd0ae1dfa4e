import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientEvent,
  type ClientExtensionFactory,
  ClientProtocol,
  type ClientProtocolOptions,
  ProtocolError,
  ReadyState,
  ServerProtocol,
} from "../../src/core/mod.ts";
import {
  acceptResponseText,
  frameBytes,
  joinBytes,
  latin1Bytes,
  latin1Text,
  readFrames,
} from "../_helpers.ts";

/** A random source that fills every buffer with 0, 1, 2, …, so the key is base64 of bytes 0–15. */
const counting = (b: Uint8Array) => b.forEach((_, i) => b[i] = i & 0xff);
const KEY = "AAECAwQFBgcICQoLDA0ODw==";
/** The accept token for {@linkcode KEY}, computed with Python's hashlib. */
const ACCEPT = "Bz3qJYTGdOe8gUSpLosEdiLKDrk=";

function clientFor(options: Partial<ClientProtocolOptions> = {}) {
  const client = new ClientProtocol({ url: "ws://example.com/chat", random: counting, ...options });
  client.sendRequest();
  const request = latin1Text(client.dataToSend());
  return { client, request };
}

function types(events: ClientEvent[]): string[] {
  return events.map((e) => e.type);
}

/** Header lines of the client's request, as [name, value]. */
function requestHeaders(request: string): [string, string][] {
  return request.split("\r\n\r\n")[0].split("\r\n").slice(1).map((line) => {
    const colon = line.indexOf(": ");
    return [line.slice(0, colon), line.slice(colon + 2)];
  });
}

/** Asserts the client failed the handshake with 1002 and sent nothing more; returns the error. */
function assertFailedHandshake(client: ClientProtocol): ProtocolError {
  const events = client.events();
  assert.deepEqual(types(events), ["failed", "closed"]);
  assert.ok(events[0].type === "failed");
  assert.ok(events[0].error instanceof ProtocolError);
  assert.equal(events[0].error.code, 1002);
  assert.ok(events[1].type === "closed");
  assert.equal(events[1].code, 1006);
  assert.equal(events[1].wasClean, false);
  assert.equal(client.readyState, ReadyState.Closed);
  assert.deepEqual(client.dataToSend(), []);
  return events[0].error;
}

// ---- The request

test("ClientProtocol sends the opening request with a key from its random source", async () => {
  const { request } = await clientFor();
  assert.equal(
    request,
    "GET /chat HTTP/1.1\r\n" +
      "Host: example.com\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${KEY}\r\n` +
      "Sec-WebSocket-Version: 13\r\n" +
      "\r\n",
  );
});

test("ClientProtocol draws 16 fresh random bytes for its key", async () => {
  const sizes: number[] = [];
  const keys = new Set<string>();
  for (let n = 0; n < 5; n++) {
    const { request } = await clientFor({
      random: (b) => {
        sizes.push(b.length);
        b.fill(n);
      },
    });
    keys.add(new Map(requestHeaders(request)).get("Sec-WebSocket-Key")!);
  }
  assert.equal(sizes[0], 16);
  assert.equal(keys.size, 5);
  const { request } = await clientFor({ random: undefined });
  const key = new Map(requestHeaders(request)).get("Sec-WebSocket-Key")!;
  assert.equal(atob(key).length, 16);
});

test("ClientProtocol writes the port in Host only when it is not the default", async () => {
  const host = async (url: string) => new Map(requestHeaders((await clientFor({ url })).request)).get("Host");
  assert.equal(await host("ws://h:80/"), "h");
  assert.equal(await host("wss://h:443/"), "h");
  assert.equal(await host("ws://h:8080/"), "h:8080");
  assert.equal(await host("wss://h:8443/"), "h:8443");
});

test("ClientProtocol requests the URL's path and query", async () => {
  assert.match(
    (await clientFor({ url: "ws://h/a/b?x=1&y=2" })).request,
    /^GET \/a\/b\?x=1&y=2 HTTP\/1\.1\r\n/,
  );
  assert.match((await clientFor({ url: "ws://h" })).request, /^GET \/ HTTP\/1\.1\r\n/);
  assert.match((await clientFor({ url: new URL("wss://h/?q") })).request, /^GET \/\?q HTTP\/1\.1\r\n/);
});

test("ClientProtocol sends its subprotocols, extension offers and extra headers", async () => {
  const factory: ClientExtensionFactory = {
    name: "x-foo",
    offer:
      () => [{ name: "x-foo", params: [["a", "1"], ["b", true]] }, { name: "x-foo", params: [["c", "d e"]] }],
    complete: () => ({ name: "x-foo", rsv: 0x20, decode: (d) => d, encode: (data) => ({ data, rsv: 0x20 }) }),
  };
  const { request } = await clientFor({
    subprotocols: ["chat", "superchat"],
    extensions: [factory],
    headers: { Origin: "http://example.com", Authorization: "Bearer t" },
  });
  const headers = requestHeaders(request);
  assert.deepEqual(headers.slice(5), [
    ["Sec-WebSocket-Protocol", "chat, superchat"],
    ["Sec-WebSocket-Extensions", 'x-foo; a=1; b, x-foo; c="d e"'],
    ["Origin", "http://example.com"],
    ["Authorization", "Bearer t"],
  ]);
});

test("ClientProtocol takes an http: URL as ws:", async () => {
  const { request } = await clientFor({ url: "http://example.com:8080/x" });
  assert.match(request, /^GET \/x HTTP\/1\.1\r\nHost: example\.com:8080\r\n/);
});

test("ClientProtocol refuses a bad URL, subprotocol or header with TypeError when constructed", () => {
  const bad: Partial<ClientProtocolOptions>[] = [
    { url: "ws://h/chat#fragment" },
    { url: "ftp://h/" },
    { url: "nonsense" },
    { subprotocols: ["two words"] },
    { subprotocols: ["chat", "chat"] },
    { subprotocols: ["a,b"] },
    { headers: [["X", "a\r\nInjected: 1"]] },
    { headers: [["Bad Name", "1"]] },
  ];
  for (const options of bad) {
    assert.throws(
      () => new ClientProtocol({ url: "ws://h/", random: counting, ...options }),
      TypeError,
      JSON.stringify(options),
    );
  }
});

test("ClientProtocol refuses sendRequest() twice and receiveData() before the request with TypeError", () => {
  const client = new ClientProtocol({ url: "ws://h/", random: counting });
  assert.throws(() => client.receiveData(latin1Bytes("HTTP/1.1 101 OK\r\n\r\n")), TypeError);
  client.sendRequest();
  assert.throws(() => client.sendRequest(), TypeError);
  assert.equal(client.dataToSend().length, 1);
  assert.equal(client.readyState, ReadyState.Connecting);
});

test("ClientProtocol cannot send or close before the handshake completes", async () => {
  const { client } = await clientFor();
  assert.throws(() => client.send("x"), TypeError);
  assert.throws(() => client.close(1000), TypeError);
});

// ---- The response

test("ClientProtocol accepts a valid 101 split at every offset", async () => {
  const response = latin1Bytes(
    acceptResponseText(ACCEPT, ["Sec-WebSocket-Protocol: superchat", "X-Extra: 1"]),
  );
  for (let cut = 0; cut <= response.length; cut++) {
    const { client } = await clientFor({ subprotocols: ["chat", "superchat"] });
    client.receiveData(response.subarray(0, cut));
    if (cut < response.length) assert.deepEqual(client.events(), [], `early event at ${cut}`);
    client.receiveData(response.subarray(cut));
    const events = client.events();
    assert.deepEqual(types(events), ["accepted"], `split at ${cut}`);
    assert.ok(events[0].type === "accepted");
    assert.equal(events[0].response.status, 101);
    assert.equal(events[0].response.statusText, "Switching Protocols");
    assert.equal(events[0].response.headers.get("x-extra"), "1");
    assert.equal(client.subprotocol, "superchat");
    assert.equal(client.readyState, ReadyState.Open);
  }
});

test("ClientProtocol accepts a 101 fed one byte at a time", async () => {
  const response = latin1Bytes(acceptResponseText(ACCEPT));
  const { client } = await clientFor();
  for (let i = 0; i < response.length; i++) client.receiveData(response.subarray(i, i + 1));
  assert.deepEqual(types(client.events()), ["accepted"]);
  assert.equal(client.subprotocol, "");
});

test("ClientProtocol delivers frames that arrive in the same chunk as the 101", async () => {
  const bytes = joinBytes([
    latin1Bytes(acceptResponseText(ACCEPT)),
    frameBytes(0x81, "Hello"),
    frameBytes(0x89, "ping"),
    frameBytes(0x82, new Uint8Array([1, 2])),
  ]);
  const head = acceptResponseText(ACCEPT).length;
  for (const cut of [bytes.length, head - 1, head, head + 1, head + 7, bytes.length - 1]) {
    const { client } = await clientFor();
    client.receiveData(bytes.subarray(0, cut));
    client.receiveData(bytes.subarray(cut));
    const events = client.events();
    assert.deepEqual(types(events), ["accepted", "text", "ping", "binary"], `split at ${cut}`);
    assert.deepEqual(events.slice(1), [
      { type: "text", data: "Hello", final: true },
      { type: "ping", data: latin1Bytes("ping") },
      { type: "binary", data: new Uint8Array([1, 2]), final: true },
    ]);
    // The automatic pong, masked.
    const [pong] = readFrames(client.dataToSend());
    assert.equal(pong.first, 0x8a);
    assert.equal(pong.masked, true);
    assert.equal(latin1Text(pong.payload), "ping");
  }
});

test("ClientProtocol masks what it sends with keys from its random source", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes(acceptResponseText(ACCEPT)));
  client.events();
  client.send("Hi");
  // The pool is filled with 0, 1, 2, …: the first mask key is 00 01 02 03.
  assert.deepEqual(client.dataToSend(), [new Uint8Array([0x81, 0x82, 0, 1, 2, 3, 0x48, 0x69 ^ 1])]);
});

test("ClientProtocol fails with 1002 on a masked frame from the server", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes(acceptResponseText(ACCEPT)));
  client.events();
  client.receiveData(frameBytes(0x81, "x", [1, 2, 3, 4]));
  const events = client.events();
  assert.deepEqual(types(events), ["failed", "closed"]);
  assert.ok(events[0].type === "failed");
  assert.equal(events[0].error.code, 1002);
});

const INVALID_101: [string, string][] = [
  [
    "no Upgrade",
    `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`,
  ],
  [
    "Upgrade: h2c",
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`,
  ],
  [
    "no Connection",
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`,
  ],
  [
    "Connection: close",
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: close\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n`,
  ],
  [
    "no Sec-WebSocket-Accept",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
  ],
  ["the accept token of another key", acceptResponseText("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")],
  ["a subprotocol that was not offered", acceptResponseText(ACCEPT, ["Sec-WebSocket-Protocol: json"])],
  ["two subprotocols", acceptResponseText(ACCEPT, ["Sec-WebSocket-Protocol: chat, superchat"])],
  [
    "an extension that was not offered",
    acceptResponseText(ACCEPT, ["Sec-WebSocket-Extensions: permessage-deflate"]),
  ],
  ["a malformed status line", "HTTP/1.1 1O1 Switching Protocols\r\n\r\n"],
  ["an HTTP/2 status line", `HTTP/2 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n`],
  ["a bare LF", `HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\r\n\r\n`],
  ["an obs-fold", acceptResponseText(ACCEPT, ["X: a", " b"])],
];

for (const [what, response] of INVALID_101) {
  test(`ClientProtocol fails a response with ${what} with 1002`, async () => {
    const { client } = await clientFor({ subprotocols: ["chat", "superchat"] });
    client.receiveData(latin1Bytes(response));
    assertFailedHandshake(client);
  });
}

test("ClientProtocol fails with 1002 when the server chooses a subprotocol though none was offered", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes(acceptResponseText(ACCEPT, ["Sec-WebSocket-Protocol: chat"])));
  assertFailedHandshake(client);
});

test("ClientProtocol fails with 1002 on a response head over its limit", async () => {
  const { client } = await clientFor({ maxHeadSize: 128 });
  client.receiveData(latin1Bytes(acceptResponseText(ACCEPT, ["X-Pad: " + "p".repeat(200)])));
  assertFailedHandshake(client);
});

test("ClientProtocol ignores bytes after a failed handshake", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes(acceptResponseText("wrong")));
  assertFailedHandshake(client);
  client.receiveData(frameBytes(0x81, "late"));
  client.receiveEof();
  assert.deepEqual(client.events(), []);
});

// ---- Rejections

test("ClientProtocol reports a non-101 response with a Content-Length body as rejected", async () => {
  const response = latin1Bytes(
    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nX-Reason: a\r\nx-reason: b\r\n\r\nGo away!\nIGNORED",
  );
  for (let cut = 0; cut <= response.length; cut += 3) {
    const { client } = await clientFor();
    client.receiveData(response.subarray(0, cut));
    if (cut < response.length - 8) assert.deepEqual(client.events(), [], `early event at ${cut}`);
    client.receiveData(response.subarray(cut));
    const events = client.events();
    assert.deepEqual(types(events), ["rejected", "closed"], `split at ${cut}`);
    assert.ok(events[0].type === "rejected");
    assert.equal(events[0].response.status, 403);
    assert.equal(events[0].response.statusText, "Forbidden");
    assert.deepEqual(events[0].response.headers.getAll("X-REASON"), ["a", "b"]);
    assert.equal(latin1Text(events[0].body), "Go away!\n");
    assert.ok(events[1].type === "closed");
    assert.equal(events[1].code, 1006);
    assert.equal(client.readyState, ReadyState.Closed);
  }
});

test("ClientProtocol reports a rejection body that arrives one byte at a time", async () => {
  const response = latin1Bytes("HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nlogin");
  const { client } = await clientFor();
  for (let i = 0; i < response.length - 1; i++) client.receiveData(response.subarray(i, i + 1));
  assert.deepEqual(client.events(), []);
  client.receiveData(response.subarray(response.length - 1));
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(latin1Text(events[0].body), "login");
});

test("ClientProtocol reports a rejection with Content-Length: 0 at once", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(events[0].response.status, 404);
  assert.deepEqual(events[0].body, new Uint8Array(0));
});

test("ClientProtocol reads a rejection body without Content-Length until EOF", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy, "));
  client.receiveData(latin1Bytes("try later"));
  assert.deepEqual(client.events(), []);
  client.receiveEof();
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(events[0].response.status, 503);
  assert.equal(latin1Text(events[0].body), "busy, try later");
});

test("ClientProtocol reads a rejection head with no body until EOF", async () => {
  const { client } = await clientFor();
  client.receiveData(latin1Bytes("HTTP/1.1 200\r\n\r\n"));
  client.receiveEof();
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(events[0].response.status, 200);
  assert.equal(events[0].response.statusText, "");
  assert.equal(events[0].body.length, 0);
});

test("ClientProtocol keeps at most maxRejectBodySize bytes of a rejection body", async () => {
  const { client } = await clientFor({ maxRejectBodySize: 4 });
  client.receiveData(latin1Bytes("HTTP/1.1 400 Bad Request\r\n\r\nab"));
  assert.deepEqual(client.events(), []);
  client.receiveData(latin1Bytes("cdefgh"));
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(latin1Text(events[0].body), "abcd");
});

test("ClientProtocol ends as 1006 on EOF before any response", async () => {
  const { client } = await clientFor();
  client.receiveEof();
  const events = client.events();
  assert.deepEqual(types(events), ["closed"]);
  assert.ok(events[0].type === "closed");
  assert.equal(events[0].code, 1006);
});

// ---- Loopback

test("A ClientProtocol and a ServerProtocol agree on a subprotocol and exchange messages", () => {
  const client = new ClientProtocol({
    url: "ws://localhost:9001/room?id=7",
    subprotocols: ["chat", "superchat"],
  });
  const server = new ServerProtocol();
  client.sendRequest();
  for (const chunk of client.dataToSend()) server.receiveData(chunk);
  const [request] = server.events();
  assert.ok(request.type === "request");
  assert.equal(request.request.error, undefined);
  assert.equal(request.request.path, "/room");
  assert.equal(request.request.query, "id=7");
  assert.equal(request.request.headers.get("host"), "localhost:9001");
  assert.deepEqual(request.request.subprotocols, ["chat", "superchat"]);
  server.accept({ subprotocol: "superchat" });
  const toClient = () => {
    for (const chunk of server.dataToSend()) client.receiveData(chunk);
  };
  const toServer = () => {
    for (const chunk of client.dataToSend()) server.receiveData(chunk);
  };
  toClient();
  assert.deepEqual(types(client.events()), ["accepted"]);
  assert.equal(client.subprotocol, "superchat");
  assert.equal(server.subprotocol, "superchat");

  const big = new Uint8Array(70000).map((_, i) => i * 7);
  client.send("hello server");
  client.send(big);
  client.send("frag", { fin: false });
  client.send("mented \u00e9\u{1f600}");
  client.ping("p1");
  toServer();
  assert.deepEqual(server.events(), [
    { type: "text", data: "hello server", final: true },
    { type: "binary", data: big, final: true },
    { type: "text", data: "fragmented \u00e9\u{1f600}", final: true },
    { type: "ping", data: latin1Bytes("p1") },
  ]);
  server.send("hello client");
  server.send(big.subarray(0, 300));
  toClient();
  assert.deepEqual(client.events(), [
    { type: "pong", data: latin1Bytes("p1") },
    { type: "text", data: "hello client", final: true },
    { type: "binary", data: big.slice(0, 300), final: true },
  ]);

  client.close(1000, "bye");
  toServer();
  assert.deepEqual(server.events(), [
    { type: "close", code: 1000, reason: "bye" },
    {
      type: "closed",
      code: 1000,
      reason: "bye",
      wasClean: true,
      received: { code: 1000, reason: "bye" },
      sent: { code: 1000, reason: "" },
    },
  ]);
  toClient();
  const closing = client.events();
  assert.deepEqual(types(closing), ["close", "closed"]);
  assert.ok(closing[1].type === "closed");
  assert.equal(closing[1].code, 1000);
  assert.equal(closing[1].wasClean, true);
  assert.equal(client.readyState, ReadyState.Closed);
  assert.equal(server.readyState, ReadyState.Closed);
});

test("A ClientProtocol sees a ServerProtocol's rejection with its status, headers and body", () => {
  const client = new ClientProtocol({ url: "ws://h/private" });
  const server = new ServerProtocol();
  client.sendRequest();
  for (const chunk of client.dataToSend()) server.receiveData(chunk);
  server.events();
  server.reject(401, { headers: [["WWW-Authenticate", "Bearer"]], body: "log in first", final: false });
  server.rejectData(", please", true);
  for (const chunk of server.dataToSend()) client.receiveData(chunk);
  client.receiveEof();
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(events[0].response.status, 401);
  assert.equal(events[0].response.headers.get("www-authenticate"), "Bearer");
  assert.equal(latin1Text(events[0].body), "log in first, please");
});

test("A ServerProtocol that picks no subprotocol leaves the client with none", () => {
  const client = new ClientProtocol({ url: "ws://h/", subprotocols: ["chat"] });
  const server = new ServerProtocol();
  client.sendRequest();
  for (const chunk of client.dataToSend()) server.receiveData(chunk);
  server.events();
  server.accept();
  for (const chunk of server.dataToSend()) client.receiveData(chunk);
  assert.deepEqual(types(client.events()), ["accepted"]);
  assert.equal(client.subprotocol, "");
});

test("ClientProtocol decodes a chunked rejection body, split at every offset", async () => {
  const response = latin1Bytes(
    "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "4\r\nWiki\r\n5;note=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
  );
  for (let cut = 0; cut <= response.length; cut++) {
    const { client } = await clientFor();
    client.receiveData(response.subarray(0, cut));
    if (cut < response.length - 16) assert.deepEqual(client.events(), [], `early event at ${cut}`);
    client.receiveData(response.subarray(cut));
    const events = client.events();
    assert.deepEqual(types(events), ["rejected", "closed"], `split at ${cut}`);
    assert.ok(events[0].type === "rejected");
    assert.equal(latin1Text(events[0].body), "Wikipedia", `split at ${cut}`);
  }
});

test("ClientProtocol keeps what arrived of a chunked rejection body cut short by EOF", async () => {
  const { client } = await clientFor();
  client.receiveData(
    latin1Bytes(
      "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n8\r\nde",
    ),
  );
  assert.deepEqual(client.events(), []);
  client.receiveEof();
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(latin1Text(events[0].body), "abcde");
});

test("ClientProtocol decodes a chunked rejection body of many 1-byte chunks up to maxRejectBodySize", async () => {
  const { client } = await clientFor({ maxRejectBodySize: 3000 });
  client.receiveData(latin1Bytes("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"));
  for (let i = 0; i < 2000; i++) client.receiveData(latin1Bytes("1\r\nx\r\n"));
  assert.deepEqual(client.events(), []);
  client.receiveData(latin1Bytes("0\r\n\r\n"));
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(events[0].body.length, 2000);
});

test("ClientProtocol stops reading a chunked rejection body at maxRejectBodySize", async () => {
  const { client } = await clientFor({ maxRejectBodySize: 10 });
  client.receiveData(latin1Bytes("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n"));
  client.receiveData(latin1Bytes("abcdefghijklmnopqrstuvwxyz012345\r\n"));
  const events = client.events();
  assert.deepEqual(types(events), ["rejected", "closed"]);
  assert.ok(events[0].type === "rejected");
  assert.equal(latin1Text(events[0].body), "abcdefghij");
});
