// Nothing lost before an ending: a peer sends, in one write, valid messages followed by an ending
// (each kind of protocol violation, a close frame, or EOF). Every valid message reaches the
// application, and the replies it sends before it next waits for a message reach the peer before
// our close frame (with the right code) or before the connection closes: server and client role,
// forEach, for-await and receive() handlers. The peers are raw TCP sockets (node:net), so the bytes are exact.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { Sock } from "../../src/server/sock.ts";
import { acceptToken } from "../../src/core/handshake.ts";
import {
  buildFrame,
  frameHeader,
  joinBytes,
  latin1Bytes,
  readFrames,
  upgradeRequest,
  within,
} from "../_helpers.ts";

const KEY = [0x11, 0x22, 0x33, 0x44];
const MESSAGES = ["one", "two", "three"];
/** The limit the oversized frame breaks. */
const MAX_MESSAGE = 1024;
/** Every wait here is bounded by this, far above the close timeout the connections use (1 s). */
const BOUND = 15_000;
const CLOSE_TIMEOUT = 1000;

interface Ending {
  name: string;
  /** The ending's bytes, masked with `KEY` for the client-to-server direction. */
  bytes(mask: readonly number[] | undefined): Uint8Array;
  /** The close code our close frame carries; `undefined` for EOF, where none is sent. */
  sent: number | undefined;
  /** The code the application's connection reports. */
  reported: number;
}

const ENDINGS: Ending[] = [
  { name: "RSV1 without an extension", bytes: (m) => buildFrame(0xc1, "x", m), sent: 1002, reported: 1002 },
  { name: "a reserved opcode", bytes: (m) => buildFrame(0x83, "x", m), sent: 1002, reported: 1002 },
  { name: "a fragmented ping", bytes: (m) => buildFrame(0x09, "x", m), sent: 1002, reported: 1002 },
  {
    name: "a continuation without a start",
    bytes: (m) => buildFrame(0x80, "x", m),
    sent: 1002,
    reported: 1002,
  },
  {
    name: "invalid UTF-8 in a following message",
    bytes: (m) => buildFrame(0x81, new Uint8Array([0x61, 0xff, 0x62]), m),
    sent: 1007,
    reported: 1007,
  },
  // Refused from its header: the payload need not follow.
  {
    name: "an oversized frame",
    bytes: (m) => frameHeader(0x82, MAX_MESSAGE * 2, m),
    sent: 1009,
    reported: 1009,
  },
  {
    name: "a close frame",
    bytes: (m) => buildFrame(0x88, new Uint8Array([0x03, 0xe8]), m),
    sent: 1000,
    reported: 1000,
  },
  { name: "EOF (FIN)", bytes: () => new Uint8Array(0), sent: undefined, reported: 1006 },
];

type Style = "forEach" | "for await" | "receive()";

/** Echoes every message; the others wait a little before each reply, so replies cross turns. */
async function echo(ws: Connection, style: Style): Promise<void> {
  if (style === "forEach") return ws.forEach((message) => ws.send(message));
  if (style === "receive()") {
    for (let message = await ws.receive(); message !== undefined; message = await ws.receive()) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      ws.send(message); // Not awaited: it goes out when the loop next waits.
    }
    return;
  }
  for await (const message of ws) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await ws.send(message);
  }
}

/** Everything a raw socket receives, until it ends. */
function collect(socket: net.Socket) {
  const chunks: Uint8Array[] = [];
  const ended = new Promise<void>((resolve) => {
    socket.on("close", () => resolve());
    socket.on("error", () => {});
  });
  let notify: (() => void) | undefined;
  socket.on("data", (data: Uint8Array) => {
    chunks.push(new Uint8Array(data));
    notify?.();
  });
  return {
    ended,
    bytes: () => joinBytes(chunks),
    /** Resolves once the bytes received so far contain `marker` (ISO-8859-1), with where it ends. */
    async head(marker = "\r\n\r\n"): Promise<number> {
      while (true) {
        const at = latin1(joinBytes(chunks)).indexOf(marker);
        if (at >= 0) return at + marker.length;
        await new Promise<void>((resolve) => notify = resolve);
      }
    },
  };
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let at = 0; at < bytes.length; at += 8192) {
    text += String.fromCharCode(...bytes.subarray(at, at + 8192));
  }
  return text;
}

/** Checks the frames after the handshake: the echoes in order, then our close frame (or nothing after EOF). */
function assertRepliesFirst(frames: ReturnType<typeof readFrames>, ending: Ending, label: string): void {
  const texts = frames.filter((frame) => (frame.first & 0x0f) === 0x1);
  assert.deepEqual(
    texts.map((frame) => new TextDecoder().decode(frame.payload)),
    MESSAGES,
    `${label}: every reply`,
  );
  const close = frames.findIndex((frame) => (frame.first & 0x0f) === 0x8);
  if (ending.sent === undefined) {
    assert.equal(close, -1, `${label}: no close frame after EOF`);
    return;
  }
  assert.ok(close >= 0, `${label}: a close frame`);
  assert.ok(close > frames.indexOf(texts[texts.length - 1]), `${label}: the close frame after every reply`);
  const payload = frames[close].payload;
  assert.equal((payload[0] << 8) | payload[1], ending.sent, `${label}: close code`);
}

for (const style of ["forEach", "for await", "receive()"] as Style[]) {
  test(`Server role, ${style} handler: replies to every message before a following ending go out before our close`, async () => {
    const reported: number[] = [];
    const app = new Sock({ maxMessageSize: MAX_MESSAGE, pingInterval: 0, closeTimeout: CLOSE_TIMEOUT });
    app.route("/", async (ws) => {
      try {
        await echo(ws, style);
      } finally {
        reported.push((await ws.closed).code);
      }
    });
    const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      for (const ending of ENDINGS) {
        const label = `${style}, ${ending.name}`;
        const socket = net.connect(port, "127.0.0.1");
        const peer = collect(socket);
        socket.write(upgradeRequest({ target: "/" }));
        const headEnd = await within(peer.head(), `${label}: 101`, BOUND);
        assert.match(latin1(peer.bytes().subarray(0, headEnd)), /^HTTP\/1\.1 101 /);
        // The messages and the ending in one write.
        socket.write(joinBytes([...MESSAGES.map((m) => buildFrame(0x81, m, KEY)), ending.bytes(KEY)]));
        if (ending.sent === undefined) socket.end();
        // The server closes the TCP connection once it has said everything.
        await within(peer.ended, `${label}: the server closes`, BOUND);
        assertRepliesFirst(readFrames(peer.bytes().subarray(headEnd)), ending, label);
        await within(
          waitFor(() => reported.length === ENDINGS.indexOf(ending) + 1),
          `${label}: handler`,
          BOUND,
        );
        assert.equal(reported[reported.length - 1], ending.reported, `${label}: the handler's close code`);
      }
    } finally {
      await app.close();
    }
  });

  test(`Client role, ${style} consumer: replies to every message before a following ending go out before our close`, async () => {
    for (const ending of ENDINGS) {
      const label = `${style}, ${ending.name}`;
      const server = net.createServer();
      const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as net.AddressInfo;
      try {
        const opening = connect(`ws://127.0.0.1:${port}/`, {
          maxMessageSize: MAX_MESSAGE,
          pingInterval: 0,
          closeTimeout: CLOSE_TIMEOUT,
        });
        const socket = await within(accepted, `${label}: accept`, BOUND);
        const peer = collect(socket);
        const headEnd = await within(peer.head(), `${label}: request`, BOUND);
        const request = latin1(peer.bytes().subarray(0, headEnd));
        const key = /sec-websocket-key: *(\S+)/i.exec(request)![1];
        const response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${acceptToken(key)}\r\n\r\n`;
        // The 101, the messages and the ending in one write.
        socket.write(joinBytes([
          latin1Bytes(response),
          ...MESSAGES.map((m) => buildFrame(0x81, m)),
          ending.bytes(undefined),
        ]));
        if (ending.sent === undefined) socket.end();
        const ws = await within(opening, `${label}: connect()`, BOUND);
        const consumed = echo(ws, style).then(() => undefined, (error) => error);
        await within(peer.ended, `${label}: the client closes`, BOUND);
        assertRepliesFirst(readFrames(peer.bytes().subarray(headEnd)), ending, label);
        const error = await within(consumed, `${label}: consumer`, BOUND);
        const code = error instanceof ConnectionClosed ? error.code : (await ws.closed).code;
        assert.equal(code, ending.reported, `${label}: the consumer's close code`);
      } finally {
        server.close();
      }
    }
  });
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
