// Bounded work per receiveData() call (ReceiveOptions.maxWork and maxMessages): the core stops
// between frames or inside a compressed payload, returns how much of the chunk it read, and fed
// the rest produces exactly the events one unbounded call would have.

import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { ServerProtocol } from "../../src/core/server_protocol.ts";
import { ClientProtocol } from "../../src/core/client_protocol.ts";
import { acceptToken } from "../../src/core/handshake.ts";
import { PerMessageDeflateServer } from "../../src/core/deflate/permessage_deflate.ts";
import type { ProtocolEvent } from "../../src/core/protocol.ts";
import {
  acceptResponseText,
  buildFrame,
  joinBytes,
  latin1Bytes,
  latin1Text,
  openServer,
  RFC_RANDOM,
  upgradeRequest,
} from "../_helpers.ts";

const KEY = [1, 2, 3, 4];

/** Feeds `bytes` in calls bounded by `options`; returns the events and how many calls it took. */
function feedBounded(
  server: ServerProtocol,
  bytes: Uint8Array,
  options: { maxWork?: number; maxMessages?: number },
): { events: ProtocolEvent[]; calls: number; perCall: number[] } {
  const events: ProtocolEvent[] = [];
  const perCall: number[] = [];
  let rest = bytes, calls = 0;
  while (rest.length > 0) {
    const { read } = server.receiveData(rest, options);
    assert.ok(read > 0 && read <= rest.length, `each call reads something: ${read} of ${rest.length}`);
    const produced = server.events() as ProtocolEvent[];
    perCall.push(produced.length);
    events.push(...produced);
    rest = rest.subarray(read);
    calls++;
  }
  return { events, calls, perCall };
}

function deflateServer(): ServerProtocol {
  const server = new ServerProtocol({
    extensions: [new PerMessageDeflateServer()],
    maxMessageSize: 32 << 20,
  });
  server.receiveData(
    latin1Bytes(upgradeRequest({ extra: [["Sec-WebSocket-Extensions", "permessage-deflate"]] })),
  );
  server.events();
  server.accept();
  server.dataToSend();
  return server;
}

/** A compressed (RSV1) masked frame of `data`, as RFC 7692 §7.2.1 sends it (no sync-flush tail). */
function compressedFrame(data: Uint8Array): Uint8Array {
  const deflated = deflateRawSync(data, { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  return buildFrame(0xc2, new Uint8Array(deflated.subarray(0, deflated.length - 4)), KEY);
}

test("receiveData() with maxWork stops between tiny frames, and the rest fed later gives the same events", async () => {
  const frames = Array.from({ length: 5000 }, (_, i) => buildFrame(0x82, new Uint8Array([i & 0xff]), KEY));
  const bytes = joinBytes(frames);
  const whole = await openServer();
  whole.receiveData(bytes);
  const expected = whole.events();
  const bounded = feedBounded(await openServer(), bytes, { maxWork: 64 * 1024 });
  assert.deepEqual(bounded.events, expected);
  // 5,000 frames of 65 units each, 64 Ki units a call: five or six calls, each about 1,000 frames.
  assert.ok(bounded.calls >= 5 && bounded.calls <= 6, `${bounded.calls} calls`);
  assert.ok(Math.max(...bounded.perCall) <= 1010, `at most ~1,000 messages a call: ${bounded.perCall}`);
});

test("receiveData() with maxWork stops inside a compressed frame: 16 MiB from 16 KiB come in ~1 MiB steps", async () => {
  const original = new Uint8Array(16 << 20).fill(0x61);
  const frame = compressedFrame(original);
  assert.ok(frame.length < 32 * 1024, `the bomb is small: ${frame.length} bytes`);
  const server = await deflateServer();
  let rest = frame, calls = 0;
  let events: ProtocolEvent[] = [];
  while (rest.length > 0) {
    const { read } = server.receiveData(rest, { maxWork: 1 << 20 });
    rest = rest.subarray(read);
    events = events.concat(server.events() as ProtocolEvent[]);
    calls++;
  }
  assert.equal(events.length, 1);
  const [event] = events;
  assert.ok(event.type === "binary");
  assert.equal(event.data.length, original.length);
  assert.ok(event.data.every((b) => b === 0x61));
  // About one call per MiB inflated (each 1 KiB piece inflates to about 1 MiB here).
  assert.ok(calls >= 8, `inflated over ${calls} calls, not in one`);
});

test("receiveData() with maxMessages stops after that many messages", async () => {
  const bytes = joinBytes(Array.from({ length: 10 }, (_, i) => buildFrame(0x81, `m${i}`, KEY)));
  const server = await openServer();
  const { read } = server.receiveData(bytes, { maxMessages: 3 });
  const first = server.events();
  assert.deepEqual(first.map((e) => e.type === "text" && e.data), ["m0", "m1", "m2"]);
  assert.ok(read < bytes.length);
  const bounded = feedBounded(server, bytes.subarray(read), { maxMessages: 3 });
  assert.deepEqual(bounded.perCall, [3, 3, 1]);
  assert.deepEqual(bounded.events.map((e) => e.type === "text" && e.data), [
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "m9",
  ]);
});

test("receiveData() reads the whole chunk past an ending, whatever the limits: nothing after it is parsed", async () => {
  const bytes = joinBytes([
    buildFrame(0x81, "a", KEY),
    buildFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY),
    buildFrame(0x81, "never", KEY),
  ]);
  const server = await openServer();
  assert.equal(server.receiveData(bytes, { maxMessages: 5 }).read, bytes.length);
  assert.deepEqual(server.events().map((e) => e.type), ["text", "close", "closed"]);
});

test("receiveData() with limits, split at random offsets, gives the events of one unbounded call", async () => {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    parts.push(buildFrame(i % 7 === 0 ? 0x01 : 0x81, `part ${i} `.repeat(i % 13), KEY));
    if (i % 7 === 0) parts.push(buildFrame(0x89, "ping", KEY), buildFrame(0x80, "end", KEY));
  }
  const bytes = joinBytes(parts);
  const whole = await openServer();
  whole.receiveData(bytes);
  const expected = whole.events();
  for (const [maxWork, maxMessages] of [[200, 2], [1000, 1], [5000, 50]]) {
    const server = await openServer();
    const events: ProtocolEvent[] = [];
    let seed = maxWork;
    for (let at = 0; at < bytes.length;) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      let chunk = bytes.subarray(at, Math.min(bytes.length, at + 1 + (seed % 400)));
      at += chunk.length;
      while (chunk.length > 0) {
        chunk = chunk.subarray(server.receiveData(chunk, { maxWork, maxMessages }).read);
        events.push(...server.events() as ProtocolEvent[]);
      }
    }
    assert.deepEqual(events, expected, `maxWork ${maxWork}, maxMessages ${maxMessages}`);
  }
});

test("ServerProtocol with leaveUnread reads no early frame in accept(): takeUnread() hands them over, to read within limits", () => {
  const early = joinBytes(Array.from({ length: 50 }, (_, i) => buildFrame(0x81, `early ${i}`, KEY)));
  const request = joinBytes([latin1Bytes(upgradeRequest()), early]);
  const eager = new ServerProtocol();
  eager.receiveData(request);
  eager.events();
  eager.accept();
  const expected = eager.events();
  assert.equal(expected.length, 50, "by default accept() reads them all at once");

  const server = new ServerProtocol({ leaveUnread: true });
  server.receiveData(request);
  server.events();
  server.accept();
  assert.deepEqual(server.events(), [], "accept() read nothing");
  const unread = server.takeUnread();
  assert.deepEqual(unread, early);
  assert.equal(server.takeUnread(), undefined, "handed over once");
  const bounded = feedBounded(server, unread!, { maxMessages: 8 });
  assert.deepEqual(bounded.events, expected);
  assert.equal(bounded.calls, 7);
});

test("ClientProtocol with leaveUnread leaves the frames behind the 101 for takeUnread()", () => {
  const client = new ClientProtocol({
    url: "ws://server.example.com/chat",
    random: RFC_RANDOM,
    leaveUnread: true,
  });
  client.sendRequest();
  const key = /Sec-WebSocket-Key: ([^\r]+)/i.exec(latin1Text(client.dataToSend()))![1];
  client.receiveData(
    joinBytes([latin1Bytes(acceptResponseText(acceptToken(key))), buildFrame(0x81, "after")]),
  );
  assert.deepEqual(client.events().map((e) => e.type), ["accepted"]);
  const unread = client.takeUnread()!;
  assert.equal(client.receiveData(unread, { maxMessages: 1 }).read, unread.length);
  assert.deepEqual(client.events(), [{ type: "text", data: "after", final: true }]);
});
