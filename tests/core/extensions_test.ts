import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientEvent,
  type ClientExtensionFactory,
  ClientProtocol,
  completeExtensions,
  type Extension,
  type ExtensionOffer,
  formatExtensions,
  HttpHeaders,
  negotiateExtensions,
  parseExtensions,
  parseUpgradeRequest,
  ProtocolError,
  RSV1,
  RSV2,
  type ServerEvent,
  type ServerExtensionFactory,
  ServerProtocol,
} from "../../src/core/mod.ts";
import {
  acceptResponseText,
  frameBytes,
  latin1Bytes,
  latin1Text,
  readFrames,
  RFC_MASK,
  upgradeRequest,
} from "../_helpers.ts";

// ---- A toy extension: "x-identity" on RSV2, XOR-ing every byte with its `xor` parameter (0 = identity).

const NAME = "x-identity";

interface Calls {
  decode: { length: number; rsv: number; final: boolean }[];
  encode: { length: number; first: boolean; final: boolean }[];
}

function xorExtension(
  key: number,
  calls: Calls = { decode: [], encode: [] },
  name = NAME,
  rsv = RSV2,
): Extension {
  return {
    name,
    rsv,
    decode(data, messageRsv, final, maxSize) {
      calls.decode.push({ length: data.length, rsv: messageRsv, final });
      const out = data.map((b) => b ^ key);
      if (out.length > maxSize) throw new ProtocolError("x-identity: message too big", 1009);
      return out;
    },
    encode(data, first, final) {
      calls.encode.push({ length: data.length, first, final });
      return { data: data.map((b) => b ^ key), rsv: first ? rsv : 0 };
    },
  };
}

/** The `xor` parameter of an offer: 0 when absent, `undefined` when invalid. */
function xorParam(offer: ExtensionOffer): number | undefined {
  if (offer.params.length === 0) return 0;
  if (offer.params.length > 1) return undefined;
  const [param, value] = offer.params[0];
  if (param !== "xor" || value === true || !/^\d{1,3}$/.test(value) || Number(value) > 255) return undefined;
  return Number(value);
}

function serverFactory(
  seen: ExtensionOffer[][] = [],
  calls?: Calls,
  name = NAME,
  rsv = RSV2,
): ServerExtensionFactory {
  return {
    name,
    accept(offers) {
      seen.push(offers);
      for (const offer of offers) {
        const key = xorParam(offer);
        if (key === undefined) continue;
        const response: ExtensionOffer = { name, params: key ? [["xor", String(key)]] : [] };
        return { response, extension: xorExtension(key, calls, name, rsv) };
      }
      return undefined;
    },
  };
}

function clientFactory(
  offers: ExtensionOffer[],
  calls?: Calls,
  name = NAME,
  rsv = RSV2,
): ClientExtensionFactory {
  return {
    name,
    offer: () => offers,
    complete(response) {
      const key = xorParam(response);
      if (key === undefined) throw new ProtocolError("x-identity: bad answer", 1002);
      return xorExtension(key, calls, name, rsv);
    },
  };
}

function xor(bytes: Uint8Array, key: number): Uint8Array {
  return bytes.map((b) => b ^ key);
}

const enc = (s: string) => new TextEncoder().encode(s);

/** A server that accepted the default request with the given extension header and factories. */
function openServer(offer: string | undefined, factories: ServerExtensionFactory[]) {
  const server = new ServerProtocol({ extensions: factories });
  server.receiveData(
    latin1Bytes(upgradeRequest({ extra: offer ? [["Sec-WebSocket-Extensions", offer]] : [] })),
  );
  assert.deepEqual(server.events().map((e) => e.type), ["request"]);
  server.accept();
  const response = latin1Text(server.dataToSend());
  return { server, response };
}

/** A client that got a 101 with the given extra header lines. */
function openClient(extensions: ClientExtensionFactory[], extra: string[]) {
  const client = new ClientProtocol({ url: "ws://example.com/chat", extensions, random: (b) => b.fill(0) });
  client.sendRequest();
  const request = latin1Text(client.dataToSend());
  client.receiveData(latin1Bytes(acceptResponseText("ICX+Yqv66kxgM0FcWaLWlFLwTAI=", extra)));
  return { client, request };
}

function failure(events: (ServerEvent | ClientEvent)[]) {
  assert.deepEqual(events.map((e) => e.type), ["failed", "closed"]);
  const failed = events[0];
  assert.ok(failed.type === "failed");
  return failed.error;
}

// ---- parseExtensions / formatExtensions

test("parseExtensions() reads names, bare parameters, token values and quoted values", () => {
  assert.deepEqual(
    parseExtensions('permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-foo; a="b c"'),
    [
      {
        name: "permessage-deflate",
        params: [["client_max_window_bits", true], ["server_max_window_bits", "10"]],
      },
      { name: "x-foo", params: [["a", "b c"]] },
    ],
  );
});

test("parseExtensions() unescapes quoted strings", () => {
  assert.deepEqual(parseExtensions('x; a="q\\"uo\\\\te"; b="\\x"; c=""; d="10"'), [
    { name: "x", params: [["a", 'q"uo\\te'], ["b", "x"], ["c", ""], ["d", "10"]] },
  ]);
  assert.deepEqual(parseExtensions('x; a=",;=", y'), [
    { name: "x", params: [["a", ",;="]] },
    { name: "y", params: [] },
  ]);
});

test("parseExtensions() keeps several offers of one extension and repeated parameters, in order", () => {
  assert.deepEqual(parseExtensions("x; a=1; a=2, y, x; b"), [
    { name: "x", params: [["a", "1"], ["a", "2"]] },
    { name: "y", params: [] },
    { name: "x", params: [["b", true]] },
  ]);
});

test("parseExtensions() allows optional whitespace and skips empty list elements", () => {
  assert.deepEqual(parseExtensions(" ,\tx ;\ta = 1 ; b ,, , y\t,"), [
    { name: "x", params: [["a", "1"], ["b", true]] },
    { name: "y", params: [] },
  ]);
  assert.deepEqual(parseExtensions(""), []);
  assert.deepEqual(parseExtensions(" , "), []);
});

test("parseExtensions() reads repeated Sec-WebSocket-Extensions fields as one list", () => {
  const headers = new HttpHeaders([
    ["Sec-WebSocket-Extensions", "x; a=1"],
    ["sec-websocket-extensions", 'y; b="2 3", x'],
  ]);
  const expected = [
    { name: "x", params: [["a", "1"]] },
    { name: "y", params: [["b", "2 3"]] },
    { name: "x", params: [] },
  ];
  assert.deepEqual(parseExtensions(headers.get("sec-websocket-extensions")!), expected);
  const request = parseUpgradeRequest({
    startLine: ["GET", "/", "HTTP/1.1"],
    headers: new HttpHeaders([
      ["Host", "h"],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
      ["Sec-WebSocket-Version", "13"],
      ...headers,
    ]),
  });
  assert.equal(request.error, undefined);
  assert.deepEqual(request.extensions, expected);
});

const MALFORMED_EXTENSIONS = [
  "x;",
  "x; ",
  ";a",
  "x; =1",
  "x; a=",
  "x; a= ,",
  'x; a="unterminated',
  'x; a="escape at the end\\',
  "x y",
  "x; a=b c",
  'x; a="b"c',
  "x; a==b",
  "x; a=b=c",
  "x; a b",
  '"x"',
  "x, ;",
  "caf\xe9",
  "x; caf\xe9=1",
  "x; a=caf\xe9",
  "x; a=1;, y",
  "x/1",
];

for (const value of MALFORMED_EXTENSIONS) {
  test(`parseExtensions() refuses ${JSON.stringify(value)} with status 400`, () => {
    assert.throws(
      () => parseExtensions(value),
      (e) => e instanceof ProtocolError && e.status === 400 && e.code === 1002,
    );
  });
}

test("formatExtensions() writes tokens bare, quotes other values and escapes quotes and backslashes", () => {
  assert.equal(
    formatExtensions([
      {
        name: "permessage-deflate",
        params: [["client_max_window_bits", true], ["server_max_window_bits", "10"]],
      },
      { name: "x", params: [["a", 'say "hi"\\'], ["b", ""], ["c", "a b"]] },
    ]),
    'permessage-deflate; client_max_window_bits; server_max_window_bits=10, x; a="say \\"hi\\"\\\\"; b=""; c="a b"',
  );
  assert.equal(formatExtensions([]), "");
});

test("formatExtensions() output parses back to the same extensions", () => {
  const extensions: ExtensionOffer[] = [
    { name: "x", params: [["a", 'q"uo\\te'], ["b", true], ["c", ""], ["d", ",;= \t"], ["a", "2"]] },
    { name: "y", params: [] },
    { name: "x", params: [["e", "caf\xe9"]] },
  ];
  assert.deepEqual(parseExtensions(formatExtensions(extensions)), extensions);
});

test("formatExtensions() refuses a name or parameter name that is not a token with TypeError", () => {
  assert.throws(() => formatExtensions([{ name: "x y", params: [] }]), TypeError);
  assert.throws(() => formatExtensions([{ name: "", params: [] }]), TypeError);
  assert.throws(() => formatExtensions([{ name: "x", params: [["a=b", true]] }]), TypeError);
  assert.throws(() => formatExtensions([{ name: "x", params: [["a\r\nX-Injected", "1"]] }]), TypeError);
});

// ---- negotiateExtensions / completeExtensions

test("negotiateExtensions() shows each factory only its own offers, in the client's order", () => {
  const seen: ExtensionOffer[][] = [];
  const offers = parseExtensions("x-identity; xor=bad, other; a, x-identity; xor=7, x-identity");
  const result = negotiateExtensions([serverFactory(seen)], offers);
  assert.deepEqual(seen, [[
    { name: NAME, params: [["xor", "bad"]] },
    { name: NAME, params: [["xor", "7"]] },
    { name: NAME, params: [] },
  ]]);
  assert.equal(result.header, "x-identity; xor=7");
  assert.equal(result.extensions.length, 1);
  assert.equal(result.extensions[0].name, NAME);
  assert.equal(result.extensions[0].rsv, RSV2);
});

test("negotiateExtensions() answers nothing when every offer is declined or unknown", () => {
  const seen: ExtensionOffer[][] = [];
  const declined = negotiateExtensions(
    [serverFactory(seen)],
    parseExtensions("x-identity; xor=300, x-other"),
  );
  assert.deepEqual(declined, { header: undefined, extensions: [] });
  assert.equal(seen.length, 1);
  const unasked = negotiateExtensions([serverFactory(seen)], parseExtensions("x-other"));
  assert.deepEqual(unasked, { header: undefined, extensions: [] });
  assert.equal(seen.length, 1, "a factory whose extension was not offered is not asked");
});

test("negotiateExtensions() orders agreed extensions by the server's preference", () => {
  const a = serverFactory([], undefined, "x-a", RSV2);
  const b = serverFactory([], undefined, "x-b", RSV1);
  const result = negotiateExtensions([a, b], parseExtensions("x-b, x-a; xor=1"));
  assert.equal(result.header, "x-a; xor=1, x-b");
  assert.deepEqual(result.extensions.map((e) => e.name), ["x-a", "x-b"]);
});

test("negotiateExtensions() refuses two agreed extensions on the same RSV bit with TypeError", () => {
  const a = serverFactory([], undefined, "x-a", RSV2);
  const b = serverFactory([], undefined, "x-b", RSV2);
  assert.throws(() => negotiateExtensions([a, b], parseExtensions("x-a, x-b")), TypeError);
  assert.equal(negotiateExtensions([a, b], parseExtensions("x-b")).header, "x-b");
});

test("completeExtensions() makes the answered extensions in the server's order", () => {
  const a = clientFactory([], undefined, "x-a", RSV2);
  const b = clientFactory([], undefined, "x-b", RSV1);
  const extensions = completeExtensions([a, b], parseExtensions("x-b; xor=3, x-a"));
  assert.deepEqual(extensions.map((e) => [e.name, e.rsv]), [["x-b", RSV1], ["x-a", RSV2]]);
  assert.deepEqual(completeExtensions([a, b], []), []);
});

test("completeExtensions() fails with 1002 for an extension that was not offered", () => {
  assert.throws(
    () => completeExtensions([clientFactory([])], parseExtensions("x-unknown")),
    (e) => e instanceof ProtocolError && e.code === 1002,
  );
});

test("completeExtensions() fails with 1002 for an extension answered twice", () => {
  assert.throws(
    () => completeExtensions([clientFactory([])], parseExtensions("x-identity, x-identity; xor=1")),
    (e) => e instanceof ProtocolError && e.code === 1002,
  );
});

test("completeExtensions() fails with 1002 for two extensions on the same RSV bit", () => {
  const a = clientFactory([], undefined, "x-a", RSV2);
  const b = clientFactory([], undefined, "x-b", RSV2);
  assert.throws(
    () => completeExtensions([a, b], parseExtensions("x-a, x-b")),
    (e) => e instanceof ProtocolError && e.code === 1002,
  );
});

test("completeExtensions() passes on the factory's refusal of the answer", () => {
  assert.throws(
    () => completeExtensions([clientFactory([])], parseExtensions("x-identity; xor=999")),
    (e) => e instanceof ProtocolError && e.code === 1002,
  );
});

// ---- End to end through ServerProtocol and ClientProtocol

test("ServerProtocol agrees to a toy extension and answers with its parameters", async () => {
  const { server, response } = await openServer("x-identity; xor=bad, x-identity; xor=90", [serverFactory()]);
  assert.match(response, /^HTTP\/1\.1 101 /);
  assert.match(response, /\r\nSec-WebSocket-Extensions: x-identity; xor=90\r\n/);
  assert.deepEqual(server.extensions.map((e) => [e.name, e.rsv]), [[NAME, RSV2]]);
});

test("ServerProtocol sends no Sec-WebSocket-Extensions when nothing is agreed", async () => {
  const { server, response } = await openServer("x-other, x-identity; xor=bad", [serverFactory()]);
  assert.doesNotMatch(response, /Sec-WebSocket-Extensions/i);
  assert.deepEqual(server.extensions, []);
});

test("ServerProtocol.accept() extensions replace the constructor's", () => {
  const server = new ServerProtocol({ extensions: [serverFactory()] });
  server.receiveData(latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", "x-identity"]] })));
  server.events();
  server.accept({ extensions: [] });
  assert.doesNotMatch(latin1Text(server.dataToSend()), /Sec-WebSocket-Extensions/i);
  assert.deepEqual(server.extensions, []);
});

test("A server with a negotiated RSV2 extension decodes RSV2 frames and sets RSV2 on its own", async () => {
  const calls: Calls = { decode: [], encode: [] };
  const { server } = await openServer("x-identity; xor=90", [serverFactory([], calls)]);
  // A masked text frame with RSV2 whose payload is "Hello" XOR 90.
  server.receiveData(frameBytes(0x80 | RSV2 | 0x1, xor(enc("Hello"), 90), RFC_MASK));
  assert.deepEqual(server.events(), [{ type: "text", data: "Hello", final: true }]);
  assert.ok(calls.decode.length >= 1);
  assert.ok(calls.decode.every((c) => c.rsv === RSV2));
  assert.equal(calls.decode.at(-1)!.final, true);
  server.send("Hi");
  const [frame] = readFrames(server.dataToSend());
  assert.equal(frame.first, 0x80 | RSV2 | 0x1);
  assert.equal(frame.masked, false);
  assert.deepEqual(frame.payload, xor(enc("Hi"), 90));
  assert.deepEqual(calls.encode, [{ length: 2, first: true, final: true }]);
});

test("A server with a negotiated RSV2 extension decodes a fragmented RSV2 message", async () => {
  const { server } = await openServer("x-identity; xor=1", [serverFactory()]);
  const payload = xor(enc("fragmented"), 1);
  server.receiveData(frameBytes(RSV2 | 0x2, payload.subarray(0, 4), RFC_MASK));
  server.receiveData(frameBytes(0x00, payload.subarray(4, 6), RFC_MASK));
  server.receiveData(frameBytes(0x80, payload.subarray(6), RFC_MASK));
  assert.deepEqual(server.events(), [{ type: "binary", data: enc("fragmented"), final: true }]);
});

test("A server refuses RSV2 on a continuation frame even with the extension (1002)", async () => {
  const { server } = await openServer("x-identity", [serverFactory()]);
  server.receiveData(frameBytes(RSV2 | 0x2, enc("ab"), RFC_MASK));
  server.receiveData(frameBytes(0x80 | RSV2, enc("cd"), RFC_MASK));
  assert.equal(failure(server.events()).code, 1002);
});

test("A server with an RSV2 extension still refuses RSV1 frames with 1002", async () => {
  const { server } = await openServer("x-identity", [serverFactory()]);
  server.receiveData(frameBytes(0x80 | RSV1 | 0x1, enc("x"), RFC_MASK));
  assert.equal(failure(server.events()).code, 1002);
  const [close] = readFrames(server.dataToSend());
  assert.equal(close.first, 0x88);
  assert.deepEqual([...close.payload.subarray(0, 2)], [0x03, 0xea]);
});

test("A server without the extension fails an RSV2 frame with 1002 and says so in a close frame", async () => {
  const { server } = await openServer("x-identity", []);
  server.receiveData(frameBytes(0x80 | RSV2 | 0x1, enc("x"), RFC_MASK));
  assert.equal(failure(server.events()).code, 1002);
  const [close] = readFrames(server.dataToSend());
  assert.equal(close.first, 0x88);
  assert.deepEqual([...close.payload.subarray(0, 2)], [0x03, 0xea]);
});

test("An extension's decoded size counts against maxMessageSize (1009)", () => {
  const doubling: ServerExtensionFactory = {
    name: NAME,
    accept: () => ({
      response: { name: NAME, params: [] },
      extension: {
        name: NAME,
        rsv: RSV2,
        decode: (data) => {
          const out = new Uint8Array(data.length * 2);
          out.set(data);
          out.set(data, data.length);
          return out;
        },
        encode: (data) => ({ data, rsv: RSV2 }),
      },
    }),
  };
  const server = new ServerProtocol({ extensions: [doubling], maxMessageSize: 10 });
  server.receiveData(latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", NAME]] })));
  server.events();
  server.accept();
  server.dataToSend();
  server.receiveData(frameBytes(0x80 | RSV2 | 0x2, new Uint8Array(5), RFC_MASK));
  assert.deepEqual(server.events(), [{ type: "binary", data: new Uint8Array(10), final: true }]);
  server.receiveData(frameBytes(0x80 | RSV2 | 0x2, new Uint8Array(6), RFC_MASK));
  assert.equal(failure(server.events()).code, 1009);
});

test("ClientProtocol offers its extensions in its request", async () => {
  const offers: ExtensionOffer[] = [{ name: NAME, params: [["xor", "90"]] }, { name: NAME, params: [] }];
  const { request } = await openClient([clientFactory(offers)], []);
  assert.match(request, /\r\nSec-WebSocket-Extensions: x-identity; xor=90, x-identity\r\n/);
});

test("A client with a negotiated RSV2 extension decodes RSV2 frames and sets RSV2 on its own", async () => {
  const calls: Calls = { decode: [], encode: [] };
  const offers: ExtensionOffer[] = [{ name: NAME, params: [["xor", "90"]] }];
  const { client } = await openClient([clientFactory(offers, calls)], [
    "Sec-WebSocket-Extensions: x-identity; xor=90",
  ]);
  assert.equal(client.events()[0].type, "accepted");
  assert.deepEqual(client.extensions.map((e) => [e.name, e.rsv]), [[NAME, RSV2]]);
  client.receiveData(frameBytes(0x80 | RSV2 | 0x1, xor(enc("Hello"), 90)));
  assert.deepEqual(client.events(), [{ type: "text", data: "Hello", final: true }]);
  client.send(enc("bin"));
  const [frame] = readFrames(client.dataToSend());
  assert.equal(frame.first, 0x80 | RSV2 | 0x2);
  assert.equal(frame.masked, true);
  assert.deepEqual(frame.payload, xor(enc("bin"), 90));
  assert.equal(calls.encode.length, 1);
});

test("A client without a negotiated extension fails an RSV2 frame with 1002", async () => {
  const offers: ExtensionOffer[] = [{ name: NAME, params: [] }];
  const { client } = await openClient([clientFactory(offers)], []);
  assert.equal(client.events()[0].type, "accepted");
  assert.deepEqual(client.extensions, []);
  client.receiveData(frameBytes(0x80 | RSV2 | 0x1, enc("x")));
  assert.equal(failure(client.events()).code, 1002);
  const [close] = readFrames(client.dataToSend());
  assert.equal(close.first, 0x88);
  assert.equal(close.masked, true);
  assert.deepEqual([...close.payload.subarray(0, 2)], [0x03, 0xea]);
});

test("ClientProtocol fails with 1002 when the server agrees to an extension it did not offer", async () => {
  const { client } = await openClient([], ["Sec-WebSocket-Extensions: x-identity"]);
  assert.equal(failure(client.events()).code, 1002);
});

test("ClientProtocol fails with 1002 when its extension refuses the server's parameters", async () => {
  const offers: ExtensionOffer[] = [{ name: NAME, params: [] }];
  const { client } = await openClient([clientFactory(offers)], [
    "Sec-WebSocket-Extensions: x-identity; xor=1000",
  ]);
  assert.equal(failure(client.events()).code, 1002);
});

test("ClientProtocol fails with 1002 for a malformed Sec-WebSocket-Extensions answer", async () => {
  const offers: ExtensionOffer[] = [{ name: NAME, params: [] }];
  const { client } = await openClient([clientFactory(offers)], [
    'Sec-WebSocket-Extensions: x-identity; xor="1',
  ]);
  assert.equal(failure(client.events()).code, 1002);
});

test("A client and a server agree on the toy extension and exchange messages through it", () => {
  const clientCalls: Calls = { decode: [], encode: [] };
  const serverCalls: Calls = { decode: [], encode: [] };
  const client = new ClientProtocol({
    url: "ws://example.com/",
    extensions: [
      clientFactory(
        [{ name: NAME, params: [["xor", "300"]] }, { name: NAME, params: [["xor", "5"]] }],
        clientCalls,
      ),
    ],
  });
  const server = new ServerProtocol({ extensions: [serverFactory([], serverCalls)] });
  client.sendRequest();
  for (const chunk of client.dataToSend()) server.receiveData(chunk);
  assert.deepEqual(server.events().map((e) => e.type), ["request"]);
  server.accept();
  for (const chunk of server.dataToSend()) client.receiveData(chunk);
  assert.deepEqual(client.events().map((e) => e.type), ["accepted"]);

  client.send("to the server");
  client.send(enc("bytes"), { fin: false });
  client.send(enc(" and more"));
  const wire = client.dataToSend();
  const frames = readFrames(wire);
  assert.deepEqual(frames.map((f) => f.first), [0x80 | RSV2 | 0x1, RSV2 | 0x2, 0x80]);
  assert.deepEqual(frames[0].payload, xor(enc("to the server"), 5));
  for (const chunk of wire) server.receiveData(chunk);
  assert.deepEqual(server.events(), [
    { type: "text", data: "to the server", final: true },
    { type: "binary", data: enc("bytes and more"), final: true },
  ]);
  server.send("to the client");
  for (const chunk of server.dataToSend()) client.receiveData(chunk);
  assert.deepEqual(client.events(), [{ type: "text", data: "to the client", final: true }]);
  assert.deepEqual(clientCalls.encode.map((c) => [c.first, c.final]), [[true, true], [true, false], [
    false,
    true,
  ]]);
  assert.ok(serverCalls.decode.length >= 2);
  assert.ok(clientCalls.decode.length >= 1);
});

test("accept() checks the extension header before committing: a bad one leaves the request to reject", () => {
  const bad: ServerExtensionFactory = {
    name: NAME,
    accept: () => ({
      response: { name: NAME, params: [["p", "a\rb"]] },
      extension: { name: NAME, rsv: 0, decode: (data) => data, encode: (data) => ({ data, rsv: 0 }) },
    }),
  };
  const server = new ServerProtocol({ extensions: [bad] });
  server.receiveData(latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", NAME]] })));
  server.events();
  assert.throws(() => server.accept(), TypeError);
  server.reject(500);
  assert.match(latin1Text(server.dataToSend()), /^HTTP\/1\.1 500 /);
});
