// Every promise a connection hands out settles when it ends, and none of them ends a process:
// fire-and-forget sends while clients come and go, pings whose pong never comes, drain() on a
// dropped peer, a peer cut for not reading (it learns 1008, and so does its handler), and a peer
// uploading one large frame slowly, which keepalive must not take for dead.

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import * as net from "node:net";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { Sock } from "../../src/server/sock.ts";
import {
  buildFrame,
  frameHeader,
  joinBytes,
  maskPayload,
  readFrames,
  upgradeRequest,
  within,
} from "../_helpers.ts";

const BOUND = 20_000;
const KEY = [9, 8, 7, 6];

/** Counts unhandled rejections while `body` runs (the runtime would otherwise end the process). */
async function countingUnhandled(body: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on("unhandledRejection", listener);
  try {
    await body();
    // Rejections are reported after the microtasks of the turn that made them.
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    process.off("unhandledRejection", listener);
  }
  return seen;
}

/** A raw client socket upgraded to `/`, with everything it received after the 101. */
async function rawPeer(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  const chunks: Uint8Array[] = [];
  let notify: (() => void) | undefined;
  socket.on("data", (data: Uint8Array) => {
    chunks.push(new Uint8Array(data));
    notify?.();
  });
  const ended = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  socket.write(upgradeRequest({ target: "/" }));
  let headEnd = -1;
  while (headEnd < 0) {
    await new Promise<void>((resolve) => notify = resolve);
    const text = new TextDecoder("latin1").decode(joinBytes(chunks));
    if (text.includes("\r\n\r\n")) headEnd = text.indexOf("\r\n\r\n") + 4;
  }
  return { socket, ended, frames: () => readFrames(joinBytes(chunks).subarray(headEnd)) };
}

test("Fire-and-forget send(), ping(), drain(), sendStream(), close() and publish() while 1,000 clients come and go: no unhandled rejection, the server lives", async () => {
  const app = new Sock({ pingInterval: 0, closeTimeout: 500 });
  const timers = new Set<ReturnType<typeof setInterval>>();
  app.route("/", (ws) => {
    ws.subscribe("all");
    // Nothing here is awaited: after the peer leaves, every call's promise rejects unobserved.
    const timer = setInterval(() => {
      ws.send("tick");
      ws.ping();
      ws.drain();
      ws.sendStream(["a", "b"]);
      app.publish("all", "news");
    }, 2);
    timers.add(timer);
    ws.closed.then(() => {
      clearInterval(timer);
      timers.delete(timer);
      ws.send("too late");
      ws.ping();
      ws.close();
    });
    return ws.closed;
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const unhandled = await countingUnhandled(async () => {
      for (let round = 0; round < 20; round++) {
        await Promise.all(Array.from({ length: 50 }, async (_, i) => {
          const ws = await connect(`ws://127.0.0.1:${port}/`, { pingInterval: 0 });
          await ws.receive({ timeout: BOUND });
          // Half vanish without a close frame, half close cleanly.
          if (i % 2 === 0) ws.terminate();
          else await ws.close(1000);
        }));
      }
      await within(waitFor(() => timers.size === 0), "every handler saw its close", BOUND);
    });
    assert.deepEqual(unhandled, [], "no unhandled rejection");
    // Still serving.
    const ws = await connect(`ws://127.0.0.1:${port}/`, { pingInterval: 0 });
    assert.equal(await ws.receive({ timeout: BOUND }), "tick");
    await ws.close();
  } finally {
    for (const timer of timers) clearInterval(timer);
    await app.close();
  }
});

test("ping() settles when the connection ends first: by a TCP drop and by the peer's close frame", async () => {
  const results: unknown[] = [];
  const app = new Sock({ pingInterval: 0, closeTimeout: 500 });
  app.route("/", async (ws) => {
    results.push(await ws.ping().then(() => "pong", (error) => error));
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // The raw peers never answer the ping.
    const dropping = await rawPeer(port);
    await within(
      waitFor(() => dropping.frames().some((f) => (f.first & 0x0f) === 0x9)),
      "the ping arrives",
      BOUND,
    );
    dropping.socket.destroy();
    await within(waitFor(() => results.length === 1), "ping() settles after a drop", BOUND);
    const closing = await rawPeer(port);
    await within(
      waitFor(() => closing.frames().some((f) => (f.first & 0x0f) === 0x9)),
      "the ping arrives",
      BOUND,
    );
    closing.socket.write(buildFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
    await within(waitFor(() => results.length === 2), "ping() settles after a close", BOUND);
    closing.socket.destroy();
    for (const result of results) {
      assert.ok(result instanceof ConnectionClosed, `ping() rejects with ConnectionClosed, not ${result}`);
    }
    assert.equal((results[0] as ConnectionClosed).code, 1006);
    assert.equal((results[1] as ConnectionClosed).code, 1000);
  } finally {
    await app.close();
  }
});

test("A peer that stops reading is cut with 1008: its handler learns 1008, and the peer finds the close frame once it reads again", async () => {
  const MB = 1024 * 1024;
  let handlerSaw: number | undefined;
  const app = new Sock({ pingInterval: 0, maxBufferedAmount: MB, closeTimeout: 10_000 });
  app.route("/", async (ws: Connection) => {
    const chunk = new Uint8Array(60 * 1024).fill(7); // Under 64 KiB: readFrames() reads 16-bit lengths.
    // Unawaited sends until the buffer limit cuts the connection.
    while (ws.readyState === 1) {
      ws.send(chunk);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    handlerSaw = (await ws.closed).code;
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await rawPeer(port);
    peer.socket.pause();
    await within(waitFor(() => handlerSaw !== undefined), "the handler sees the cut", BOUND);
    assert.equal(handlerSaw, 1008);
    peer.socket.resume();
    await within(peer.ended, "the server closes once its close frame is out", BOUND);
    const frames = peer.frames();
    const last = frames[frames.length - 1];
    assert.equal(last.first, 0x88, "the stream ends with a close frame");
    assert.equal((last.payload[0] << 8) | last.payload[1], 1008);
  } finally {
    await app.close();
  }
});

test("A peer uploading one large frame slowly is not dropped by keepalive: arriving bytes are a sign of life", async () => {
  const pingInterval = 200, pongTimeout = 200;
  const app = new Sock({ pingInterval, pongTimeout });
  app.route("/", (ws) => ws.forEach((message) => ws.send(message)));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await rawPeer(port);
    // One 4 KiB frame, 64 bytes every 20 ms: about 1.3 s, several pings and pong timeouts long.
    // The peer answers no ping: it is in the middle of a frame.
    const payload = new Uint8Array(4096).fill(0x41);
    const frame = joinBytes([frameHeader(0x82, payload.length, KEY), maskPayload(payload, KEY)]);
    for (let at = 0; at < frame.length; at += 64) {
      peer.socket.write(frame.subarray(at, at + 64));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await within(
      waitFor(() => peer.frames().some((f) => (f.first & 0x0f) === 0x2) || peer.socket.destroyed),
      "the echo",
      BOUND,
    );
    const echo = peer.frames().find((f) => (f.first & 0x0f) === 0x2);
    assert.ok(echo, "the message was echoed, the peer was not dropped");
    assert.equal(echo.payload.length, payload.length);
    peer.socket.destroy();
  } finally {
    await app.close();
  }
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

test("A message left unfinished fails the connection with 1008 after messageTimeout, though the peer keeps sending pongs", async () => {
  let handlerSaw: number | undefined;
  const app = new Sock({ pingInterval: 0, messageTimeout: 300 });
  app.route("/", async (ws) => {
    await ws.receive().catch(() => {});
    handlerSaw = (await ws.closed).code;
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await rawPeer(port);
    peer.socket.write(buildFrame(0x01, "the start of a message that never ends", KEY));
    // Pongs between fragments are allowed, and keep bytes arriving: only the message's age counts.
    const pongs = setInterval(() => peer.socket.write(buildFrame(0x8a, "", KEY)), 50);
    try {
      await within(waitFor(() => handlerSaw !== undefined), "the handler sees the failure", BOUND);
    } finally {
      clearInterval(pongs);
    }
    assert.equal(handlerSaw, 1008);
    await within(waitFor(() => peer.frames().some((f) => f.first === 0x88)), "the close frame", BOUND);
    const close = peer.frames().find((f) => f.first === 0x88)!;
    assert.equal((close.payload[0] << 8) | close.payload[1], 1008);
    peer.socket.destroy();
  } finally {
    await app.close();
  }
});

test("Timeouts of Infinity do not fire after 1 ms, as a timer past 2^31 - 1 ms would: messageTimeout, idleTimeout, pongTimeout, receive()", async () => {
  let received: unknown;
  let waited: unknown;
  const app = new Sock({
    messageTimeout: Infinity,
    idleTimeout: Infinity,
    pingInterval: 5,
    pongTimeout: Infinity,
  });
  app.route("/", async (ws) => {
    waited = await ws.receive({ timeout: Infinity });
    received = await ws.receive();
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await rawPeer(port);
    peer.socket.write(buildFrame(0x82, "first", KEY));
    // The first fragment of a message, then silence: the peer answers no ping and sends nothing.
    peer.socket.write(buildFrame(0x01, "hello", KEY));
    let ended = false;
    void peer.ended.then(() => ended = true);
    await within(
      waitFor(() => peer.frames().some((f) => f.first === 0x89) || ended),
      "a keepalive ping",
      BOUND,
    );
    // Every timer is set now (the ping's pong timeout last). Cut to 1 ms, any of them would end the
    // connection well within this wait; a loaded machine can only make the wait prove less, never
    // fail it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(ended, false, "the server dropped the connection");
    assert.equal(peer.frames().some((f) => f.first === 0x88), false, "the server closed");
    peer.socket.write(buildFrame(0x80, " world", KEY));
    await within(waitFor(() => received !== undefined), "the message", BOUND);
    assert.deepEqual(waited, new TextEncoder().encode("first"));
    assert.equal(received, "hello world");
    peer.socket.destroy();
  } finally {
    await app.close();
  }
});

test("Two pings with the same payload both settle when their pong arrives", async () => {
  let rtts: number[] | undefined;
  const app = new Sock({ pingInterval: 0 });
  app.route("/", async (ws) => {
    rtts = await Promise.all([ws.ping("same"), ws.ping("same")]);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/`, { pingInterval: 0 });
    await within(ws.closed, "the handler returned, so the server closed", BOUND);
    assert.equal(rtts?.length, 2);
    assert.ok(rtts.every((rtt) => rtt >= 0));
  } finally {
    await app.close();
  }
});
