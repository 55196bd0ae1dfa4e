// Type-level checks of sock's `WebSocket`: it stands wherever the DOM's `WebSocket` type is expected,
// the class where `typeof WebSocket` is. `deno check` (part of the gate, with Deno's lib, and under
// tools/strict.tsconfig.json with the DOM lib) fails on any line below that does not type-check as
// stated, `@ts-expect-error` lines included; the tests then use the objects at run time, on Deno
// and Bun. (`deno task check:strict` checks this file under the DOM lib.)

import { test } from "node:test";
import { assert, assertEquals } from "./assert.ts";
import { connect } from "../src/client.ts";
import { Sock } from "../src/server/sock.ts";
import { WebSocket as SockWebSocket, type WebSocketEventHandler } from "../src/websocket.ts";

/** `promise`, or a rejection after `ms` (kept here, so this file type-checks alone under the strict config). */
function within<T>(promise: Promise<T>, label: string, ms = 10000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Code written against the DOM type: an echo round trip, resolved with what came back. */
function roundTrip(socket: globalThis.WebSocket, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.binaryType = "arraybuffer";
    socket.onopen = function () {
      this.send(message); // `this` is the DOM type.
    };
    socket.addEventListener("message", (event) => {
      resolve(String(event.data));
      socket.close(1000);
    });
    socket.onerror = (event) => reject(event);
  });
}

/** Listens on a free port: `/echo` echoes and reports the request's `x-token` header and subprotocol. */
async function echoServer() {
  const app = new Sock({ subprotocols: ["chat"] });
  app.route("/echo", async (ws) => {
    await ws.send(`token=${ws.request?.headers.get("x-token") ?? ""} protocol=${ws.subprotocol}`);
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { url: `ws://127.0.0.1:${port}/echo`, close: () => app.close(1000) };
}

test("WebSocket type-checks as the DOM's WebSocket, and works as one where code expects it", async () => {
  const server = await echoServer();
  try {
    const socket: globalThis.WebSocket = new SockWebSocket(server.url);
    // Every member of the DOM type, read through it.
    const state: number = socket.readyState;
    const constants: number[] = [socket.CONNECTING, socket.OPEN, socket.CLOSING, socket.CLOSED];
    const strings: string[] = [socket.url, socket.protocol, socket.extensions];
    const amount: number = socket.bufferedAmount;
    assertEquals([state, constants, amount], [0, [0, 1, 2, 3], 0]);
    assertEquals(strings, [server.url, "", ""]);
    const dispatched: boolean = socket.dispatchEvent(new Event("custom"));
    assert(dispatched);
    // The first message is the server's report; an echo follows.
    const first = await within(roundTrip(socket, "ignored"), "round trip");
    assertEquals(first, "token= protocol=");
  } finally {
    await server.close();
  }
});

test("the WebSocket class type-checks as the DOM's `typeof WebSocket`: a polyfill fits", () => {
  const Polyfill: typeof globalThis.WebSocket = SockWebSocket;
  assertEquals([Polyfill.CONNECTING, Polyfill.OPEN, Polyfill.CLOSING, Polyfill.CLOSED], [0, 1, 2, 3]);
  const prototype: globalThis.WebSocket = Polyfill.prototype;
  assert(prototype instanceof EventTarget);
});

test("on… handlers and listeners get the DOM type in `this`; sock's handler type is assignable both ways", () => {
  const socket = new SockWebSocket("ws://127.0.0.1:1/");
  const domHandler: ((this: globalThis.WebSocket, event: CloseEvent) => unknown) | null = (event) =>
    event.code;
  socket.onclose = domHandler;
  const sockHandler: WebSocketEventHandler<"close"> = socket.onclose;
  const dom: globalThis.WebSocket = socket;
  dom.onclose = sockHandler;
  socket.addEventListener("message", function (event) {
    const open: number = this.OPEN; // `this` is the DOM type.
    const data: unknown = event.data;
    void open, data;
  });
  // Type errors only: never called.
  const _wrong = () => {
    // @ts-expect-error: the listener of "close" gets a CloseEvent, not a MessageEvent.
    socket.addEventListener("close", (event: MessageEvent) => event.data);
    // @ts-expect-error: binaryType is "blob" or "arraybuffer".
    socket.binaryType = "bytes";
    // @ts-expect-error: readyState is read-only.
    socket.readyState = 1;
  };
  socket.onerror = () => {}; // The failed connection (port 1) is quiet.
  socket.close();
});

test("a sock Connection is not a WebSocket: the DOM type catches the mix-up", async () => {
  const server = await echoServer();
  try {
    const connection = await within(connect(server.url), "connect");
    // @ts-expect-error: a Connection has no onmessage, binaryType, … .
    const socket: globalThis.WebSocket = connection;
    void socket;
    await connection.close(1000);
  } finally {
    await server.close();
  }
});

test("the constructor also takes Deno's options object: protocols and extra headers", async () => {
  const server = await echoServer();
  try {
    const socket = new SockWebSocket(server.url, { protocols: ["chat"], headers: { "x-token": "t1" } });
    const report = await within(
      new Promise<string>((resolve, reject) => {
        socket.onmessage = (event) => resolve(String(event.data));
        socket.onerror = reject;
      }),
      "report",
    );
    assertEquals(report, "token=t1 protocol=chat");
    assertEquals(socket.protocol, "chat");
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close(1000);
    await within(closed, "close");
  } finally {
    await server.close();
  }
});
