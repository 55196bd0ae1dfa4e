import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientEvent,
  ClientProtocol,
  type ClosedEvent,
  ProtocolError,
  ReadyState,
  type ReceiveOptions,
  type ServerEvent,
  ServerProtocol,
} from "../../src/core/mod.ts";
import {
  buildFrame,
  counting,
  feedInPieces,
  frameHeader,
  hex,
  joinBytes,
  latin1Bytes,
  maskFrame,
  openClient,
  openServer,
  readFrames,
  RFC_FRAMES,
  RFC_MASK,
  sent,
  type Split,
  splits,
  toHex,
  upgradeRequest,
} from "../_helpers.ts";

type Side = ServerProtocol | ClientProtocol;
type Event = ServerEvent | ClientEvent;

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A frame as a client sends it to the server: masked with the RFC 6455 §5.7 key. */
const fromClient = (first: number, payload: Uint8Array | string) => buildFrame(first, payload, RFC_MASK);

/** Events after feeding `chunks`, each with `options`. */
function events(protocol: Side, chunks: readonly Uint8Array[], options?: ReceiveOptions): Event[] {
  for (const chunk of chunks) protocol.receiveData(chunk, options);
  return protocol.events() as Event[];
}

/** The code of a close frame's payload, or undefined for an empty one. */
function closeCode(payload: Uint8Array): number | undefined {
  return payload.length === 0 ? undefined : (payload[0] << 8) | payload[1];
}

/**
 * Feeds bytes that break a rule. Asserts the outcome of a failure: the events
 * end with `failed` (a ProtocolError with `code`) then `closed`, no `close`
 * event, CLOSED, and the output ends with a close frame carrying `code`.
 * Returns the events before the failure.
 */
function assertFails(
  protocol: Side,
  chunks: Uint8Array | readonly Uint8Array[],
  code: number,
  options?: ReceiveOptions,
): Event[] {
  const list = events(protocol, chunks instanceof Uint8Array ? [chunks] : chunks, options);
  const at = list.findIndex((e) => e.type === "failed");
  assert.ok(at >= 0, `expected a failure, got ${JSON.stringify(list.map((e) => e.type))}`);
  const failed = list[at];
  assert.ok(failed.type === "failed");
  assert.ok(failed.error instanceof ProtocolError, `not a ProtocolError: ${failed.error}`);
  assert.equal(failed.error.code, code);
  assert.equal(list.length, at + 2, "the failure is followed by exactly one event");
  const closed = list[at + 1];
  assert.ok(closed.type === "closed");
  assert.equal(closed.code, code);
  assert.equal(closed.wasClean, false);
  assert.equal(closed.received, undefined);
  assert.equal(closed.sent?.code, code);
  assert.ok(!list.some((e) => e.type === "close"), "a failure is not a peer's close");
  assert.equal(protocol.readyState, ReadyState.Closed);
  const frames = readFrames(protocol.dataToSend());
  const last = frames.at(-1);
  assert.ok(last, "a close frame is queued");
  assert.equal(last.first, 0x88);
  assert.equal(last.masked, protocol instanceof ClientProtocol);
  assert.equal(closeCode(last.payload), code);
  return list.slice(0, at);
}

const text = (data: string, final = true) => ({ type: "text", data, final });
const binary = (data: Uint8Array, final = true) => ({ type: "binary", data, final });

/** Cut points for a 64 KiB frame: every header offset, a spread over the payload, the end. */
const BIG_CUTS = [
  ...Array.from({ length: 20 }, (_, i) => i + 1),
  ...Array.from({ length: 16 }, (_, i) => 30 + i * 4099),
  65545,
];

/** Every way to feed `bytes` (cuts only at `offsets` when given); asserts each yields `expected`. */
function assertEverySplit(
  open: () => Side,
  bytes: Uint8Array,
  expected: unknown[],
  offsets?: number[],
  output?: Uint8Array,
): void {
  const ways: Split[] = splits(bytes, offsets);
  for (const { label, chunks } of ways) {
    const protocol = open();
    assert.deepEqual(events(protocol, chunks), expected, label);
    if (output) assert.deepEqual(sent(protocol), output, `output, ${label}`);
  }
}

// ---- RFC 6455 §5.7 examples, received -------------------------------------------------------------

test("ClientProtocol reads the RFC 6455 §5.7 unmasked 'Hello' at every split", () => {
  assertEverySplit(openClient, RFC_FRAMES.text, [text("Hello")], undefined, new Uint8Array(0));
});

test("ServerProtocol reads the RFC 6455 §5.7 masked 'Hello' at every split", () => {
  assertEverySplit(openServer, RFC_FRAMES.maskedText, [text("Hello")], undefined, new Uint8Array(0));
});

test("ClientProtocol reads the RFC 6455 §5.7 fragmented 'Hel' + 'lo' as one message at every split", () => {
  assertEverySplit(openClient, RFC_FRAMES.fragmented, [text("Hello")]);
});

test("ServerProtocol reads a masked fragmented 'Hel' + 'lo' as one message at every split", () => {
  const bytes = joinBytes([fromClient(0x01, "Hel"), fromClient(0x80, "lo")]);
  assertEverySplit(openServer, bytes, [text("Hello")]);
});

test("ClientProtocol answers the RFC 6455 §5.7 ping with the RFC's masked pong, at every split", () => {
  const ping = { type: "ping", data: utf8("Hello") };
  assertEverySplit(openClient, RFC_FRAMES.ping, [ping], undefined, RFC_FRAMES.maskedPong);
});

test("ServerProtocol reads the RFC 6455 §5.7 masked pong at every split and sends nothing", () => {
  const pong = { type: "pong", data: utf8("Hello") };
  assertEverySplit(openServer, RFC_FRAMES.maskedPong, [pong], undefined, new Uint8Array(0));
});

test("ServerProtocol answers a masked ping 'Hello' with the RFC 6455 §5.7 unmasked pong", () => {
  const ping = { type: "ping", data: utf8("Hello") };
  assertEverySplit(
    openServer,
    fromClient(0x89, "Hello"),
    [ping],
    undefined,
    hex("8a 05 48 65 6c 6c 6f"),
  );
});

test("ClientProtocol reads the RFC 6455 §5.7 256-byte binary frame at every split", () => {
  assertEverySplit(openClient, RFC_FRAMES.binary256, [binary(counting(256))]);
});

test("ServerProtocol reads a masked 256-byte binary frame at every split", () => {
  assertEverySplit(openServer, maskFrame(RFC_FRAMES.binary256, RFC_MASK), [binary(counting(256))]);
});

test("ClientProtocol reads the RFC 6455 §5.7 64 KiB binary frame at many splits and byte by byte", () => {
  assertEverySplit(openClient, RFC_FRAMES.binary64k, [binary(counting(65536))], BIG_CUTS);
});

test("ServerProtocol reads a masked 64 KiB binary frame at many splits and byte by byte", () => {
  const bytes = maskFrame(RFC_FRAMES.binary64k, RFC_MASK);
  assertEverySplit(openServer, bytes, [binary(counting(65536))], BIG_CUTS.map((n) => n + 4));
});

test("ClientProtocol reads many frames from one chunk in order, at every split", () => {
  const bytes = joinBytes([
    RFC_FRAMES.text,
    RFC_FRAMES.fragmented,
    RFC_FRAMES.ping,
    RFC_FRAMES.binary256,
    hex("01 01 61 8a 00 80 01 62"), // "a", a pong inside the message, "b"
    RFC_FRAMES.text,
  ]);
  const expected = [
    text("Hello"),
    text("Hello"),
    { type: "ping", data: utf8("Hello") },
    binary(counting(256)),
    { type: "pong", data: new Uint8Array(0) },
    text("ab"),
    text("Hello"),
  ];
  assertEverySplit(openClient, bytes, expected, undefined, RFC_FRAMES.maskedPong);
});

// ---- RFC 6455 §5.7 examples, sent -------------------------------------------------------------------

test("ServerProtocol sends 'Hello' as the RFC 6455 §5.7 unmasked frame", async () => {
  const server = await openServer();
  server.send("Hello");
  assert.deepEqual(sent(server), RFC_FRAMES.text);
});

test("ClientProtocol sends 'Hello' as the RFC 6455 §5.7 masked frame with an injected key", async () => {
  const client = await openClient();
  client.send("Hello");
  assert.deepEqual(sent(client), RFC_FRAMES.maskedText);
});

test("ServerProtocol sends the RFC 6455 §5.7 fragmented 'Hel' + 'lo' from two pieces", async () => {
  const server = await openServer();
  server.send("Hel", { fin: false });
  server.send("lo");
  assert.deepEqual(sent(server), RFC_FRAMES.fragmented);
});

test("ServerProtocol sends the RFC 6455 §5.7 fragmented 'Hel' + 'lo' with fragmentSize 3", async () => {
  const server = await openServer({ fragmentSize: 3 });
  server.send("Hello");
  assert.deepEqual(sent(server), RFC_FRAMES.fragmented);
});

test("Short texts of every length, sent back to back through the shared scratch buffer, each frame exactly", async () => {
  for (const open of [openServer, openClient]) {
    const side = await open();
    // Up to the short-text limit (128 UTF-16 units) and past it, ASCII and 3-byte characters.
    const texts = Array.from({ length: 130 }, (_, n) => n % 2 ? "€".repeat(n) : "x".repeat(n));
    for (const text of texts) side.send(text);
    const frames = readFrames(side.dataToSend());
    assert.deepEqual(frames.map((frame) => new TextDecoder().decode(frame.payload)), texts);
  }
});

test("ServerProtocol sends the RFC 6455 §5.7 unmasked ping", async () => {
  const server = await openServer();
  server.ping("Hello");
  assert.deepEqual(sent(server), RFC_FRAMES.ping);
});

test("ClientProtocol sends the RFC 6455 §5.7 masked pong", async () => {
  const client = await openClient();
  client.pong(utf8("Hello"));
  assert.deepEqual(sent(client), RFC_FRAMES.maskedPong);
});

test("ServerProtocol sends the RFC 6455 §5.7 256-byte and 64 KiB binary frames", async () => {
  const server = await openServer();
  server.send(counting(256));
  assert.deepEqual(sent(server), RFC_FRAMES.binary256);
  server.send(counting(65536));
  assert.deepEqual(sent(server), RFC_FRAMES.binary64k);
});

test("ClientProtocol sends masked 256-byte and 64 KiB binary frames with 16 and 64-bit lengths", async () => {
  const client = await openClient();
  client.send(counting(256));
  assert.deepEqual(sent(client), maskFrame(RFC_FRAMES.binary256, RFC_MASK));
  client.send(counting(65536));
  assert.deepEqual(sent(client), maskFrame(RFC_FRAMES.binary64k, RFC_MASK));
});

test("ClientProtocol masks every frame with the next key from its random source", async () => {
  let fills = 0;
  const client = await openClient({
    random: (target) => {
      fills++;
      for (let i = 0; i < target.length; i++) target[i] = (i * 7 + fills) & 0xff;
    },
  });
  // The handshake key took the first fill; mask keys come from a 4096-byte pool filled next.
  client.send("abc");
  client.send("abc");
  const frames = sent(client);
  const key1 = [...frames.subarray(2, 6)];
  const key2 = [...frames.subarray(11, 15)];
  assert.deepEqual(key1, [0, 7, 14, 21].map((b) => (b + fills) & 0xff));
  assert.deepEqual(key2, [28, 35, 42, 49].map((b) => (b + fills) & 0xff));
  assert.deepEqual(frames, joinBytes([buildFrame(0x81, "abc", key1), buildFrame(0x81, "abc", key2)]));
});

// ---- Frame rules ---------------------------------------------------------------------------------------

test("ServerProtocol fails an unmasked frame with 1002", async () => {
  for (const frame of [RFC_FRAMES.text, RFC_FRAMES.ping, hex("88 00")]) {
    assertFails(await openServer(), frame, 1002);
  }
});

test("ClientProtocol fails a masked frame with 1002", async () => {
  for (const frame of [RFC_FRAMES.maskedText, RFC_FRAMES.maskedPong]) {
    assertFails(await openClient(), frame, 1002);
  }
});

test("ServerProtocol fails RSV bits without a negotiated extension with 1002", async () => {
  for (const rsv of [0x40, 0x20, 0x10]) {
    for (const opcode of [0x1, 0x2, 0x9]) {
      assertFails(await openServer(), fromClient(0x80 | rsv | opcode, "x"), 1002);
    }
  }
  const fragmented = joinBytes([fromClient(0x01, "a"), fromClient(0xc0, "b")]);
  assertFails(await openServer(), fragmented, 1002);
});

test("ClientProtocol fails RSV bits without a negotiated extension with 1002", async () => {
  for (const rsv of [0x40, 0x20, 0x10]) assertFails(await openClient(), buildFrame(0x81 | rsv, "x"), 1002);
});

test("ServerProtocol and ClientProtocol fail every reserved opcode with 1002", async () => {
  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    assertFails(await openServer(), fromClient(0x80 | opcode, ""), 1002);
    assertFails(await openClient(), buildFrame(0x80 | opcode, "abc"), 1002);
  }
});

test("ServerProtocol fails a control frame over 125 bytes with 1002, from its header", async () => {
  for (const opcode of [0x8, 0x9, 0xa]) {
    assertFails(await openServer(), frameHeader(0x80 | opcode, 126, RFC_MASK), 1002);
  }
  // 125 bytes is fine.
  const server = await openServer();
  assert.deepEqual(events(server, [fromClient(0x89, counting(125))]), [{
    type: "ping",
    data: counting(125),
  }]);
  assert.deepEqual(sent(server), buildFrame(0x8a, counting(125)));
});

test("ServerProtocol fails a fragmented control frame with 1002", async () => {
  for (const opcode of [0x8, 0x9, 0xa]) assertFails(await openServer(), fromClient(opcode, "hi"), 1002);
});

test("ServerProtocol fails a continuation frame with no message started with 1002", async () => {
  assertFails(await openServer(), fromClient(0x80, "lo"), 1002);
  assertFails(await openServer(), fromClient(0x00, "lo"), 1002);
  // Also right after a complete message.
  const server = await openServer();
  const before = assertFails(server, joinBytes([fromClient(0x81, "a"), fromClient(0x80, "b")]), 1002);
  assert.deepEqual(before, [text("a")]);
});

test("ServerProtocol fails a new data frame inside a fragmented message with 1002", async () => {
  for (const second of [0x81, 0x01, 0x82, 0x02]) {
    const bytes = joinBytes([fromClient(0x01, "Hel"), fromClient(second, "lo")]);
    assert.deepEqual(assertFails(await openServer(), bytes, 1002), []);
  }
});

test("ServerProtocol fails a 64-bit length with its top bit set with 1002, from the header alone", async () => {
  assertFails(await openServer(), hex("82 ff 80 00 00 00 00 00 00 01 37 fa 21 3d"), 1002);
  assertFails(await openClient(), hex("82 7f ff ff ff ff ff ff ff ff"), 1002);
});

test("Control frames interleaved in a fragmented message are delivered and answered", () => {
  const bytes = joinBytes([
    fromClient(0x01, "Hel"),
    fromClient(0x89, "p1"),
    fromClient(0x00, "l"),
    fromClient(0x8a, "p2"),
    fromClient(0x89, ""),
    fromClient(0x80, "o"),
  ]);
  const expected = [
    { type: "ping", data: utf8("p1") },
    { type: "pong", data: utf8("p2") },
    { type: "ping", data: new Uint8Array(0) },
    text("Hello"),
  ];
  assertEverySplit(openServer, bytes, expected, undefined, hex("8a 02 70 31 8a 00"));
});

test("A close frame inside a fragmented message closes cleanly and drops the partial message", async () => {
  const server = await openServer();
  const list = events(server, [fromClient(0x01, "Hel"), fromClient(0x88, hex("03 e8"))]);
  assert.deepEqual(list.map((e) => e.type), ["close", "closed"]);
  assert.deepEqual(sent(server), hex("88 02 03 e8"));
});

// ---- Limits -------------------------------------------------------------------------------------------

test("maxMessageSize fails a frame over the limit with 1009 from its header, before any payload", async () => {
  for (const length of [101, 200, 70000]) {
    assertFails(await openServer({ maxMessageSize: 100 }), frameHeader(0x82, length, RFC_MASK), 1009);
    assertFails(await openClient({ maxMessageSize: 100 }), frameHeader(0x81, length), 1009);
  }
  const server = await openServer({ maxMessageSize: 100 });
  assert.deepEqual(events(server, [fromClient(0x82, counting(100))]), [binary(counting(100))]);
});

test("maxMessageSize fails a fragmented message with 1009 at the header that crosses the limit", async () => {
  const server = await openServer({ maxMessageSize: 100 });
  const before = assertFails(server, [
    fromClient(0x82, counting(10)), // a whole message: its size does not count towards the next
    fromClient(0x02, counting(60)),
    fromClient(0x00, counting(30)),
    frameHeader(0x80, 11, RFC_MASK),
  ], 1009);
  assert.deepEqual(before, [binary(counting(10))]);
  // Exactly at the limit, over three fragments.
  const ok = await openServer({ maxMessageSize: 100 });
  const parts = [
    fromClient(0x02, counting(60)),
    fromClient(0x00, counting(30, 60)),
    fromClient(0x80, counting(10, 90)),
  ];
  assert.deepEqual(events(ok, parts), [binary(counting(100))]);
});

test("maxFrameSize fails one frame over the limit with 1009 from its header, while the message may be larger", async () => {
  assertFails(await openServer({ maxFrameSize: 10 }), frameHeader(0x81, 11, RFC_MASK), 1009);
  assertFails(await openServer({ maxFrameSize: 10 }), frameHeader(0x89, 11, RFC_MASK), 1009);
  assertFails(await openClient({ maxFrameSize: 10 }), frameHeader(0x82, 65536), 1009);
  const server = await openServer({ maxFrameSize: 10 });
  const parts = [
    fromClient(0x02, counting(10)),
    fromClient(0x00, counting(10, 10)),
    fromClient(0x80, counting(5, 20)),
  ];
  assert.deepEqual(events(server, parts), [binary(counting(25))]);
});

test("maxFragments fails the frame that exceeds the fragment count with 1009", async () => {
  const frames = (n: number) =>
    Array.from({ length: n }, (_, i) => fromClient(i === 0 ? 0x01 : i === n - 1 ? 0x80 : 0x00, "x"));
  const ok = await openServer({ maxFragments: 3 });
  assert.deepEqual(events(ok, frames(3)), [text("xxx")]);
  const server = await openServer({ maxFragments: 3 });
  const four = frames(4);
  assertFails(server, [...four.slice(0, 3), four[3].subarray(0, 6)], 1009);
  // Control frames in between do not count.
  const withPings = await openServer({ maxFragments: 2 });
  const parts = [fromClient(0x01, "a"), fromClient(0x89, ""), fromClient(0x89, ""), fromClient(0x80, "b")];
  assert.deepEqual(events(withPings, parts).map((e) => e.type), ["ping", "ping", "text"]);
});

// ---- Streaming ----------------------------------------------------------------------------------------

test("streamMessages delivers text in pieces with final on the last, adding up to the message", async () => {
  const message = "héllo wörld €𝄞 and more";
  const bytes = utf8(message);
  // Cut inside multi-byte characters on purpose.
  const stream = joinBytes([
    fromClient(0x01, bytes.subarray(0, 2)),
    fromClient(0x00, bytes.subarray(2, 14)),
    fromClient(0x00, bytes.subarray(14, 16)),
    fromClient(0x80, bytes.subarray(16)),
  ]);
  for (const { label, chunks } of splits(stream)) {
    const server = await openServer({ streamMessages: true });
    const list = events(server, chunks);
    assert.ok(list.length >= 1, label);
    let joined = "";
    for (const [i, event] of list.entries()) {
      assert.ok(event.type === "text", label);
      assert.equal(event.final, i === list.length - 1, `final flag at ${i}, ${label}`);
      joined += event.data;
    }
    assert.equal(joined, message, label);
  }
});

test("streamMessages delivers binary in pieces as they arrive, with final on the last", async () => {
  const payload = counting(1000);
  const stream = joinBytes([
    fromClient(0x02, payload.subarray(0, 300)),
    fromClient(0x80, payload.subarray(300)),
  ]);
  const server = await openServer({ streamMessages: true });
  // Pieces come out as bytes arrive, before the message is complete.
  server.receiveData(stream.subarray(0, 108));
  assert.deepEqual(server.events(), [binary(payload.subarray(0, 100), false)]);
  server.receiveData(stream.subarray(108));
  const rest = server.events();
  assert.ok(rest.every((e) => e.type === "binary"));
  assert.deepEqual(rest.map((e) => e.type === "binary" && e.final), [false, true]);
  const all = joinBytes(rest.map((e) => (e.type === "binary" ? e.data : new Uint8Array(0))));
  assert.deepEqual(all, payload.subarray(100));
  for (const { label, chunks } of splits(stream, [1, 50, 200, 310, 500, 1007])) {
    const again = await openServer({ streamMessages: true });
    const list = events(again, chunks);
    assert.equal(list.filter((e) => e.type === "binary" && e.final).length, 1, label);
    const last = list.at(-1);
    assert.ok(last?.type === "binary" && last.final, label);
    assert.deepEqual(joinBytes(list.map((e) => (e.type === "binary" ? e.data : new Uint8Array(0)))), payload);
  }
});

test("streamMessages ends an empty message with one final piece", async () => {
  const server = await openServer({ streamMessages: true });
  assert.deepEqual(events(server, [fromClient(0x81, "")]), [text("")]);
  assert.deepEqual(events(server, [fromClient(0x82, "")]), [binary(new Uint8Array(0))]);
});

// ---- UTF-8 --------------------------------------------------------------------------------------------

/** Autobahn 6.4.3's first fragment: "κόσμε" then the start of a surrogate (ed a0 80). */
const AUTOBAHN_BAD_FRAGMENT = hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80");

for (const streamMessages of [false, true]) {
  test(`Invalid UTF-8 in the first fragment fails with 1007 before the final fragment (streamMessages ${streamMessages})`, async () => {
    const server = await openServer({ streamMessages });
    const before = assertFails(server, fromClient(0x01, AUTOBAHN_BAD_FRAGMENT), 1007);
    assert.ok(before.every((e) => e.type === "text" && !e.final));
    // Byte by byte, the failure comes with the byte that makes the sequence invalid (a0 after ed).
    const bytes = fromClient(0x01, AUTOBAHN_BAD_FRAGMENT);
    const byByte = await openServer({ streamMessages });
    const invalidAt = 6 + AUTOBAHN_BAD_FRAGMENT.indexOf(0xa0);
    for (let i = 0; i < invalidAt; i++) {
      byByte.receiveData(bytes.subarray(i, i + 1));
      assert.ok(!byByte.events().some((e) => e.type === "failed"), `failed early, at byte ${i}`);
    }
    assertFails(byByte, bytes.subarray(invalidAt, invalidAt + 1), 1007);
  });
}

test("A code point over U+10FFFF in a middle fragment fails with 1007 before the last fragment", async () => {
  const server = await openServer();
  const parts = [
    fromClient(0x01, hex("ce ba e1 bd b9 cf 83 ce bc ce b5")),
    fromClient(0x00, hex("f4 90 80 80")),
  ];
  assertFails(server, parts, 1007);
});

test("A multi-byte character split across fragments and reads is decoded", () => {
  // "€" = e2 82 ac and "𝄞" = f0 9d 84 9e, each split over fragments.
  const stream = joinBytes([
    fromClient(0x01, hex("61 e2")),
    fromClient(0x00, hex("82")),
    fromClient(0x00, hex("ac f0 9d")),
    fromClient(0x00, hex("84")),
    fromClient(0x80, hex("9e 62")),
  ]);
  assertEverySplit(openServer, stream, [text("a€𝄞b")]);
});

test("A single-frame text split over reads is decoded, characters cut anywhere", () => {
  const message = "ünïcödé ✓ 𝄞".repeat(5);
  assertEverySplit(openServer, fromClient(0x81, message), [text(message)]);
});

for (const scriptedTextDecoding of [false, true]) {
  test(`Invalid UTF-8 in a single-frame text message fails with 1007 (scriptedTextDecoding ${scriptedTextDecoding})`, async () => {
    for (const bad of ["c0 af", "ed a0 80", "f4 90 80 80", "ff", "80", "61 e2 28 a1"]) {
      for (const { label, chunks } of splits(fromClient(0x81, hex(bad)))) {
        assertFails(await openServer(), chunks, 1007, { scriptedTextDecoding })
          .forEach((e) => assert.equal(e.type, "text", label));
      }
    }
  });

  test(`Short and long non-ASCII texts decode (scriptedTextDecoding ${scriptedTextDecoding})`, async () => {
    const server = await openServer();
    const texts = ["é", "a€b", "😀 smile", "中".repeat(21), "ü".repeat(40), "x".repeat(63) + "é"];
    const received = events(server, texts.map((text) => fromClient(0x81, text)), { scriptedTextDecoding });
    assert.deepEqual(received, texts.map((data) => ({ type: "text", data, final: true })));
  });
}

test("A text message that ends inside a multi-byte sequence fails with 1007", async () => {
  assertFails(await openServer(), fromClient(0x81, hex("61 ce")), 1007);
  assertFails(await openServer(), [fromClient(0x01, hex("61")), fromClient(0x80, hex("e2 82"))], 1007);
  assertFails(await openServer({ streamMessages: true }), [
    fromClient(0x01, "a"),
    fromClient(0x80, hex("f0")),
  ], 1007);
  assertFails(await openClient(), buildFrame(0x81, hex("e2 82")), 1007);
});

test("Invalid UTF-8 is fine in a binary message", async () => {
  const server = await openServer();
  assert.deepEqual(events(server, [fromClient(0x82, hex("ed a0 80 ff"))]), [binary(hex("ed a0 80 ff"))]);
});

test("A close frame with an invalid UTF-8 reason fails with 1007", async () => {
  assertFails(await openServer(), fromClient(0x88, hex("03 e8 ed a0 80")), 1007);
  assertFails(await openClient(), buildFrame(0x88, hex("03 e8 61 c0")), 1007);
});

// ---- Closing -------------------------------------------------------------------------------------------

const VALID_CODES = [
  1000,
  1001,
  1002,
  1003,
  1007,
  1008,
  1009,
  1010,
  1011,
  1012,
  1013,
  1014,
  3000,
  3999,
  4000,
  4999,
];
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

test("A peer's close with a valid code is reported and echoed with the same code", async () => {
  for (const code of VALID_CODES) {
    const payload = new Uint8Array([code >> 8, code & 0xff, 0x6f, 0x6b]);
    const server = await openServer();
    const list = events(server, [fromClient(0x88, payload)]);
    const closed: ClosedEvent = {
      type: "closed",
      code,
      reason: "ok",
      wasClean: true,
      received: { code, reason: "ok" },
      sent: { code, reason: "" },
    };
    assert.deepEqual(list, [{ type: "close", code, reason: "ok" }, closed], `code ${code}`);
    assert.deepEqual(sent(server), buildFrame(0x88, payload.subarray(0, 2)), `echo of ${code}`);
    assert.equal(server.readyState, ReadyState.Closed);
    const client = await openClient();
    assert.deepEqual(events(client, [buildFrame(0x88, payload)]).map((e) => e.type), ["close", "closed"]);
    assert.deepEqual(sent(client), buildFrame(0x88, payload.subarray(0, 2), RFC_MASK));
  }
});

test("A peer's close with a code not valid on the wire fails with 1002", async () => {
  for (const code of INVALID_CODES) {
    assertFails(await openServer(), fromClient(0x88, new Uint8Array([code >> 8, code & 0xff])), 1002);
    assertFails(await openClient(), buildFrame(0x88, new Uint8Array([code >> 8, code & 0xff])), 1002);
  }
});

test("A close frame with a 1-byte payload fails with 1002", async () => {
  // Every byte value, including 0x0c and 0x0f, which read as 3072 and 3840 if a missing byte counted as 0.
  for (let byte = 0; byte < 256; byte++) {
    assertFails(await openServer(), fromClient(0x88, new Uint8Array([byte])), 1002);
  }
  assertFails(await openClient(), buildFrame(0x88, hex("0c")), 1002);
});

test("An empty close frame is reported as 1005 and answered with an empty close", async () => {
  const server = await openServer();
  const list = events(server, [fromClient(0x88, "")]);
  assert.deepEqual(list.map((e) => e.type), ["close", "closed"]);
  assert.ok(list[0].type === "close" && list[0].code === 1005);
  assert.ok(list[1].type === "closed" && list[1].code === 1005 && list[1].wasClean);
  assert.deepEqual(sent(server), hex("88 00"));
});

test("close() validates its code and reason: RangeError, TypeError, and no state change", async () => {
  const server = await openServer();
  for (const code of [...INVALID_CODES, 1000.5, NaN]) {
    assert.throws(() => server.close(code), RangeError, `code ${code}`);
  }
  assert.throws(() => server.close(1000, "x".repeat(124)), RangeError);
  assert.throws(() => server.close(1000, "é".repeat(62)), RangeError); // 124 bytes in 62 characters
  assert.throws(() => server.close(undefined, "why"), TypeError);
  assert.equal(server.readyState, ReadyState.Open);
  assert.deepEqual(sent(server), new Uint8Array(0));
  server.close(4000, "y".repeat(123));
  assert.deepEqual(sent(server), buildFrame(0x88, joinBytes([hex("0f a0"), utf8("y".repeat(123))])));
});

test("close() sends every valid code", async () => {
  for (const code of VALID_CODES) {
    const server = await openServer();
    server.close(code);
    assert.deepEqual(sent(server), buildFrame(0x88, new Uint8Array([code >> 8, code & 0xff])));
  }
});

test("readyState goes CONNECTING, OPEN, CLOSING, CLOSED through a close we start", () => {
  const server = new ServerProtocol();
  assert.equal(server.readyState, ReadyState.Connecting);
  assert.throws(() => server.send("early"), TypeError);
  assert.throws(() => server.close(1000), TypeError);
  server.receiveData(latin1Bytes(upgradeRequest()));
  assert.equal(server.readyState, ReadyState.Connecting);
  server.events();
  server.accept();
  server.dataToSend();
  assert.equal(server.readyState, ReadyState.Open);
  server.close(1000, "bye");
  assert.equal(server.readyState, ReadyState.Closing);
  assert.deepEqual(sent(server), hex("88 05 03 e8 62 79 65"));
  server.close(1001); // no-op once closing
  assert.deepEqual(sent(server), new Uint8Array(0));
  // Messages still arrive while closing, until the peer's close.
  assert.deepEqual(events(server, [fromClient(0x81, "late")]), [text("late")]);
  const list = events(server, [fromClient(0x88, hex("03 e8"))]);
  assert.deepEqual(list, [
    { type: "close", code: 1000, reason: "" },
    {
      type: "closed",
      code: 1000,
      reason: "",
      wasClean: true,
      received: { code: 1000, reason: "" },
      sent: { code: 1000, reason: "bye" },
    },
  ]);
  assert.equal(server.readyState, ReadyState.Closed);
  assert.deepEqual(sent(server), new Uint8Array(0), "no second close frame");
});

test("ClientProtocol goes CONNECTING, OPEN, CLOSED through a close the server starts", async () => {
  const client = new ClientProtocol({ url: "ws://a/" });
  assert.equal(client.readyState, ReadyState.Connecting);
  const open = await openClient();
  assert.equal(open.readyState, ReadyState.Open);
  const list = events(open, [buildFrame(0x88, hex("03 e9"))]);
  assert.deepEqual(list.map((e) => e.type), ["close", "closed"]);
  assert.equal(open.readyState, ReadyState.Closed);
  assert.deepEqual(sent(open), buildFrame(0x88, hex("03 e9"), RFC_MASK));
});

test("Sending after close() or after CLOSED throws TypeError instead of dropping silently", async () => {
  const server = await openServer();
  server.close();
  for (
    const action of [
      () => server.send("x"),
      () => server.send(new Uint8Array(1)),
      () => server.ping(),
      () => server.pong(),
    ]
  ) {
    assert.throws(action, TypeError);
  }
  events(server, [fromClient(0x88, "")]);
  assert.equal(server.readyState, ReadyState.Closed);
  assert.throws(() => server.send("x"), TypeError);
  assert.throws(() => server.ping("x"), TypeError);
  assert.deepEqual(sent(server), hex("88 00"));
  const failed = await openClient();
  assertFails(failed, hex("83 00"), 1002);
  assert.throws(() => failed.send("x"), TypeError);
});

test("receiveEof without a close frame ends with closed 1006, not clean, and sends nothing", async () => {
  for (const open of [openServer, openClient]) {
    const protocol = await open();
    protocol.receiveData(fromClient(0x01, "partial").subarray(0, 5));
    protocol.receiveEof();
    assert.deepEqual(protocol.events(), [
      { type: "closed", code: 1006, reason: "", wasClean: false, received: undefined, sent: undefined },
    ]);
    assert.equal(protocol.readyState, ReadyState.Closed);
    assert.deepEqual(sent(protocol), new Uint8Array(0));
    protocol.receiveEof();
    assert.deepEqual(protocol.events(), [], "closed only once");
  }
});

test("receiveEof while CLOSING reports 1006 with our close frame as sent", async () => {
  const server = await openServer();
  server.close(1001);
  server.dataToSend();
  server.receiveEof();
  assert.deepEqual(server.events(), [
    {
      type: "closed",
      code: 1006,
      reason: "",
      wasClean: false,
      received: undefined,
      sent: { code: 1001, reason: "" },
    },
  ]);
});

test("A protocol violation queues the close frame, then reports failed, then closed", async () => {
  const server = await openServer();
  const list = events(server, [fromClient(0x81, "ok"), fromClient(0x83, "")]);
  assert.deepEqual(list.map((e) => e.type), ["text", "failed", "closed"]);
  const failed = list[1];
  assert.ok(failed.type === "failed" && failed.error instanceof ProtocolError && failed.error.code === 1002);
  const closed = list[2];
  assert.ok(closed.type === "closed");
  assert.equal(closed.code, 1002);
  assert.equal(closed.wasClean, false);
  const frames = readFrames(server.dataToSend());
  assert.equal(frames.length, 1);
  assert.equal(frames[0].first, 0x88);
  assert.equal(closeCode(frames[0].payload), 1002);
  assert.ok(frames[0].payload.length <= 125);
  assert.equal(closed.sent?.reason, new TextDecoder().decode(frames[0].payload.subarray(2)));
});

test("Data after CLOSED is ignored: no events, nothing sent", async () => {
  const failed = await openServer();
  assertFails(failed, fromClient(0x8f, ""), 1002);
  assert.deepEqual(events(failed, [fromClient(0x81, "hi"), fromClient(0x89, "p"), hex("ff ff ff")]), []);
  assert.deepEqual(sent(failed), new Uint8Array(0));
  failed.receiveEof();
  assert.deepEqual(failed.events(), []);

  const closed = await openClient();
  const stream = joinBytes([buildFrame(0x88, hex("03 e8")), RFC_FRAMES.text, RFC_FRAMES.ping]);
  assert.deepEqual(events(closed, [stream]).map((e) => e.type), ["close", "closed"]);
  assert.deepEqual(sent(closed), buildFrame(0x88, hex("03 e8"), RFC_MASK));
  assert.deepEqual(events(closed, [RFC_FRAMES.text]), []);
});

test("autoPong: false reports pings without answering them; pong() answers by hand", async () => {
  const server = await openServer({ autoPong: false });
  assert.deepEqual(events(server, [fromClient(0x89, "Hello")]), [{ type: "ping", data: utf8("Hello") }]);
  assert.deepEqual(sent(server), new Uint8Array(0));
  server.pong("Hello");
  assert.deepEqual(sent(server), hex("8a 05 48 65 6c 6c 6f"));
  const client = await openClient({ autoPong: false });
  assert.deepEqual(events(client, [RFC_FRAMES.ping]).length, 1);
  assert.deepEqual(sent(client), new Uint8Array(0));
});

// ---- Sending ----------------------------------------------------------------------------------------------

test("fragmentSize splits a message: first opcode, then continuations, FIN only on the last", async () => {
  const server = await openServer({ fragmentSize: 4 });
  server.send("HelloWorld!");
  const frames = readFrames(server.dataToSend());
  assert.deepEqual(frames.map((f) => f.first), [0x01, 0x00, 0x80]);
  assert.deepEqual(frames.map((f) => new TextDecoder().decode(f.payload)), ["Hell", "oWor", "ld!"]);
  server.send(counting(8));
  assert.deepEqual(sent(server), hex("02 04 00 01 02 03 80 04 04 05 06 07"));
  server.send(counting(3));
  assert.deepEqual(sent(server), hex("82 03 00 01 02"));
  server.send("");
  assert.deepEqual(sent(server), hex("81 00"));
});

test("fragmentSize applies to each piece sent with fin: false", async () => {
  const client = await openClient({ fragmentSize: 2 });
  client.send("abc", { fin: false });
  client.send("de", { fin: false });
  client.send("f");
  const frames = readFrames(client.dataToSend());
  assert.ok(frames.every((f) => f.masked));
  assert.deepEqual(frames.map((f) => f.first), [0x01, 0x00, 0x00, 0x80]);
  assert.deepEqual(frames.map((f) => new TextDecoder().decode(f.payload)), ["ab", "c", "de", "f"]);
});

test("fragmentSize below 1 is refused with RangeError", () => {
  assert.throws(() => new ServerProtocol({ fragmentSize: 0 }), RangeError);
  assert.throws(() => new ServerProtocol({ fragmentSize: NaN }), RangeError);
});

test("Pieces sent with fin: false become one fragmented message the peer reads whole", async () => {
  const client = await openClient();
  client.sendBinary(counting(3), { fin: false });
  client.sendBinary(new Uint8Array(0), { fin: false });
  client.sendBinary(counting(2, 3));
  const bytes = sent(client);
  assert.deepEqual(readFrames(bytes).map((f) => f.first), [0x02, 0x00, 0x80]);
  const server = await openServer();
  assert.deepEqual(events(server, [bytes]), [binary(counting(5))]);
});

test("Mixing text and binary pieces in one message throws TypeError and sends nothing", async () => {
  const server = await openServer();
  server.send("a", { fin: false });
  assert.throws(() => server.send(new Uint8Array([1])), TypeError);
  assert.throws(() => server.sendBinary(new Uint8Array([1]), { fin: false }), TypeError);
  server.send("b");
  assert.deepEqual(sent(server), hex("01 01 61 80 01 62"));
  // After the message ends, either type may start the next.
  server.send(new Uint8Array([1]), { fin: false });
  assert.throws(() => server.sendText("x"), TypeError);
  server.send(new Uint8Array([2]));
  assert.deepEqual(sent(server), hex("02 01 01 80 01 02"));
});

test("Control frames may be sent between the pieces of a message", async () => {
  const server = await openServer();
  server.send("Hel", { fin: false });
  server.ping("p");
  server.send("lo");
  assert.deepEqual(sent(server), hex("01 03 48 65 6c 89 01 70 80 02 6c 6f"));
});

test("ClientProtocol never modifies the caller's buffer when masking", async () => {
  const client = await openClient({ random: (b) => b.fill(0xa5) });
  for (const length of [1, 100, 65535, 65536, 200000]) {
    const data = counting(length, 3);
    const copy = data.slice();
    client.send(data);
    client.send(data.subarray(1), { fin: false });
    client.send(data.subarray(0, 1));
    assert.deepEqual(data, copy, `length ${length}`);
    const server = await openServer();
    const list = events(server, client.dataToSend());
    assert.deepEqual(list, [binary(copy), binary(joinBytes([copy.subarray(1), copy.subarray(0, 1)]))]);
  }
});

test("ping() and pong() refuse more than 125 bytes with RangeError", async () => {
  const server = await openServer();
  assert.throws(() => server.ping(counting(126)), RangeError);
  assert.throws(() => server.pong(counting(126)), RangeError);
  assert.throws(() => server.ping("é".repeat(63)), RangeError); // 126 bytes
  assert.deepEqual(sent(server), new Uint8Array(0));
  server.ping(counting(125));
  assert.deepEqual(sent(server), buildFrame(0x89, counting(125)));
  const client = await openClient();
  assert.throws(() => client.ping("x".repeat(126)), RangeError);
});

test("bufferedAmount counts the bytes queued until dataToSend() takes them", async () => {
  const server = await openServer();
  assert.equal(server.bufferedAmount, 0);
  server.send("Hello");
  server.send(counting(70000));
  assert.equal(server.bufferedAmount, 7 + 10 + 70000);
  server.dataToSend();
  assert.equal(server.bufferedAmount, 0);
});

// ---- Round trips --------------------------------------------------------------------------------------

test("A 1 MiB binary message goes client to server and back, fed in 64 KiB chunks", async () => {
  const payload = new Uint8Array(1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
  const client = await openClient({ random: (b) => crypto.getRandomValues(b) });
  const server = await openServer();
  client.send(payload);
  feedInPieces(server, sent(client), 65536);
  const atServer = server.events();
  assert.equal(atServer.length, 1);
  assert.ok(atServer[0].type === "binary");
  assert.equal(atServer[0].data.length, payload.length);
  assert.deepEqual(atServer[0].data, payload);
  server.send(atServer[0].data);
  feedInPieces(client, sent(server), 65536);
  assert.deepEqual(client.events(), [binary(payload)]);
});

test("A 1 MiB text message in 100 KiB fragments round-trips in 64 KiB chunks", async () => {
  const message = "ab€𝄞-".repeat(1024 * 1024 / 10);
  const client = await openClient({ fragmentSize: 100 * 1024 });
  const server = await openServer({ fragmentSize: 100 * 1024 });
  client.send(message);
  const bytes = sent(client);
  feedInPieces(server, bytes, 65536);
  assert.deepEqual(server.events(), [text(message)]);
  server.send(message);
  feedInPieces(client, sent(server), 65536);
  assert.deepEqual(client.events(), [text(message)]);
  assert.ok(bytes.length > 1024 * 1024, toHex(bytes.subarray(0, 4)));
});

test("ServerProtocol still answers a ping after sending its close, until the peer's close arrives", async () => {
  const server = await openServer();
  server.close(1000);
  sent(server);
  assert.deepEqual(events(server, [fromClient(0x89, "late")]), [{ type: "ping", data: utf8("late") }]);
  assert.deepEqual(sent(server), buildFrame(0x8a, "late"));
  events(server, [fromClient(0x88, hex("03 e8"))]);
  assert.equal(server.readyState, 3);
  events(server, [fromClient(0x89, "after")]);
  assert.equal(sent(server).length, 0);
});

test("receiveData leaves the chunk untouched unless it is transferred", async () => {
  const payload = counting(8192);
  const frame = fromClient(0x82, payload);
  const original = frame.slice();
  const server = await openServer();
  const [kept] = events(server, [frame]);
  assert.ok(kept.type === "binary");
  assert.deepEqual(kept.data, payload);
  assert.notEqual(kept.data.buffer, frame.buffer);
  assert.deepEqual(frame, original);
});

test("receiveData with transfer unmasks a large message in place and delivers a view of the chunk", async () => {
  const server = await openServer();
  const big = counting(8192), small = counting(100);
  const chunk = joinBytes([fromClient(0x82, big), fromClient(0x82, small)]);
  assert.deepEqual(server.receiveData(chunk, { transfer: true }), { read: chunk.length, kept: true });
  const [first, second] = server.events();
  assert.ok(first.type === "binary" && second.type === "binary");
  assert.deepEqual(first.data, big);
  assert.equal(first.data.buffer, chunk.buffer, "the large message is a view of the chunk");
  assert.deepEqual(second.data, small);
  assert.notEqual(second.data.buffer, chunk.buffer, "a small message is copied, not pinning the chunk");
});

test("receiveData with transfer delivers small messages as views of a chunk of at most 4 KiB", async () => {
  const server = await openServer();
  const payloads = [counting(32), counting(100), counting(5)];
  const chunk = joinBytes(payloads.map((p) => fromClient(0x82, p)));
  const original = chunk.slice();
  assert.equal(server.receiveData(chunk, { transfer: true }).kept, true);
  const received = server.events();
  assert.deepEqual(received.map((e) => e.type === "binary" && e.data), payloads);
  for (const event of received) {
    assert.ok(event.type === "binary" && event.data.buffer === chunk.buffer, "a view of the small chunk");
  }
  // Without transfer, the same bytes are copied and the chunk is untouched.
  assert.equal(server.receiveData(original, {}).kept, false);
  const copied = server.events();
  assert.deepEqual(copied.map((e) => e.type === "binary" && e.data), payloads);
  for (const event of copied) assert.ok(event.type === "binary" && event.data.buffer !== original.buffer);
});

test("copySmallMessages delivers small messages of a transferred chunk as exact copies, large ones in place", async () => {
  const server = await openServer();
  // A chunk of at most 4 KiB: without the hint, these would be views of it (see above).
  const payloads = [counting(32), counting(100), counting(5)];
  const chunk = joinBytes(payloads.map((p) => fromClient(0x82, p)));
  assert.equal(server.receiveData(chunk, { transfer: true, copySmallMessages: true }).kept, false);
  const received = server.events();
  assert.deepEqual(received.map((e) => e.type === "binary" && e.data), payloads);
  received.forEach((event, i) => {
    assert.ok(event.type === "binary" && event.data.buffer !== chunk.buffer, `message ${i} is a copy`);
    assert.equal(event.data.buffer.byteLength, payloads[i].length, `message ${i} holds only its bytes`);
  });
  const large = fromClient(0x82, counting(5000));
  assert.equal(server.receiveData(large, { transfer: true, copySmallMessages: true }).kept, true);
  const [event] = server.events();
  assert.ok(event.type === "binary" && event.data.buffer === large.buffer, "4 KiB or more stays in place");
  assert.deepEqual(event.data, counting(5000));
});

test("receiveData with transfer never lets a message pin more than 16 times its size of the buffer under the chunk", async () => {
  const server = await openServer();
  for (const [length, inPlace] of [[5, false], [5000, false], [16384, true], [20000, true]] as const) {
    // A short read into a large read buffer: the chunk is a view of its start.
    const frame = fromClient(0x82, counting(length));
    const buffer = new Uint8Array(262144);
    buffer.set(frame);
    const chunk = buffer.subarray(0, frame.length);
    assert.equal(server.receiveData(chunk, { transfer: true }).kept, inPlace, `${length} bytes: kept`);
    const [event] = server.events();
    assert.ok(event.type === "binary");
    assert.deepEqual(event.data, counting(length));
    assert.equal(event.data.buffer === buffer.buffer, inPlace, `${length} bytes in place: ${inPlace}`);
    if (!inPlace) assert.equal(event.data.buffer.byteLength, length, "the copy holds only the message");
  }
});

test("receiveData with transfer still copies a message split across chunks", async () => {
  const server = await openServer();
  const payload = counting(10000);
  const frame = fromClient(0x82, payload);
  assert.equal(server.receiveData(frame.slice(0, 5000), { transfer: true }).kept, false);
  assert.equal(server.receiveData(frame.slice(5000), { transfer: true }).kept, false);
  const [event] = server.events();
  assert.ok(event.type === "binary");
  assert.deepEqual(event.data, payload);
});

test("receiveData() returns a fresh result, kept only for a message delivered as a view of the transferred chunk", () => {
  const server = new ServerProtocol();
  const request = latin1Bytes(upgradeRequest());
  const handshake = server.receiveData(request, { transfer: true });
  assert.deepEqual(handshake, { read: request.length, kept: false }, "the handshake copies what it keeps");
  server.events();
  server.accept();
  const text = fromClient(0x81, "a text is decoded, never kept");
  assert.deepEqual(server.receiveData(text, { transfer: true }), { read: text.length, kept: false });
  const ping = fromClient(0x89, "ping");
  assert.deepEqual(server.receiveData(ping, { transfer: true }), { read: ping.length, kept: false });
  const binary = fromClient(0x82, counting(100));
  const first = server.receiveData(binary, { transfer: true });
  assert.deepEqual(first, { read: binary.length, kept: true });
  const second = server.receiveData(fromClient(0x82, counting(100)));
  assert.deepEqual(second, { read: binary.length, kept: false }, "not kept without transfer");
  assert.notEqual(first, second, "a fresh object each call");
  const close = fromClient(0x88, hex("03 e8"));
  assert.equal(server.receiveData(close, { transfer: true }).kept, false);
  const after = fromClient(0x82, counting(100));
  assert.deepEqual(
    server.receiveData(after, { transfer: true }),
    { read: after.length, kept: false },
    "closed",
  );
});

test("events() and dataToSend() never hand out an array the core keeps filling", async () => {
  const server = await openServer();
  const noEvents = server.events();
  const noBytes = server.dataToSend();
  events(server, [fromClient(0x81, "hi")]);
  server.send("yo");
  assert.deepEqual(noEvents, []);
  assert.deepEqual(noBytes, []);
});

test("An extension failing with a code not allowed on the wire fails the connection with 1011", () => {
  const extension = {
    name: "x-broken",
    rsv: 0x20,
    decode(): Uint8Array {
      throw new ProtocolError("not for the wire", 1005);
    },
    encode: (data: Uint8Array) => ({ data, rsv: 0x20 }),
  };
  const server = new ServerProtocol({
    extensions: [{
      name: "x-broken",
      accept: () => ({ response: { name: "x-broken", params: [] }, extension }),
    }],
  });
  server.receiveData(latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", "x-broken"]] })));
  server.events();
  server.accept();
  server.dataToSend();
  const got = events(server, [fromClient(0xa1, "x")]);
  assert.deepEqual(got.map((e) => e.type), ["failed", "closed"]);
  assert.equal((got[1] as ClosedEvent).code, 1011);
  assert.equal(server.readyState, ReadyState.Closed);
});

test("sendText hands an extension bytes it may keep, even for short ASCII text", () => {
  const kept: Uint8Array[] = [];
  const extension = {
    name: "x-buffer",
    rsv: 0,
    decode: (data: Uint8Array) => data,
    // Keeps every piece and sends them all with the final one.
    encode(data: Uint8Array, _first: boolean, final: boolean) {
      kept.push(data);
      return { data: final ? joinBytes(kept) : new Uint8Array(0), rsv: 0 };
    },
  };
  const server = new ServerProtocol({
    extensions: [{
      name: "x-buffer",
      accept: () => ({ response: { name: "x-buffer", params: [] }, extension }),
    }],
  });
  server.receiveData(latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", "x-buffer"]] })));
  server.events();
  server.accept();
  server.dataToSend();
  server.send("hello ", { fin: false });
  server.send("world");
  const frames = joinBytes(server.dataToSend());
  assert.equal(new TextDecoder().decode(frames.subarray(frames.length - 11)), "hello world");
});

test("Protocol refuses NaN and out-of-range limits instead of disabling them", () => {
  for (
    const options of [
      { maxMessageSize: Number("16MiB") },
      { maxFrameSize: -1 },
      { maxFragments: 0 },
      { fragmentSize: 0 },
    ]
  ) {
    assert.throws(() => new ServerProtocol(options), RangeError, JSON.stringify(options));
  }
});

test("Streaming text never emits an empty piece for a character split across reads", async () => {
  const server = await openServer({ streamMessages: true });
  const frame = fromClient(0x81, "é!");
  // Cut inside "é" (c3 a9): the first read completes no character.
  const got = events(server, [frame.subarray(0, 7), frame.subarray(7)]);
  assert.deepEqual(got, [{ type: "text", data: "é!", final: true }]);
});
