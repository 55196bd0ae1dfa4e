/**
 * What was agreed, and the pings and pongs received: `negotiatedExtensions` and `extensionsHeader`
 * against sock's own server and the npm `ws` package, and the `onPing` / `onPong` options with
 * pings and pongs from both (payloads exact, in order with the messages).
 *
 * @module
 */

import { test } from "node:test";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { connectionSettings } from "../../src/connection/options.ts";
import { parseExtensions } from "../../src/core/extensions.ts";
import { Sock, type SockOptions } from "../../src/server/sock.ts";
import { WebSocket as SockWebSocket } from "../../src/websocket.ts";
import { eventually, within } from "../_helpers.ts";
import { loadWs, type WsDeflateOptions, type WsModule, type WsSocket } from "../_ws.ts";

const HOST = "127.0.0.1";
const WS = loadWs();
const ws = (WS as { ws: WsModule }).ws;
const text = new TextDecoder();

/** The parts of a `ws` socket these tests use beyond `_ws.ts`'s. */
interface WsPeer extends WsSocket {
  ping(data?: string | Uint8Array): void;
  pong(data?: string | Uint8Array): void;
}

/** A Sock server whose `/` route hands each server connection to `onOpen`. */
async function sockServer(options: SockOptions, onOpen: (connection: Connection) => unknown = () => {}) {
  const errors: unknown[] = [];
  const app = new Sock({ ...options, onError: (error) => errors.push(error) });
  const opened: Connection[] = [];
  app.route("/", async (connection) => {
    opened.push(connection);
    await onOpen(connection);
    for await (const _ of connection);
  });
  const { port } = await app.listen({ hostname: HOST, port: 0 });
  return {
    url: `ws://${HOST}:${port}/`,
    opened,
    async close() {
      await app.close(1000);
      assertEquals(errors, []);
    },
  };
}

/** A `ws` server that hands each socket to `onOpen`; `url` and `close()`. */
async function wsServer(perMessageDeflate: boolean | WsDeflateOptions, onOpen: (socket: WsPeer) => void) {
  const server = new ws.WebSocketServer({ port: 0, host: HOST, perMessageDeflate });
  await within(new Promise((resolve) => server.once("listening", resolve)), "listening");
  server.on("connection", onOpen);
  return {
    url: `ws://${HOST}:${server.address().port}/`,
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test("negotiatedExtensions gives what a Sock server and a sock client agreed, the same on both sides", async () => {
  const server = await sockServer({ deflate: { serverNoContextTakeover: true, clientMaxWindowBits: 10 } });
  try {
    const client = await within(connect(server.url, { deflate: true }), "connect");
    const expected = [{
      name: "permessage-deflate",
      params: {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 10,
      },
    }];
    assertEquals(client.negotiatedExtensions, expected);
    await eventually(() => server.opened.length === 1, "server side");
    assertEquals(server.opened[0]!.negotiatedExtensions, expected);
    const header = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
    assertEquals(client.extensionsHeader, header);
    assertEquals(server.opened[0]!.extensionsHeader, header);
    assertEquals(client.extensions, "permessage-deflate"); // Unchanged: the names.
    await client.close(1000);
  } finally {
    await server.close();
  }
});

test("negotiatedExtensions on both sides: the window and context takeover a client asked for, a server's window limit", async () => {
  // The client asks for a window of 9 and no context takeover for its own messages; the server
  // compresses with at most 12 bits: both sides report the same four values.
  const server = await sockServer({ deflate: { serverMaxWindowBits: 12 } });
  try {
    const client = await within(
      connect(server.url, { deflate: { clientMaxWindowBits: 9, clientNoContextTakeover: true } }),
      "connect",
    );
    assertEquals(client.negotiatedExtensions[0]?.params, {
      server_no_context_takeover: false,
      client_no_context_takeover: true,
      server_max_window_bits: 12,
      client_max_window_bits: 9,
    });
    await eventually(() => server.opened.length === 1, "server side");
    assertEquals(server.opened[0]!.negotiatedExtensions[0]?.params, client.negotiatedExtensions[0]?.params);
    await client.close(1000);
  } finally {
    await server.close();
  }
});

test("without deflate nothing is agreed: negotiatedExtensions is empty and extensionsHeader too", async () => {
  const server = await sockServer({ deflate: false });
  try {
    const client = await within(connect(server.url, { deflate: true }), "connect");
    assertEquals(client.negotiatedExtensions, []);
    assertEquals(client.extensionsHeader, "");
    await client.close(1000);
  } finally {
    await server.close();
  }
});

test("negotiatedExtensions against an npm ws server with serverNoContextTakeover and clientMaxWindowBits", async () => {
  let echoed = 0;
  const server = await wsServer(
    { serverNoContextTakeover: true, clientMaxWindowBits: 10, serverMaxWindowBits: 12, threshold: 0 },
    (socket) =>
      socket.on("message", (data: Uint8Array, isBinary: boolean) => {
        echoed++;
        socket.send(data, { binary: isBinary });
      }),
  );
  try {
    const client = await within(connect(server.url, { deflate: { threshold: 0 } }), "connect");
    assertEquals(client.negotiatedExtensions, [{
      name: "permessage-deflate",
      params: {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: 12,
        client_max_window_bits: 10,
      },
    }]);
    // The header as ws sent it, whatever order ws gives its parameters in.
    const [agreed] = parseExtensions(client.extensionsHeader);
    assertEquals(agreed?.name, "permessage-deflate");
    assertEquals(
      new Map(agreed?.params),
      new Map<string, string | true>([
        ["server_no_context_takeover", true],
        ["server_max_window_bits", "12"],
        ["client_max_window_bits", "10"],
      ]),
    );
    // And messages flow under it, both ways compressed.
    const message = "sock ".repeat(10_000);
    await client.send(message);
    assertEquals(await client.receive({ timeout: 10000 }), message);
    assertEquals(echoed, 1);
    await client.close(1000);
  } finally {
    await server.close();
  }
});

test("negotiatedExtensions on a Sock server answering an npm ws client's offer", async () => {
  const server = await sockServer({ deflate: { serverMaxWindowBits: 11 } });
  const socket = new ws.WebSocket(server.url, {
    perMessageDeflate: { clientNoContextTakeover: true, clientMaxWindowBits: 13 },
  });
  try {
    await within(
      new Promise((resolve, reject) => (socket.once("open", resolve), socket.once("error", reject))),
      "open",
    );
    await eventually(() => server.opened.length === 1, "server side");
    const connection = server.opened[0]!;
    assertEquals(connection.negotiatedExtensions[0]?.params, {
      server_no_context_takeover: false,
      client_no_context_takeover: true,
      server_max_window_bits: 11,
      client_max_window_bits: 13,
    });
    assertEquals(
      connection.extensionsHeader,
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13",
    );
  } finally {
    socket.terminate();
    await server.close();
  }
});

test("WebSocket.extensions is the server's Sec-WebSocket-Extensions value, parameters included, as in browsers", async () => {
  const server = await sockServer({ deflate: { serverNoContextTakeover: true, clientMaxWindowBits: 10 } });
  try {
    const socket = new SockWebSocket(server.url);
    assertEquals(socket.extensions, "");
    await within(new Promise((resolve) => socket.addEventListener("open", resolve)), "open");
    assertEquals(
      socket.extensions,
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
    );
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close(1000);
    await within(closed, "close");
  } finally {
    await server.close();
  }
});

test("the WebSocket class passes onPing to its connection: pings are seen without a non-standard event", async () => {
  const server = await sockServer({}, (connection) => connection.ping("hi"));
  const seen: string[] = [];
  try {
    const socket = new SockWebSocket(server.url, undefined, {
      onPing: (data) => void seen.push(text.decode(data)),
    });
    await eventually(() => seen.length === 1, "ping");
    assertEquals(seen, ["hi"]);
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close(1000);
    await within(closed, "close");
  } finally {
    await server.close();
  }
});

test("onPing sees a Sock server's pings with their payloads, and the pong still answers", async () => {
  const server = await sockServer({}, async (connection) => {
    await connection.send("before");
    await connection.ping("first");
    await connection.send("between");
    await connection.ping("");
    await connection.send("after");
  });
  const log: string[] = [];
  let seenBy: Connection | undefined;
  try {
    const client = await within(
      connect(server.url, {
        onPing: (data, connection) => {
          log.push(`ping ${JSON.stringify(text.decode(data))}`);
          seenBy = connection;
        },
      }),
      "connect",
    );
    const done = client.forEach((message) => void log.push(`message ${message}`));
    await eventually(() => log.length === 5, "everything");
    assertEquals(log, ["message before", 'ping "first"', "message between", 'ping ""', "message after"]);
    assert(seenBy === client);
    await client.close(1000);
    await done;
  } finally {
    await server.close();
  }
});

test("with receive(), a ping read behind a message not yet taken is reported when the application asks for the next one", async () => {
  const pinged = Promise.withResolvers<void>();
  const server = await sockServer({}, async (connection) => {
    await connection.send("a");
    await connection.ping("p"); // Settles once the client read the ping (its pong came back).
    pinged.resolve();
    await connection.send("b");
  });
  const log: string[] = [];
  try {
    const client = await within(
      connect(server.url, { onPing: (data) => void log.push(`ping ${text.decode(data)}`) }),
      "connect",
    );
    await within(pinged.promise, "pinged");
    assertEquals(log, []); // "a" was read before it and is not taken yet.
    assertEquals(await client.receive({ timeout: 5000 }), "a");
    assertEquals(log, []); // The application is still busy with "a".
    const next = client.receive({ timeout: 5000 });
    assertEquals(log, ["ping p"]); // Asking for the next message: the ping first.
    assertEquals(await next, "b");
    await client.close(1000);
  } finally {
    await server.close();
  }
});

test("onPing and onPong on a Sock server: a client's ping, an npm ws client's unsolicited pong, each with its connection", async () => {
  const seen: string[] = [];
  const connections = new Set<Connection>();
  const server = await sockServer({
    onPing: (data, connection) => (seen.push(`ping ${text.decode(data)}`), connections.add(connection)),
    onPong: (data, connection) => (seen.push(`pong ${text.decode(data)}`), connections.add(connection)),
  });
  const peer = new ws.WebSocket(server.url) as WsPeer;
  try {
    await within(new Promise((resolve) => peer.once("open", resolve)), "open");
    peer.pong("heartbeat");
    peer.ping(new Uint8Array([0, 0xff, 0x80]));
    await eventually(() => seen.length === 2, "pong and ping");
    assertEquals(seen, ["pong heartbeat", `ping ${text.decode(new Uint8Array([0, 0xff, 0x80]))}`]);
    assertEquals([...connections], server.opened);
  } finally {
    peer.terminate();
    await server.close();
  }
});

test("onPong sees unsolicited pongs and the answers to ping(), with exact payloads, in order with messages", async () => {
  const bytes = Uint8Array.from({ length: 125 }, (_, i) => (i * 37) & 0xff);
  const server = await wsServer(false, (socket) => {
    socket.send("one");
    socket.pong(bytes); // Unsolicited.
    socket.send("two");
    socket.ping("from ws");
    socket.send("three");
    socket.pong(); // Empty.
    socket.send("four");
  });
  const log: string[] = [];
  const payloads: Uint8Array[] = [];
  try {
    const client = await within(
      connect(server.url, {
        pingInterval: 0,
        onPong: (data) => (log.push(`pong ${data.length}`), payloads.push(data)),
        onPing: (data) => void log.push(`ping ${text.decode(data)}`),
      }),
      "connect",
    );
    const done = client.forEach((message) => void log.push(`message ${message}`));
    await eventually(() => log.length === 7, "everything");
    assertEquals(log, [
      "message one",
      "pong 125",
      "message two",
      "ping from ws",
      "message three",
      "pong 0",
      "message four",
    ]);
    assertEquals(payloads[0], bytes);
    // The answer to our own ping is seen too, and still settles ping().
    const rtt = await within(client.ping("ours"), "ping");
    assert(rtt >= 0);
    assertEquals(log.at(-1), "pong 4");
    assertEquals(text.decode(payloads.at(-1)), "ours");
    await client.close(1000);
    await done;
  } finally {
    await server.close();
  }
});

test("an onPing callback that throws closes the connection with 1011", async () => {
  const server = await sockServer({}, (connection) => connection.ping("boom").catch(() => {}));
  try {
    const client = await within(
      connect(server.url, {
        onPing: () => {
          throw new Error("boom");
        },
      }),
      "connect",
    );
    const closed = await within(client.closed, "closed");
    assertEquals(closed.sent?.code, 1011);
    await eventually(() => server.opened[0]?.closeResult !== undefined, "server closed");
    assertEquals(server.opened[0]!.closeResult?.received?.code, 1011);
  } finally {
    await server.close();
  }
});

test("an async onPing callback that rejects closes the connection with 1011, nothing unhandled", async () => {
  const server = await sockServer({}, (connection) => connection.ping("boom").catch(() => {}));
  try {
    const client = await within(
      connect(server.url, { onPing: () => Promise.reject(new Error("async boom")) }),
      "connect",
    );
    const closed = await within(client.closed, "closed");
    assertEquals(closed.sent?.code, 1011);
  } finally {
    await server.close();
  }
});

test("a ping read while receive() waits comes after the message before it, not ahead of it", async () => {
  const server = await sockServer({}, async (connection) => {
    await connection.receive({ timeout: 10000 }); // "go": the client is waiting in receive() by now.
    await connection.send("m1");
    await connection.ping("p1");
    await connection.send("m2");
  });
  try {
    const seen: string[] = [];
    const client = await within(
      connect(server.url, { onPing: (data) => void seen.push(text.decode(data)) }),
      "connect",
    );
    const first = client.receive({ timeout: 10000 });
    await client.send("go");
    seen.push(String(await first));
    seen.push(String(await client.receive({ timeout: 10000 })));
    assertEquals(seen, ["m1", "p1", "m2"]);
    await client.close();
  } finally {
    await server.close();
  }
});

test("pings between messages never leave reading paused (the low-water mark is crossed, not landed on)", async () => {
  const count = 40;
  const server = await sockServer({}, async (connection) => {
    for (let i = 0; i < count; i++) {
      await connection.send(`m${i}`);
      await connection.ping(`p${i}`).catch(() => {});
    }
  });
  try {
    let pings = 0;
    // A small queue: 8 entries, resumed at 2; pings and messages alternate, so lengths go 7, 5, 3, 1.
    const client = await within(
      connect(server.url, { receiveQueueSize: 8, onPing: () => void pings++ }),
      "connect",
    );
    // Let the queue fill and reading pause before anything is taken.
    await eventually(() => pings > 0 || client.bufferedAmount === 0, "the first reads");
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < count; i++) assertEquals(await client.receive({ timeout: 10000 }), `m${i}`);
    // The last ping comes after the last message: it is reported once the application asks again.
    const next = client.receive();
    await eventually(() => pings === count, "every ping reported");
    await client.close();
    assertEquals(await next, undefined);
  } finally {
    await server.close();
  }
});

test("a busy forEach() with only pings queued resumes reading once it takes them", async () => {
  const server = await sockServer({}, async (connection) => {
    await connection.send("slow");
    for (let i = 0; i < 20; i++) connection.ping(`p${i}`).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 300));
    await connection.send("after the pings");
  });
  try {
    let pings = 0;
    const client = await within(
      connect(server.url, { receiveQueueSize: 8, onPing: () => void pings++ }),
      "connect",
    );
    const got: string[] = [];
    await within(
      client.forEach(async (message) => {
        got.push(String(message));
        if (message === "slow") await new Promise((resolve) => setTimeout(resolve, 150));
        if (message === "after the pings") await client.close();
      }),
      "forEach",
    );
    assertEquals(got, ["slow", "after the pings"]);
    assertEquals(pings, 20);
  } finally {
    await server.close();
  }
});

test("onPing and onPong must be functions", () => {
  assertThrows(() => connectionSettings({ onPing: 1 as never }), TypeError, "onPing");
  assertThrows(() => connectionSettings({ onPong: "x" as never }), TypeError, "onPong");
  const onPing = () => {};
  assertEquals(connectionSettings({ onPing }).onPing, onPing);
  assert(!("onPong" in connectionSettings({ onPing })));
});
