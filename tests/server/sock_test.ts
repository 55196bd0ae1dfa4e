import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, HandshakeRejected } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { Sock } from "../../src/server/sock.ts";
import { detectAdapter } from "../../src/adapters/mod.ts";
import type { Transport } from "../../src/transport.ts";
import { RawPeer } from "../_hardening.ts";
import { upgradeRequest } from "../_helpers.ts";

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

test("A forEach route echoes, and a forEach callback that throws reaches onError and the client as 1011", async () => {
  const errors: unknown[] = [];
  const app = new Sock({ onError: (e) => errors.push(e) });
  app.route("/", (ws) =>
    ws.forEach((message) => {
      if (message === "fail") throw new Error("callback failed");
      return ws.send(message);
    }));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/`);
    for (const message of ["one", new Uint8Array([1, 2, 3]), "two"]) await ws.send(message);
    assert.equal(await ws.receive({ timeout: 5000 }), "one");
    assert.deepEqual(await ws.receive({ timeout: 5000 }), new Uint8Array([1, 2, 3]));
    assert.equal(await ws.receive({ timeout: 5000 }), "two");
    await ws.send("fail");
    const error = await ws.receive({ timeout: 5000 }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConnectionClosed);
    assert.equal(error.code, 1011);
    assert.deepEqual(errors.map((e) => (e as Error).message), ["callback failed"]);
  } finally {
    await app.close();
  }
});

test("a connection still knows its peer's address after its socket closed", async () => {
  const app = new Sock();
  const opened = Promise.withResolvers<Connection>();
  app.route("/", (ws) => {
    opened.resolve(ws);
    return ws.closed.then(() => {});
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const ws = await connect(`ws://127.0.0.1:${port}/`);
  const server = await opened.promise;
  await ws.close();
  await server.closed;
  await app.close();
  await new Promise((resolve) => setTimeout(resolve, 50)); // The socket's own close has run by now.
  const address = server.remoteAddress;
  assert.equal(address?.hostname, "127.0.0.1");
  assert.ok(Number.isInteger(address?.port) && address!.port > 0, `port ${address?.port}`);
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

test("Sock refuses route parameters that decode to /, \\, control characters, . or .. with 400", async () => {
  const seen: Record<string, string>[] = [];
  const app = new Sock({ upgrade: (request) => void seen.push(request.params) });
  app.route("/rooms/:room", () => {});
  app.route("/files/*", () => {});
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  /** The status Sock answers a raw upgrade request for `target` with. */
  const statusFor = async (target: string) => {
    const peer = await RawPeer.open(port);
    try {
      await peer.write(upgradeRequest({ target }));
      await peer.until((text) => text.includes("\r\n\r\n"), 5000);
      return Number(/^HTTP\/1\.1 (\d{3})/.exec(peer.text)?.[1] ?? 0);
    } finally {
      peer.destroy();
    }
  };
  try {
    const refused = [
      "/rooms/a%2Fb",
      "/rooms/a%5Cb",
      "/rooms/a%5cb",
      "/rooms/%2e%2e",
      "/rooms/..",
      "/rooms/.",
      "/rooms/%2E",
      "/rooms/a%00b",
      "/rooms/a%0D%0Ab",
      "/rooms/a%1Fb",
      "/rooms/a%7Fb",
      "/files/a/%2e%2e/b",
      "/files/../secret",
      "/files/a/..",
      "/files/./a",
      "/files/%2e%2e%2fsecret",
      "/files/a%5C..%5Cb",
      "/files/a%0Ab",
      "/files/a%00",
    ];
    for (const target of refused) assert.equal(await statusFor(target), 400, target);
    assert.deepEqual(seen, [], "no upgrade hook ran for a refused parameter");
    const allowed = ["/rooms/lobby%20one", "/rooms/...", "/rooms/.hidden", "/files/a/b%2Fc/..d", "/files/"];
    for (const target of allowed) assert.equal(await statusFor(target), 101, target);
    assert.deepEqual(seen, [
      { room: "lobby one" },
      { room: "..." },
      { room: ".hidden" },
      { "*": "a/b/c/..d" },
      { "*": "" },
    ]);
  } finally {
    await app.close();
  }
});

test("Sock serves plain HTTP through fetch, and answers it with 426 without one", async () => {
  const app = new Sock({
    fetch: (request) =>
      new Response(`<p>${new URL(request.url).pathname}</p>`, { headers: { "Content-Type": "text/html" } }),
  });
  const bare = new Sock();
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const { port: barePort } = await bare.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const page = await fetch(`http://127.0.0.1:${port}/index.html`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html");
    assert.equal(await page.text(), "<p>/index.html</p>");
    const refused = await fetch(`http://127.0.0.1:${barePort}/`);
    assert.equal(refused.status, 426);
    assert.equal(refused.headers.get("upgrade"), "websocket");
    await refused.body?.cancel();
  } finally {
    await app.close();
    await bare.close();
  }
});

test("Sock answers HEAD through fetch with the head a GET gets and no body", async () => {
  const app = new Sock({ fetch: () => new Response("<p>page</p>") });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const answers: string[] = [];
    for (const method of ["GET", "HEAD"]) {
      const peer = await RawPeer.open(port);
      await peer.write(`${method} /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n`);
      assert.ok(await peer.endedWithin(10000), "the server closes after answering");
      answers.push(peer.text.replace(/\r\nDate: [^\r]*/, ""));
      peer.destroy();
    }
    const [get, head] = answers;
    assert.match(get, /^HTTP\/1\.1 200 OK\r\n[^]*Content-Length: 11\r\n[^]*\r\n\r\n<p>page<\/p>$/);
    assert.equal(head, get.slice(0, get.indexOf("\r\n\r\n") + 4), "the same head, and nothing after it");
  } finally {
    await app.close();
  }
});

test("Sock refuses an Origin outside the allow-list with 403 before any handler runs", async () => {
  let ran = false;
  const app = new Sock({ origins: ["https://good.example"] });
  app.route("/*", () => void (ran = true));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const bad = await connect(`ws://127.0.0.1:${port}/`, { headers: { Origin: "https://evil.example" } })
      .then(() => undefined, (e) => e);
    assert.ok(bad instanceof HandshakeRejected);
    assert.equal(bad.response.status, 403);
    const good = await connect(`ws://127.0.0.1:${port}/`, { headers: { Origin: "https://good.example" } });
    await good.closed;
    assert.equal(ran, true);
  } finally {
    await app.close();
  }
});

test("Sock's origins list admits requests without an Origin when it holds null, and still checks the others", async () => {
  const strict = new Sock({ origins: ["https://good.example"] });
  const lenient = new Sock({ origins: ["https://good.example", null] });
  const ports: number[] = [];
  for (const app of [strict, lenient]) {
    app.route("/", (ws) => ws.send("in"));
    ports.push((await app.listen({ hostname: "127.0.0.1", port: 0 })).port);
  }
  const attempt = (port: number, origin?: string) =>
    connect(`ws://127.0.0.1:${port}/`, origin ? { headers: { Origin: origin } } : {}).then(
      async (ws) => {
        await ws.close();
        return 101;
      },
      (error) => (error instanceof HandshakeRejected ? error.response.status : error),
    );
  try {
    assert.equal(await attempt(ports[0]), 403, "no Origin, without null in the list");
    assert.equal(await attempt(ports[1]), 101, "no Origin, with null in the list");
    assert.equal(await attempt(ports[1], "https://evil.example"), 403, "a wrong Origin is still refused");
    assert.equal(await attempt(ports[1], "https://good.example"), 101);
    assert.equal(await attempt(ports[1], "null"), 403, "the string null is an Origin like any other");
  } finally {
    await strict.close();
    await lenient.close();
  }
});

test("Sock's upgrade hook picks the subprotocol, adds headers, attaches data, or rejects", async () => {
  const app = new Sock({
    subprotocols: ["v2", "v1"],
    upgrade: (request) =>
      request.query === "deny"
        ? { reject: { status: 401, headers: { "WWW-Authenticate": "Bearer" }, body: "who are you?" } }
        : request.query === "none"
        ? { subprotocol: null }
        : { headers: { "X-Room": "lobby" }, data: { user: "ada" } },
  });
  app.route(
    "/*",
    async (ws) => await ws.send(JSON.stringify({ subprotocol: ws.subprotocol, data: ws.data })),
  );
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const denied = await connect(`ws://127.0.0.1:${port}/?deny`).then(() => undefined, (e) => e);
    assert.ok(denied instanceof HandshakeRejected);
    assert.equal(denied.response.status, 401);
    assert.equal(denied.response.headers.get("www-authenticate"), "Bearer");
    assert.equal(new TextDecoder().decode(denied.body), "who are you?");

    const ws = await connect(`ws://127.0.0.1:${port}/`, { subprotocols: ["v1", "v2"] });
    assert.equal(ws.subprotocol, "v2", "the server's preference wins among the offered ones");
    assert.deepEqual(JSON.parse(await ws.receive() as string), { subprotocol: "v2", data: { user: "ada" } });

    const none = await connect(`ws://127.0.0.1:${port}/?none`, { subprotocols: ["v1"] });
    assert.equal(none.subprotocol, "");
    await none.closed;
  } finally {
    await app.close();
  }
});

test("Sock publishes to the connections subscribed to a topic", async () => {
  const app = new Sock();
  let joined = 0;
  const allJoined = Promise.withResolvers<void>();
  app.route("/rooms/:room", async (ws, request) => {
    ws.subscribe(request.params.room);
    if (++joined === 3) allJoined.resolve();
    for await (const _ of ws) { /* keep the connection open */ }
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const a = await connect(`ws://127.0.0.1:${port}/rooms/red`);
    const b = await connect(`ws://127.0.0.1:${port}/rooms/red`);
    const c = await connect(`ws://127.0.0.1:${port}/rooms/blue`);
    await allJoined.promise;
    assert.equal(app.connections.size, 3);
    assert.equal(app.publish("red", "hello red"), 2);
    assert.equal(await a.receive({ timeout: 2000 }), "hello red");
    assert.equal(await b.receive({ timeout: 2000 }), "hello red");
    const nothing = await c.receive({ timeout: 100 }).then(() => "got one", (e) => e.name);
    assert.equal(nothing, "TimeoutError");
    await Promise.all([a.close(), b.close(), c.close()]);
  } finally {
    await app.close();
  }
});

test("Sock.close() closes every connection with 1001 and stops listening", async () => {
  const app = new Sock();
  app.route("/*", async (ws) => {
    for await (const _ of ws) { /* wait for the close */ }
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const ws = await connect(`ws://127.0.0.1:${port}/`);
  await app.close(2000);
  const closed = await ws.closed;
  assert.equal(closed.code, 1001);
  assert.equal(closed.wasClean, true);
  const refused = await connect(`ws://127.0.0.1:${port}/`).then(() => "connected", () => "refused");
  assert.equal(refused, "refused");
});

test("Keepalive drops a peer that stops answering pings, reported as 1006", async () => {
  const outcome = Promise.withResolvers<unknown>();
  const app = new Sock({ pingInterval: 50, pongTimeout: 100 });
  app.route("/*", async (ws) => {
    outcome.resolve(await ws.receive().then(() => "message", (e) => e));
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // A peer that completes the handshake by hand, then goes silent: it never reads or answers.
    const silent = await detectAdapter().connect({ hostname: "127.0.0.1", port });
    await silent.write([new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )]);
    const error = await outcome.promise;
    assert.ok(error instanceof ConnectionClosed);
    assert.equal(error.code, 1006);
    silent.close();
  } finally {
    await app.close();
  }
});

async function* textParts() {
  for (const part of ["héllo", " ", "wörld"]) yield part;
}

test("Connection.sendStream sends one fragmented message from async parts", async () => {
  const server = await echoServer();
  try {
    const ws = await connect(`${server.url}/echo/s`);
    await ws.sendStream(textParts());
    assert.equal(await ws.receive({ timeout: 5000 }), "héllo wörld");
    await ws.sendStream([new Uint8Array([1, 2]), new Uint8Array([3])]);
    assert.deepEqual(await ws.receive({ timeout: 5000 }), new Uint8Array([1, 2, 3]));
    await assert.rejects(ws.sendStream(["text", new Uint8Array([1])]), TypeError);
    await ws.close();
  } finally {
    server.stop();
  }
});

test("connect() gives up after its timeout and on abort", async () => {
  // A server that accepts TCP but never answers the handshake.
  const accepted: Transport[] = [];
  const mute = await detectAdapter().listen({ hostname: "127.0.0.1", port: 0 }, (t) => accepted.push(t));
  try {
    const url = `ws://127.0.0.1:${mute.address.port}/`;
    const timedOut = await connect(url, { timeout: 100 }).then(() => undefined, (e) => e);
    assert.equal(timedOut?.name, "TimeoutError");
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user gave up")), 50);
    const aborted = await connect(url, { signal: controller.signal }).then(() => undefined, (e) => e);
    assert.equal(aborted?.message, "user gave up");
  } finally {
    mute.close();
    for (const transport of accepted) transport.close();
  }
});

test("A server connection exposes its request, extensions and final close information", async () => {
  const app = new Sock();
  app.route("/info", async (ws) => {
    await ws.send(JSON.stringify({ target: ws.request?.target, extensions: ws.extensions }));
    await ws.closed;
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/info?x=1`);
    assert.deepEqual(JSON.parse(await ws.receive({ timeout: 5000 }) as string), {
      target: "/info?x=1",
      extensions: "",
    });
    assert.equal(ws.request, undefined, "a client connection has no request");
    const before = ws.closeResult;
    assert.equal(before, undefined);
    const closed = await ws.close(4000, "bye");
    assert.equal(ws.closeResult, closed);
    assert.deepEqual(closed.sent, { code: 4000, reason: "bye" });
  } finally {
    await app.close();
  }
});

test("idleTimeout closes a connection that stays silent with 1001", async () => {
  const app = new Sock({ idleTimeout: 100 });
  app.route("/*", async (ws) => {
    for await (const _ of ws) { /* nothing arrives */ }
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/`);
    const closed = await ws.closed;
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, "idle timeout");
  } finally {
    await app.close();
  }
});

test("With streamMessages a handler receives a large message in pieces, or joined by receive()", async () => {
  const app = new Sock({ streamMessages: true });
  app.route("/parts", async (ws) => {
    let pieces = 0, bytes = 0;
    for (let part = await ws.receivePart(); part; part = await ws.receivePart()) {
      pieces++;
      bytes += part.data.length;
      if (part.final) break;
    }
    await ws.send(JSON.stringify({ pieces, bytes }));
    await ws.send((await ws.receive()) as string);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/parts`);
    await ws.send(new Uint8Array(4 << 20));
    const report = JSON.parse(await ws.receive({ timeout: 10000 }) as string);
    assert.equal(report.bytes, 4 << 20);
    assert.ok(report.pieces > 1, `a 4 MiB message arrived in ${report.pieces} piece(s)`);
    await ws.sendStream(["joined ", "by ", "receive()"]);
    assert.equal(await ws.receive({ timeout: 10000 }), "joined by receive()");
    await ws.close();
  } finally {
    await app.close();
  }
});

test("A handler ended by its peer vanishing is not reported as a server error", async () => {
  const errors: unknown[] = [];
  const ended = Promise.withResolvers<void>();
  const app = new Sock({ onError: (e) => errors.push(e) });
  app.route("/*", async (ws) => {
    try {
      for await (const message of ws) await ws.send(message);
    } finally {
      ended.resolve();
    }
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/`);
    ws.terminate();
    await ended.promise;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(errors, []);
  } finally {
    await app.close();
  }
});

test("Keepalive keeps a peer that answers its pings", async () => {
  // Pings go out every 50 ms; a pong may come as late as a busy machine makes it, up to a second.
  // A server that ignored pongs would drop the peer 1.05 s after the open; it is kept 2.5 s.
  const pingInterval = 50, pongTimeout = 1000;
  const app = new Sock({ pingInterval, pongTimeout });
  app.route("/*", async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/`);
    await new Promise((resolve) => setTimeout(resolve, 2 * (pingInterval + pongTimeout) + 400));
    await ws.send("still here");
    assert.equal(await ws.receive({ timeout: 10000 }), "still here");
    assert.equal((await ws.close(1000)).code, 1000);
  } finally {
    await app.close();
  }
});
