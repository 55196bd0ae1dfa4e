import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, HandshakeRejected } from "../src/client.ts";
import { ConnectionClosed } from "../src/connection.ts";
import { Sock } from "../src/server.ts";

/** An echo server on a free loopback port, stopped by `stop()`. */
async function echoServer() {
  const errors: unknown[] = [];
  const app = new Sock({ maxMessageSize: 32 << 20, onError: (e) => errors.push(e) });
  app.route("/echo/:name", async (ws, request) => {
    if (request.params.name === "fail") throw new Error("secret detail");
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { url: `ws://127.0.0.1:${port}`, errors, stop: () => app.close() };
}

test("Sock echoes binary messages of every length class to sock's client", async () => {
  const server = await echoServer();
  try {
    const ws = await connect(`${server.url}/echo/a`);
    for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
      const payload = new Uint8Array(size).map((_, i) => i * 31);
      await ws.send(payload);
      assert.deepEqual(await ws.receive(), payload, `size ${size}`);
    }
    await ws.send("héllo ✓ 🌍");
    assert.equal(await ws.receive(), "héllo ✓ 🌍");
    const closed = await ws.close(1000, "bye");
    assert.equal(closed.code, 1000);
    assert.equal(closed.wasClean, true);
    assert.deepEqual(closed.sent, { code: 1000, reason: "bye" });
  } finally {
    server.stop();
  }
});

test("Sock answers the runtime's built-in WebSocket client", async () => {
  const server = await echoServer();
  try {
    const native = new WebSocket(`${server.url}/echo/b`);
    native.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      native.onopen = resolve;
      native.onerror = reject;
    });
    const messages: unknown[] = [];
    const two = new Promise((resolve) =>
      native.onmessage = (event) => messages.push(event.data) === 2 && resolve(undefined)
    );
    native.send("from the built-in client");
    native.send(new Uint8Array([1, 2, 3]));
    await two;
    assert.equal(messages[0], "from the built-in client");
    assert.deepEqual(new Uint8Array(messages[1] as ArrayBuffer), new Uint8Array([1, 2, 3]));
    const closed = new Promise<CloseEvent>((resolve) => native.onclose = resolve);
    native.close(4000, "done");
    const event = await closed;
    assert.equal(event.code, 4000);
    assert.equal(event.wasClean, true);
  } finally {
    server.stop();
  }
});

test("Sock answers an unknown path with 404 and a failing handler with 1011", async () => {
  const server = await echoServer();
  try {
    const rejected = await connect(`${server.url}/nowhere`).then(() => undefined, (error) => error);
    assert.ok(rejected instanceof HandshakeRejected);
    assert.equal(rejected.response.status, 404);

    const ws = await connect(`${server.url}/echo/fail`);
    const error = await ws.receive().then(() => undefined, (e) => e);
    assert.ok(error instanceof ConnectionClosed);
    assert.equal(error.code, 1011);
    assert.equal(error.reason, "internal error");
    assert.equal(server.errors.length, 1);
  } finally {
    server.stop();
  }
});

test("Connection.ping resolves with the round-trip time", async () => {
  const server = await echoServer();
  try {
    const ws = await connect(`${server.url}/echo/c`);
    const rtt = await ws.ping();
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    await ws.close();
  } finally {
    server.stop();
  }
});

test("Sock routes match :name segments and a trailing * in order", async () => {
  const app = new Sock();
  const seen: Record<string, string>[] = [];
  app.route("/rooms/:room", (_ws, request) => void seen.push(request.params));
  app.route("/*", (_ws, request) => void seen.push(request.params));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    for (const path of ["/rooms/lobby%20one", "/any/deeper/path", "/"]) {
      const ws = await connect(`ws://127.0.0.1:${port}${path}`);
      await ws.closed;
    }
    assert.deepEqual(seen, [{ room: "lobby one" }, { "*": "any/deeper/path" }, { "*": "" }]);
  } finally {
    app.close();
  }
});
