/**
 * permessage-deflate against implementations nobody here wrote: the npm `ws`
 * client and server (on node:zlib), Bun's built-in server and client under
 * Bun, and Deno's built-in server (which declines the offer) under Deno.
 * Large compressible messages go both ways, and the bytes on the wire show
 * that they were compressed.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type ConnectOptions } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import type { Message } from "../../src/connection/inbox.ts";
import { Sock } from "../../src/server/sock.ts";
import type { PerMessageDeflateOptions } from "../../src/core/deflate/permessage_deflate.ts";
import { within } from "../_helpers.ts";
import { spawnScript } from "../_hardening.ts";
import { loadWs, type WsDeflateOptions, type WsModule, type WsSocket } from "../_ws.ts";

const HOST = "127.0.0.1";
const WS = loadWs();
const ws = (WS as { ws: WsModule }).ws;

/** Chatty JSON: several thousand records with repeated keys. */
function json(size: number, seed: number): string {
  let text = "";
  for (let id = 0; text.length < size; id++) {
    text += JSON.stringify({ id, seed, user: `user${(id * 7 + seed) % 40}`, online: id % 3 === 0 }) + "\n";
  }
  return text.slice(0, size);
}

/** Messages of every shape: large and small text, binary, one under the threshold, one empty. */
const MESSAGES: Message[] = [
  json(200_000, 1),
  json(200_000, 2),
  new TextEncoder().encode(json(100_000, 3)),
  "tiny",
  "",
  json(5_000, 4),
];
const PAYLOAD_BYTES = MESSAGES.reduce((n, m) => n + (typeof m === "string" ? m.length : m.length), 0);

function same(actual: unknown, expected: Message, label: string): void {
  if (typeof expected === "string") assert.equal(actual, expected, label);
  else assert.deepEqual(new Uint8Array(actual as Uint8Array), expected, label);
}

/** A Sock echo server with permessage-deflate; `last` is the server side of the latest connection. */
async function echoServer(deflate: boolean | PerMessageDeflateOptions = true) {
  const errors: unknown[] = [];
  const app = new Sock({ deflate, onError: (error) => errors.push(error) });
  let last: Connection | undefined;
  app.route("/echo", async (connection) => {
    last = connection;
    for await (const message of connection) await connection.send(message);
  });
  const { port } = await app.listen({ hostname: HOST, port: 0 });
  return {
    url: `ws://${HOST}:${port}/echo`,
    last: () => last,
    async close() {
      await app.close(1000);
      assert.deepEqual(errors, []);
    },
  };
}

/** Sends every message through a sock client and checks the echoes. */
async function echoThrough(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const connection = await within(connect(url, { deflate: true, ...options }), "connect");
  for (const [i, message] of MESSAGES.entries()) {
    await connection.send(message);
    same(await within(connection.receive(), `echo ${i}`), message, `message ${i}`);
  }
  return connection;
}

if ("ws" in WS) {
  const wsClientCases: [string, WsDeflateOptions][] = [
    ["defaults", { threshold: 0 }],
    ["no context takeover, small windows", {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 9,
    }],
  ];
  for (const [label, options] of wsClientCases) {
    test(`Sock with deflate ⇄ npm ws client with perMessageDeflate (${label}): compressed both ways`, async () => {
      const server = await echoServer();
      const socket: WsSocket = new ws.WebSocket(server.url, { perMessageDeflate: options });
      try {
        const inbox: unknown[] = [];
        let wake = () => {};
        socket.on("message", (data: Uint8Array, isBinary: boolean) => {
          inbox.push(isBinary ? data : new TextDecoder().decode(data));
          wake();
        });
        await within(
          new Promise((resolve, reject) => (socket.once("open", resolve), socket.once("error", reject))),
          "open",
        );
        assert.match(socket.extensions, /^permessage-deflate/);
        for (const [i, message] of MESSAGES.entries()) {
          socket.send(message, { binary: typeof message !== "string" });
          while (inbox.length <= i) await within(new Promise<void>((resolve) => wake = resolve), `echo ${i}`);
          same(inbox[i], message, `message ${i}`);
        }
        assert.equal(server.last()?.extensions, "permessage-deflate");
        const read = socket._socket.bytesRead;
        assert.ok(read < PAYLOAD_BYTES / 4, `the client read ${read} bytes for ${PAYLOAD_BYTES} of messages`);
      } finally {
        socket.terminate();
        await server.close();
      }
    });
  }

  const wsServerCases: [string, WsDeflateOptions, PerMessageDeflateOptions][] = [
    ["defaults", { threshold: 0 }, {}],
    ["window bits 8 and 9, no context takeover", { threshold: 0, serverNoContextTakeover: true }, {
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 8,
      clientNoContextTakeover: true,
    }],
  ];
  for (const [label, serverOptions, clientOptions] of wsServerCases) {
    test(`sock client with deflate ⇄ npm ws server with perMessageDeflate (${label})`, async () => {
      const server = new ws.WebSocketServer({ port: 0, host: HOST, perMessageDeflate: serverOptions });
      await within(new Promise((resolve) => server.once("listening", resolve)), "listening");
      let received = 0;
      server.on("connection", (socket: WsSocket) => {
        socket.on("message", (data: Uint8Array, isBinary: boolean) => {
          received += data.length;
          socket.send(data, { binary: isBinary });
        });
      });
      let connection: Connection | undefined;
      try {
        connection = await echoThrough(`ws://${HOST}:${server.address().port}/`, { deflate: clientOptions });
        assert.equal(connection.extensions, "permessage-deflate");
        assert.equal(received, PAYLOAD_BYTES);
        await connection.close(1000);
      } finally {
        connection?.terminate();
        for (const client of server.clients) client.terminate();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }
}

test("sock client with deflate ⇄ Sock with deflate: every message round-trips compressed", async () => {
  const server = await echoServer({ threshold: 0 });
  try {
    const connection = await echoThrough(server.url);
    assert.equal(connection.extensions, "permessage-deflate");
    await connection.close(1000);
  } finally {
    await server.close();
  }
});

test("Sock without deflate declines the offer and messages flow uncompressed", async () => {
  const server = await echoServer(false);
  try {
    const connection = await echoThrough(server.url);
    assert.equal(connection.extensions, "");
    await connection.close(1000);
  } finally {
    await server.close();
  }
});

// The parts of Bun used here, declared locally instead of depending on bun-types.
interface BunRuntime {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: { upgrade(request: Request): boolean }): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      message(
        socket: { send(data: string | Uint8Array, compress?: boolean): number },
        data: string | Uint8Array,
      ): void;
    };
  }): { port: number; stop(force?: boolean): unknown };
}

if ("Bun" in globalThis) {
  const bun = (globalThis as unknown as { Bun: BunRuntime }).Bun;

  test("sock client with deflate ⇄ Bun.serve with perMessageDeflate", async () => {
    const server = bun.serve({
      hostname: HOST,
      port: 0,
      fetch: (request, server) => server.upgrade(request) ? undefined : new Response("no", { status: 426 }),
      websocket: { perMessageDeflate: true, message: (socket, data) => void socket.send(data, true) },
    });
    try {
      const connection = await echoThrough(`ws://${HOST}:${server.port}/`);
      assert.equal(connection.extensions, "permessage-deflate");
      await connection.close(1000);
    } finally {
      server.stop(true);
    }
  });

  test("Bun's WebSocket client ⇄ Sock with deflate", async () => {
    const server = await echoServer();
    const socket = new WebSocket(server.url);
    socket.binaryType = "arraybuffer";
    try {
      const inbox: unknown[] = [];
      let wake = () => {};
      socket.onmessage = (event) => {
        inbox.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
        wake();
      };
      await within(
        new Promise((resolve, reject) => (socket.onopen = resolve, socket.onerror = reject)),
        "open",
      );
      for (const [i, message] of MESSAGES.entries()) {
        socket.send(message);
        while (inbox.length <= i) await within(new Promise<void>((resolve) => wake = resolve), `echo ${i}`);
        same(inbox[i], message, `message ${i}`);
      }
      assert.match(socket.extensions, /^permessage-deflate/);
      assert.equal(server.last()?.extensions, "permessage-deflate");
    } finally {
      socket.close();
      await server.close();
    }
  });
} else {
  test("sock client with deflate ⇄ Deno.serve, which declines permessage-deflate", async () => {
    const server = Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(event.data);
      return response;
    });
    try {
      const connection = await echoThrough(`ws://${HOST}:${server.addr.port}/`);
      assert.equal(connection.extensions, "");
      await connection.close(1000);
    } finally {
      await server.shutdown();
    }
  });
}

for (const deflate of [true, false]) {
  const args = deflate ? ["--port", "0", "--deflate"] : ["--port", "0"];
  test(`examples/echo_server.ts ${args.join(" ")} ${deflate ? "accepts" : "declines"} permessage-deflate`, async () => {
    const child = spawnScript(new URL("../../examples/echo_server.ts", import.meta.url), args);
    try {
      const [, url] = await child.line(/^listening on (ws:\/\/\S+)$/, 10_000);
      const connection = await echoThrough(`${url}/`);
      assert.equal(connection.extensions, deflate ? "permessage-deflate" : "");
      await connection.close(1000);
    } finally {
      child.kill();
      await child.exited;
    }
  });
}
