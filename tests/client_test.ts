// connect() and HandshakeRejected (src/client.ts) against a real Sock server and, where the server's
// bytes must be exact or misbehave, a raw TCP peer made with node:net. Everything talks to
// 127.0.0.1 only, and every wait is bounded with within().

import { test } from "node:test";
import * as net from "node:net";
import { connect, type ConnectOptions, HandshakeRejected } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";
import { Sock } from "../src/server/sock.ts";
import { detectAdapter } from "../src/adapters/mod.ts";
import { ConnectError } from "../src/net_errors.ts";
import type { Adapter } from "../src/transport.ts";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertStrictEquals } from "./assert.ts";
import { within } from "./_helpers.ts";

/** Every wait here is bounded by this; none of them should come near it. */
const BOUND = 10_000;

/** Awaits a close (bounded) and checks it ended cleanly with 1000. */
async function closesCleanly(closing: Promise<{ code: number; wasClean: boolean }>): Promise<void> {
  const closed = await within(closing, "close", BOUND);
  assertStrictEquals(closed.code, 1000);
  assertStrictEquals(closed.wasClean, true);
}

/** A raw TCP server on a free loopback port; `close()` destroys the sockets it accepted too. */
interface RawServer {
  port: number;
  url: string;
  /** Sockets accepted so far. */
  sockets: net.Socket[];
  /** Resolves with each accepted socket in turn; the first call, with the first socket. */
  accepted: Promise<net.Socket>;
  close(): Promise<void>;
}

async function rawServer(onSocket: (socket: net.Socket) => void): Promise<RawServer> {
  const sockets: net.Socket[] = [];
  const first = Promise.withResolvers<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {}); // A reset from the client is expected in some tests.
    first.resolve(socket);
    onSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    sockets,
    accepted: first.promise,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Calls `onHead` with the request head once a socket has sent all of it, and `onRest` with the bytes after. */
function onRequestHead(
  socket: net.Socket,
  onHead: (head: string) => void,
  onRest: (chunk: Buffer) => void = () => {},
): void {
  let buffered = Buffer.alloc(0);
  let head: string | undefined;
  socket.on("data", (chunk: Buffer) => {
    if (head !== undefined) return onRest(chunk);
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf("\r\n\r\n");
    if (end < 0) return;
    head = buffered.subarray(0, end + 4).toString("latin1");
    onHead(head);
    if (buffered.length > end + 4) onRest(buffered.subarray(end + 4));
  });
}

/** The Sec-WebSocket-Accept for `key` (RFC 6455 §4.2.2), computed here rather than by the code under test. */
async function acceptFor(key: string): Promise<string> {
  const input = new TextEncoder().encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", input));
  return btoa(String.fromCharCode(...digest));
}

/** An unmasked frame with a payload under 126 bytes, as a server sends. */
function serverFrame(first: number, payload: Uint8Array | string): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  if (data.length > 125) throw new Error("serverFrame() takes payloads under 126 bytes");
  const out = new Uint8Array(2 + data.length);
  out[0] = first;
  out[1] = data.length;
  out.set(data, 2);
  return out;
}

/** The detected adapter, counting its connect() calls. */
function countingAdapter(): { adapter: Adapter; connects: () => number } {
  const real = detectAdapter();
  let count = 0;
  const adapter: Adapter = {
    name: `counting ${real.name}`,
    listen: (endpoint, onConnection) => real.listen(endpoint, onConnection),
    connect: (endpoint) => {
      count++;
      return real.connect(endpoint);
    },
  };
  return { adapter, connects: () => count };
}

test("connect: an echo round trip, with the subprotocol the server prefers", async () => {
  const app = new Sock({ subprotocols: ["chat.v2", "chat.v1"] });
  app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  let ws: Connection | undefined;
  try {
    ws = await within(
      connect(`ws://127.0.0.1:${port}/echo`, { subprotocols: ["chat.v1", "chat.v2"] }),
      "connect",
      BOUND,
    );
    assertStrictEquals(ws.subprotocol, "chat.v2");
    await ws.send("héllo ✓");
    assertStrictEquals(await within(ws.receive(), "text echo", BOUND), "héllo ✓");
    await ws.send(new Uint8Array([0, 1, 2, 255]));
    assertEquals(await within(ws.receive(), "binary echo", BOUND), new Uint8Array([0, 1, 2, 255]));
    await closesCleanly(ws.close(1000, "done"));
  } finally {
    ws?.terminate();
    await app.close();
  }
});

test("connect: no subprotocol in common leaves ws.subprotocol empty", async () => {
  const app = new Sock({ subprotocols: ["chat.v2"] });
  app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  let ws: Connection | undefined;
  try {
    ws = await within(
      connect(`ws://127.0.0.1:${port}/echo`, { subprotocols: ["chat.v9"] }),
      "connect",
      BOUND,
    );
    assertStrictEquals(ws.subprotocol, "");
    await ws.send("ping");
    assertStrictEquals(await within(ws.receive(), "echo", BOUND), "ping");
    await within(ws.close(), "close", BOUND);
  } finally {
    ws?.terminate();
    await app.close();
  }
});

test("connect: a missing route rejects with HandshakeRejected carrying 404 and the body", async () => {
  const app = new Sock();
  app.route("/here", (ws) => ws.close());
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const error = await within(
      assertRejects(() => connect(`ws://127.0.0.1:${port}/nowhere`), HandshakeRejected),
      "connect",
      BOUND,
    );
    assertStrictEquals(error.name, "HandshakeRejected");
    assertStrictEquals(error.response.status, 404);
    assert(error.message.includes("404"), error.message);
    assertStrictEquals(new TextDecoder().decode(error.body), "no route for this path\n");
  } finally {
    await app.close();
  }
});

test("connect: a raw 403 with a body rejects with HandshakeRejected carrying status, headers and body", async () => {
  const body = "go away, you are not invited\n";
  const server = await rawServer((socket) =>
    onRequestHead(socket, () => {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\n" +
          "Content-Type: text/plain\r\n" +
          "X-Why: test\r\n" +
          `Content-Length: ${body.length}\r\n` +
          "Connection: close\r\n\r\n" + body,
      );
    })
  );
  try {
    const error = await within(
      assertRejects(() => connect(`${server.url}/`), HandshakeRejected),
      "connect",
      BOUND,
    );
    assertStrictEquals(error.response.status, 403);
    assertStrictEquals(error.response.statusText, "Forbidden");
    assertStrictEquals(error.response.headers.get("x-why"), "test");
    assertStrictEquals(error.message, "server rejected the WebSocket handshake: 403 Forbidden");
    assertStrictEquals(new TextDecoder().decode(error.body), body);
  } finally {
    await server.close();
  }
});

test("connect: timeout gives a TimeoutError naming host:port when the server never answers", async () => {
  const server = await rawServer(() => {}); // Accepts, reads, never writes.
  try {
    const error = await within(
      assertRejects(() => connect(`${server.url}/`, { timeout: 300 })),
      "connect with a timeout",
      BOUND,
    );
    assertInstanceOf(error, DOMException);
    assertStrictEquals(error.name, "TimeoutError");
    assert(error.message.includes(`127.0.0.1:${server.port}`), error.message);
    // Giving up closed the connection it had opened.
    const socket = await within(server.accepted, "accepted", BOUND);
    await within(
      new Promise<void>((resolve) => {
        if (socket.destroyed || socket.readableEnded) return resolve();
        socket.once("close", () => resolve());
        socket.resume();
      }),
      "the client closing the socket after the timeout",
      BOUND,
    );
  } finally {
    await server.close();
  }
});

test("connect: an already-aborted signal rejects with its reason, without connecting", async () => {
  const { adapter, connects } = countingAdapter();
  const reason = new Error("not today");
  const controller = new AbortController();
  controller.abort(reason);
  // Nothing listens there: a connection attempt would fail with a ConnectError instead.
  const error = await within(
    assertRejects(() => connect("ws://127.0.0.1:1/", { adapter, signal: controller.signal })),
    "connect",
    BOUND,
  );
  assertStrictEquals(error, reason);
  assertStrictEquals(connects(), 0);
  // The default reason of abort() is what reaches the caller too.
  const aborted = AbortSignal.abort();
  const other = await within(
    assertRejects(() => connect("ws://127.0.0.1:1/", { adapter, signal: aborted })),
    "connect",
    BOUND,
  );
  assertStrictEquals(other, aborted.reason);
  assertStrictEquals(connects(), 0);
});

test("connect: aborting mid-handshake rejects with the reason and closes the connection", async () => {
  const controller = new AbortController();
  const reason = new Error("changed my mind");
  const closedByClient = Promise.withResolvers<void>();
  const server = await rawServer((socket) => {
    socket.once("close", () => closedByClient.resolve());
    // The request arrived: the client now waits for the answer that never comes.
    onRequestHead(socket, () => controller.abort(reason));
  });
  try {
    const error = await within(
      assertRejects(() => connect(`${server.url}/`, { signal: controller.signal })),
      "connect",
      BOUND,
    );
    assertStrictEquals(error, reason);
    await within(closedByClient.promise, "the client closing the socket after the abort", BOUND);
  } finally {
    await server.close();
  }
});

test("connect: aborting the signal after the open leaves the connection alone", async () => {
  const app = new Sock();
  app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  let ws: Connection | undefined;
  try {
    const controller = new AbortController();
    ws = await within(
      connect(`ws://127.0.0.1:${port}/echo`, { signal: controller.signal }),
      "connect",
      BOUND,
    );
    controller.abort(new Error("too late"));
    await ws.send("still here");
    assertStrictEquals(await within(ws.receive(), "echo", BOUND), "still here");
    await closesCleanly(ws.close(1000));
  } finally {
    ws?.terminate();
    await app.close();
  }
});

test("connect: a server that closes before the 101 gives ConnectError ECONNRESET", async () => {
  const closings: [string, (socket: net.Socket) => void][] = [
    ["on the request", (socket) => socket.on("data", () => socket.destroy())],
    ["at once", (socket) => socket.destroy()],
    ["after part of the head", (socket) => socket.on("data", () => socket.end("HTTP/1.1 101 Swi"))],
  ];
  for (const [label, onSocket] of closings) {
    const server = await rawServer(onSocket);
    try {
      const error = await within(assertRejects(() => connect(`${server.url}/`), ConnectError), label, BOUND);
      assertStrictEquals(error.code, "ECONNRESET", label);
      assertStrictEquals(error.hostname, "127.0.0.1", label);
      assertStrictEquals(error.port, server.port, label);
      assert(error.message.includes(`127.0.0.1:${server.port}`), `${label}: ${error.message}`);
    } finally {
      await server.close();
    }
  }
});

test("connect: frames in the same write as the 101 are the first messages", async () => {
  const server = await rawServer((socket) =>
    onRequestHead(
      socket,
      async (head) => {
        const key = /\r\nSec-WebSocket-Key: *([^\r]+)\r\n/i.exec(head)?.[1]?.trim();
        if (!key) return socket.destroy();
        const response = new TextEncoder().encode(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Accept: ${await acceptFor(key)}\r\n\r\n`,
        );
        // One write: the head, a text frame and a binary frame.
        socket.write(
          Buffer.concat([response, serverFrame(0x81, "early"), serverFrame(0x82, new Uint8Array([7, 8]))]),
        );
      },
      (chunk) => {
        // The client's close frame (opcode 8): answer with 1000 and end.
        if ((chunk[0] & 0x0f) === 0x08) socket.end(serverFrame(0x88, new Uint8Array([0x03, 0xe8])));
      },
    )
  );
  let ws: Connection | undefined;
  try {
    ws = await within(connect(`${server.url}/`), "connect", BOUND);
    assertStrictEquals(await within(ws.receive(), "first message", BOUND), "early");
    assertEquals(await within(ws.receive(), "second message", BOUND), new Uint8Array([7, 8]));
    await closesCleanly(ws.close());
  } finally {
    ws?.terminate();
    await server.close();
  }
});

test("connect: changing the options object after connect() does not affect that connection", async () => {
  const seen: { protocols: string[]; marker: string | null; extensions: number }[] = [];
  const app = new Sock({
    subprotocols: ["first", "second"],
    deflate: true,
    upgrade: (request) =>
      void seen.push({
        protocols: request.upgrade.subprotocols,
        marker: request.upgrade.headers.get("x-marker"),
        extensions: request.upgrade.extensions.length,
      }),
  });
  app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  let ws: Connection | undefined;
  try {
    const options: ConnectOptions = {
      receiveQueueSize: 4,
      closeTimeout: 2000,
      subprotocols: ["first"],
      headers: { "X-Marker": "original" },
    };
    const opening = connect(`ws://127.0.0.1:${port}/echo`, options);
    // Every one of these would fail the connection (or change its request) if it were read now.
    options.receiveQueueSize = 0;
    options.closeTimeout = -1;
    options.subprotocols = ["second"];
    options.headers = { "X-Marker": "changed" };
    options.deflate = true;
    options.timeout = 1;
    ws = await within(opening, "connect", BOUND);
    assertStrictEquals(ws.subprotocol, "first");
    assertStrictEquals(ws.extensions, "");
    assertEquals(seen, [{ protocols: ["first"], marker: "original", extensions: 0 }]);
    for (let i = 0; i < 6; i++) await ws.send(`m${i}`);
    for (let i = 0; i < 6; i++) assertStrictEquals(await within(ws.receive(), `echo ${i}`, BOUND), `m${i}`);
    const closed = await within(ws.close(), "close", BOUND);
    assertStrictEquals(closed.wasClean, true);
  } finally {
    ws?.terminate();
    await app.close();
  }
});

test("connect: an invalid option rejects with RangeError before connecting", async () => {
  const { adapter, connects } = countingAdapter();
  for (
    const options of [
      { closeTimeout: -1 },
      { receiveQueueSize: 0 },
      { receiveQueueSize: 1.5 },
      { pingInterval: Number.NaN },
    ]
  ) {
    const name = Object.keys(options)[0];
    let opening: Promise<Connection> | undefined;
    try {
      opening = connect("ws://127.0.0.1:1/", { ...options, adapter });
    } catch (error) {
      throw new Error(`connect() threw instead of rejecting for ${name}: ${error}`);
    }
    const error = await within(assertRejects(() => opening!, RangeError), name, BOUND);
    assert(error.message.includes(name), `${name}: ${error.message}`);
  }
  assertStrictEquals(connects(), 0);
});

test("connect: a URL with an unsupported scheme rejects with TypeError", async () => {
  const { adapter, connects } = countingAdapter();
  for (const url of ["ftp://127.0.0.1:1/", "file:///tmp/socket", new URL("mailto:someone@127.0.0.1")]) {
    let opening: Promise<Connection> | undefined;
    try {
      opening = connect(url, { adapter });
    } catch (error) {
      throw new Error(`connect() threw instead of rejecting for ${url}: ${error}`);
    }
    const error = await within(assertRejects(() => opening!, TypeError), String(url), BOUND);
    assert(error.message.includes("scheme"), error.message);
  }
  assertStrictEquals(connects(), 0);
});
