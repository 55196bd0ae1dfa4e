// The server's monitoring (src/server/monitor.ts) over loopback TCP: every refused request and dropped
// handshake reaches `onReject`, the log and `metrics.rejections`; a scripted session's counters come
// out exactly; `onOpen`/`onClose` see each connection once, with who closed it and what it carried;
// keepalive timeouts are counted; hooks that throw go to `onError` and break nothing; compressed
// traffic is counted as it travelled.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import {
  type CloseReport,
  type RejectReport,
  type RouteRequest,
  Sock,
  type SockLogEntry,
  type SockMetrics,
  type SockOptions,
} from "../../src/server/sock.ts";
import { eventually, latin1Bytes, upgradeRequest } from "../_helpers.ts";
import { RawPeer } from "../_hardening.ts";

/** What the hooks and the logger saw, in order, with a way to wait for more. */
class Recorder {
  opens: { ws: Connection; request: RouteRequest }[] = [];
  closes: { ws: Connection; report: CloseReport }[] = [];
  rejects: RejectReport[] = [];
  errors: unknown[] = [];
  log: SockLogEntry[] = [];
  #changed = Promise.withResolvers<void>();

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  /** Every hook and the logger, recording into this object. */
  hooks(): Pick<SockOptions, "onOpen" | "onClose" | "onReject" | "onError" | "logger"> {
    return {
      onOpen: (ws, request) => (this.opens.push({ ws, request }), this.#notify()),
      onClose: (ws, report) => (this.closes.push({ ws, report }), this.#notify()),
      onReject: (report) => (this.rejects.push(report), this.#notify()),
      onError: (error) => (this.errors.push(error), this.#notify()),
      logger: { log: (entry) => (this.log.push(entry), this.#notify()) },
    };
  }

  /** Log entries of one kind. */
  entries<E extends SockLogEntry["event"]>(event: E): Extract<SockLogEntry, { event: E }>[] {
    return this.log.filter((entry) => entry.event === event) as Extract<SockLogEntry, { event: E }>[];
  }

  /** Resolves once `condition()` holds after some hook or log call; rejects after `ms`. */
  async until(condition: () => boolean, label: string, ms = 20000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${label}: not within ${ms} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#changed.promise,
        new Promise((resolve) => timer = setTimeout(resolve, left)),
      ]).finally(() => clearTimeout(timer));
    }
  }
}

/** Sends `bytes` on a fresh TCP connection and returns the status of the answer (0 for none) and the peer. */
async function answer(port: number, bytes: string | Uint8Array, { waitForEnd = true } = {}) {
  const peer = await RawPeer.open(port);
  try {
    await peer.write(typeof bytes === "string" ? latin1Bytes(bytes) : bytes);
    await peer.until((text) => text.includes("\r\n\r\n"), 20000);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(peer.text)?.[1] ?? 0);
    if (waitForEnd) await peer.endedWithin(20000);
    return status;
  } finally {
    peer.destroy();
  }
}

const chat = (options: Parameters<typeof upgradeRequest>[0] = {}) =>
  upgradeRequest({ target: "/chat", ...options });

/** An echo handler. */
async function echo(ws: Connection): Promise<void> {
  for await (const message of ws) await ws.send(message);
}

test("Monitor: every rejection kind gives one onReject, a reject log entry and a count by status", async () => {
  const rec = new Recorder();
  const app = new Sock({
    pingInterval: 0,
    origins: [null, "https://good.example"],
    upgrade: (request) => {
      if (request.query === "deny") return { reject: { status: 401, body: "who are you\n" } };
      if (request.query === "throw") throw new Error("hook failed");
      return undefined;
    },
    ...rec.hooks(),
  });
  app.route("/chat", echo).route("/rooms/:room", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const valid = chat();
    const cases: [string, string, number, RegExp, string | undefined][] = [
      ["no route", upgradeRequest({ target: "/nowhere" }), 404, /^no route for this path$/, "/nowhere"],
      [
        "origin not allowed",
        chat({ extra: [["Origin", "https://evil.example"]] }),
        403,
        /^origin not allowed$/,
        "/chat",
      ],
      [
        "a bare LF",
        valid.replace("Upgrade: websocket\r\n", "Upgrade: websocket\n"),
        400,
        /bare LF/,
        undefined,
      ],
      [
        "a bad Sec-WebSocket-Key",
        chat({ set: { "Sec-WebSocket-Key": "short" } }),
        400,
        /Sec-WebSocket-Key/,
        "/chat",
      ],
      [
        "a refused route parameter",
        upgradeRequest({ target: "/rooms/%2e%2e" }),
        400,
        /route parameter/,
        "/rooms/%2e%2e",
      ],
      ["a POST upgrade", chat({ method: "POST" }), 405, /only GET/, "/chat"],
      [
        "a plain GET",
        "GET /chat HTTP/1.1\r\nHost: a\r\n\r\n",
        426,
        /Upgrade: websocket is required/,
        "/chat",
      ],
      [
        "an oversized head",
        chat({ extra: Array.from({ length: 100 }, (_, i) => [`X-Filler-${i}`, "f".repeat(190)]) }),
        431,
        /too large|too many/,
        undefined,
      ],
      [
        "a long request line",
        chat({ target: "/chat?" + "q".repeat(9000) }),
        414,
        /request line too long/,
        undefined,
      ],
      ["HTTP/2.0", chat({ version: "HTTP/2.0" }), 505, /HTTP version HTTP\/2\.0 is not supported/, undefined],
      ["the upgrade hook's 401", chat({ target: "/chat?deny" }), 401, /^who are you$/, "/chat"],
      ["an upgrade hook that throws", chat({ target: "/chat?throw" }), 500, /^internal error$/, "/chat"],
    ];
    for (const [label, bytes, status, reason, path] of cases) {
      const before = rec.rejects.length;
      assert.equal(await answer(port, bytes), status, label);
      await rec.until(() => rec.rejects.length > before, label);
      assert.equal(rec.rejects.length, before + 1, `${label}: one onReject call`);
      const report = rec.rejects[before];
      assert.equal(report.status, status, label);
      assert.match(report.reason, reason, label);
      assert.equal(report.path, path, `${label}: path`);
      assert.equal(report.remoteAddress?.hostname, "127.0.0.1", `${label}: remoteAddress`);
      assert.ok(report.remoteAddress!.port > 0, `${label}: remoteAddress`);
    }
    assert.equal(rec.rejects.length, cases.length, "one onReject per refused request");
    // The log got the same reports, as `reject` entries, in the same order.
    assert.deepEqual(
      rec.entries("reject"),
      rec.rejects.map((report) => ({ level: "warn", event: "reject", ...report })),
    );
    // The throwing hook went to onError (and the log), and nothing else did.
    assert.equal(rec.errors.length, 1);
    assert.equal((rec.errors[0] as Error).message, "hook failed");
    assert.deepEqual(rec.entries("error"), [{ level: "error", event: "error", error: rec.errors[0] }]);
    assert.deepEqual(rec.opens, [], "no connection opened");
    assert.deepEqual(app.metrics, {
      connectionsOpen: 0,
      connectionsTotal: 0,
      messagesReceived: 0,
      messagesSent: 0,
      bytesReceived: 0,
      bytesSent: 0,
      rejections: { 400: 3, 401: 1, 403: 1, 404: 1, 405: 1, 414: 1, 426: 1, 431: 1, 500: 1, 505: 1 },
      closes: {},
      keepaliveTimeouts: 0,
      httpRequests: 0,
    });
  } finally {
    await app.close();
  }
});

test("Monitor: a connection dropped at handshakeTimeout is reported with no status and counted as timeout", async () => {
  const timeout = 400;
  const rec = new Recorder();
  const app = new Sock({ pingInterval: 0, handshakeTimeout: timeout, ...rec.hooks() });
  app.route("/chat", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const start = performance.now();
    const silent = await RawPeer.open(port);
    const half = await RawPeer.open(port);
    // Read now: once the socket is closed, Bun no longer knows its local port.
    const ports = [silent.localPort, half.localPort].sort((x, y) => x - y);
    await half.write(latin1Bytes(chat().slice(0, 30)));
    await rec.until(() => rec.rejects.length >= 2, "two handshake timeouts");
    const ms = performance.now() - start;
    // Not before the timeout (the clock started before the connections); until() bounds it above.
    assert.ok(ms >= timeout / 2, `dropped after ${ms} ms`);
    assert.ok(await silent.endedWithin(20000), "the silent peer was dropped");
    assert.ok(await half.endedWithin(20000), "the half-sent peer was dropped");
    assert.equal(silent.text + half.text, "", "dropped without an answer");
    for (const report of rec.rejects) {
      assert.equal(report.status, undefined);
      assert.equal(report.reason, "handshake timeout");
      assert.equal(report.path, undefined);
      assert.equal(report.remoteAddress?.hostname, "127.0.0.1");
    }
    assert.deepEqual(
      rec.rejects.map((report) => report.remoteAddress!.port).sort((x, y) => x - y),
      ports,
      "each report names its peer",
    );
    silent.destroy();
    half.destroy();
    assert.deepEqual(
      rec.entries("reject"),
      rec.rejects.map((report) => ({ level: "warn", event: "reject", ...report })),
    );
    assert.deepEqual(app.metrics.rejections, { timeout: 2 });
    assert.deepEqual(rec.errors, []);
  } finally {
    await app.close();
  }
});

test("Monitor: with fetch, malformed requests, oversized bodies and app.upgrade() refusals are reported", async () => {
  const rec = new Recorder();
  const app: Sock = new Sock({
    pingInterval: 0,
    maxBodySize: 16,
    fetch: (request) =>
      new URL(request.url).pathname === "/ws" ? app.upgrade(request, echo) : new Response("a page\n"),
    ...rec.hooks(),
  });
  app.route("/chat", echo).route("/rooms/:room", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Two plain requests for `httpRequests`.
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/page`);
      assert.equal(await response.text(), "a page\n");
    }
    const cases: [string, string, number, RegExp, string | undefined, boolean][] = [
      [
        "Content-Length with Transfer-Encoding",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        /both Content-Length and Transfer-Encoding/,
        undefined,
        true,
      ],
      [
        "a body over maxBodySize",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + "b".repeat(100),
        413,
        /request body too large/,
        undefined,
        true,
      ],
      // app.upgrade() answers; the connection stays open for the next request.
      [
        "app.upgrade() with a bad key",
        upgradeRequest({ target: "/ws", set: { "Sec-WebSocket-Key": "short" } }),
        400,
        /Sec-WebSocket-Key is not base64 of 16 bytes/,
        "/ws",
        false,
      ],
      // A valid upgrade to a route goes past fetch, and is refused by the route server's checks.
      [
        "a routed upgrade with a refused parameter",
        upgradeRequest({ target: "/rooms/%2e%2e" }),
        400,
        /route parameter/,
        "/rooms/%2e%2e",
        true,
      ],
    ];
    for (const [label, bytes, status, reason, path, waitForEnd] of cases) {
      const before = rec.rejects.length;
      assert.equal(await answer(port, bytes, { waitForEnd }), status, label);
      await rec.until(() => rec.rejects.length > before, label);
      assert.equal(rec.rejects.length, before + 1, `${label}: one onReject call`);
      const report = rec.rejects[before];
      assert.equal(report.status, status, label);
      assert.match(report.reason, reason, label);
      assert.equal(report.path, path, `${label}: path`);
    }
    assert.deepEqual(
      rec.entries("reject"),
      rec.rejects.map((report) => ({ level: "warn", event: "reject", ...report })),
    );
    assert.deepEqual(rec.errors, []);
    const metrics = app.metrics;
    assert.deepEqual(metrics.rejections, { 400: 3, 413: 1 });
    // Two pages and the request fetch refused with app.upgrade(); the malformed requests and the
    // routed upgrade never reached fetch.
    assert.equal(metrics.httpRequests, 3);
    assert.equal(metrics.connectionsTotal, 0);
  } finally {
    await app.close();
  }
});

/** What the scripted session sends: text and binary of known UTF-8 sizes. */
const SCRIPT = {
  /** To /echo, then closed by the client with 1000: 5 + 300 bytes. */
  a: ["hello", new Uint8Array(300).fill(7)],
  /** To /kick, then closed by the server with 4001: 6 bytes ("é" is two). */
  b: ["héllo"],
  /** To /echo, then the TCP connection dropped: 126 + 2 bytes. */
  c: [new Uint8Array(126).fill(1), "ok"],
} as const;

const size = (message: string | Uint8Array) =>
  typeof message === "string" ? new TextEncoder().encode(message).length : message.length;
const bytesOf = (messages: readonly (string | Uint8Array)[]) => messages.reduce((sum, m) => sum + size(m), 0);

/**
 * Three clients on a server with `fetch`, two fetch() calls: A echoes and closes with 1000, B is
 * closed by its handler with 4001, C echoes and drops its TCP connection. Checks the counters
 * while all three are open; returns once the server closed all three.
 */
async function scriptedSession(options: SockOptions) {
  const handlerSawOpen: boolean[] = [];
  const handlerRequests = new Map<Connection, RouteRequest>();
  const opened = new Set<Connection>();
  const onOpen = options.onOpen;
  const app = new Sock({
    pingInterval: 0,
    fetch: () => new Response("a page\n"),
    ...options,
    // Given only when the caller gave one: the session without hooks has none.
    onOpen: onOpen && ((ws, request) => {
      opened.add(ws);
      onOpen(ws, request);
    }),
  });
  const recorded = (ws: Connection, request: RouteRequest) => {
    handlerSawOpen.push(opened.has(ws));
    handlerRequests.set(ws, request);
  };
  app.route("/echo", async (ws, request) => {
    recorded(ws, request);
    await echo(ws);
  });
  app.route("/kick/:who", async (ws, request) => {
    recorded(ws, request);
    await ws.send((await ws.receive())!);
    await ws.close(4001, "kicked");
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${port}`;
  const start = performance.now();
  try {
    for (let i = 0; i < 2; i++) {
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "a page\n");
    }
    const a = await connect(`${url}/echo`, { pingInterval: 0 });
    const b = await connect(`${url}/kick/bob?x=1`, { pingInterval: 0 });
    const c = await connect(`${url}/echo`, { pingInterval: 0 });
    for (const [ws, messages] of [[a, SCRIPT.a], [b, SCRIPT.b], [c, SCRIPT.c]] as const) {
      for (const message of messages) {
        await ws.send(message);
        assert.deepEqual(await ws.receive({ timeout: 10000 }), message);
      }
    }
    // All open: their traffic so far is counted.
    const all = bytesOf(SCRIPT.a) + bytesOf(SCRIPT.b) + bytesOf(SCRIPT.c);
    const count = SCRIPT.a.length + SCRIPT.b.length + SCRIPT.c.length;
    const open = app.metrics;
    assert.equal(open.connectionsTotal, 3);
    assert.ok(open.connectionsOpen >= 2, "A and C are open (B may be closing)");
    assert.equal(open.messagesReceived, count);
    assert.equal(open.messagesSent, count);
    assert.equal(open.bytesReceived, all);
    assert.equal(open.bytesSent, all);
    assert.deepEqual(open.rejections, {});
    assert.equal(open.httpRequests, 2);

    const bClosed = await b.closed;
    assert.deepEqual([bClosed.code, bClosed.reason], [4001, "kicked"]);
    const aClosed = await a.close(1000);
    assert.equal(aClosed.wasClean, true);
    c.terminate();
    // The server drops a connection from `connections` as it reports its close.
    await eventually(() => app.connections.size === 0, "the server saw the three closes");
    const elapsed = performance.now() - start;
    return { app, a, b, c, handlerSawOpen, handlerRequests, elapsed, port };
  } catch (error) {
    await app.close();
    throw error;
  }
}

/**
 * A close report's declared fields. The report also carries `type: "closed"` (the core's `closed`
 * event is what `ws.closeResult` holds, and the report spreads it), which `CloseReport` does not
 * declare: compared without it.
 */
function declared(report: Omit<CloseReport, "duration">): Omit<CloseReport, "duration"> {
  const { code, reason, wasClean, received, sent, by } = report;
  const { messagesReceived, messagesSent, bytesReceived, bytesSent } = report;
  return {
    code,
    reason,
    wasClean,
    received,
    sent,
    by,
    messagesReceived,
    messagesSent,
    bytesReceived,
    bytesSent,
  };
}

/** The counters the scripted session must end with. */
function sessionMetrics(): SockMetrics {
  const all = bytesOf(SCRIPT.a) + bytesOf(SCRIPT.b) + bytesOf(SCRIPT.c);
  const count = SCRIPT.a.length + SCRIPT.b.length + SCRIPT.c.length;
  return {
    connectionsOpen: 0,
    connectionsTotal: 3,
    messagesReceived: count,
    messagesSent: count,
    bytesReceived: all,
    bytesSent: all,
    rejections: { 400: 1 },
    closes: { 1000: 1, 4001: 1, 1006: 1 },
    keepaliveTimeouts: 0,
    httpRequests: 2,
  };
}

test("Monitor: a scripted session's counters come out exactly", async () => {
  const rec = new Recorder();
  const { app, port } = await scriptedSession(rec.hooks());
  try {
    // With fetch, an upgrade to no route goes to fetch: a refused route parameter is the refusal.
    assert.equal(await answer(port, upgradeRequest({ target: "/kick/%2e%2e" })), 400);
    await rec.until(() => rec.rejects.length === 1, "the 400");
    assert.deepEqual(app.metrics, sessionMetrics());
    assert.notEqual(app.metrics, app.metrics, "a fresh object at every read");
    assert.deepEqual(rec.errors, []);
  } finally {
    await app.close();
  }
  // Closing the server changes no counter: every connection had closed already.
  assert.deepEqual(app.metrics, sessionMetrics());
});

test("Monitor: onOpen and onClose see each connection once, with who closed it and what it carried", async () => {
  const rec = new Recorder();
  const { app, a, b, c, handlerSawOpen, handlerRequests, elapsed } = await scriptedSession(rec.hooks());
  try {
    // onOpen: once per connection, before its handler, with the request the handler got.
    assert.equal(rec.opens.length, 3);
    assert.deepEqual(handlerSawOpen, [true, true, true]);
    for (const { ws, request } of rec.opens) {
      assert.equal(request, handlerRequests.get(ws), "the same RouteRequest");
    }
    assert.deepEqual(
      rec.opens.map(({ request }) => [request.path, request.query, request.params]),
      [["/echo", "", {}], ["/kick/bob", "x=1", { who: "bob" }], ["/echo", "", {}]],
    );
    const ids = rec.opens.map(({ ws }) => ws.id);
    assert.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id > ids[i - 1])), `ids ${ids}`);
    // Client-side ids come from the same counter: none of them is a server connection's.
    for (const client of [a, b, c]) assert.ok(!ids.includes(client.id));

    // onClose: once per connection.
    assert.equal(rec.closes.length, 3);
    assert.deepEqual(new Set(rec.closes.map(({ ws }) => ws)), new Set(rec.opens.map(({ ws }) => ws)));
    const reportOf = (i: number) => rec.closes.find(({ ws }) => ws === rec.opens[i].ws)!.report;
    const traffic = (messages: readonly (string | Uint8Array)[]) => ({
      messagesReceived: messages.length,
      messagesSent: messages.length,
      bytesReceived: bytesOf(messages),
      bytesSent: bytesOf(messages),
    });
    const expected: [string, Omit<CloseReport, "duration">][] = [
      ["A, closed by the client", {
        code: 1000,
        reason: "",
        wasClean: true,
        received: { code: 1000, reason: "" },
        sent: { code: 1000, reason: "" },
        by: "peer",
        ...traffic(SCRIPT.a),
      }],
      ["B, closed by its handler", {
        // The code and reason are the peer's close frame's: sock's client echoes the code only.
        code: 4001,
        reason: "",
        wasClean: true,
        received: { code: 4001, reason: "" },
        sent: { code: 4001, reason: "kicked" },
        by: "local",
        ...traffic(SCRIPT.b),
      }],
      ["C, dropped", {
        code: 1006,
        reason: "",
        wasClean: false,
        received: undefined,
        sent: undefined,
        by: "network",
        ...traffic(SCRIPT.c),
      }],
    ];
    for (const [i, [label, fields]] of expected.entries()) {
      const { duration, ...report } = reportOf(i);
      assert.deepEqual(declared(report), fields, label);
      assert.ok(duration >= 0 && duration <= elapsed + 1, `${label}: duration ${duration} of ${elapsed} ms`);
      assert.equal(rec.opens[i].ws.closedBy, fields.by, `${label}: ws.closedBy`);
      assert.deepEqual(
        rec.opens[i].ws.stats,
        traffic([SCRIPT.a, SCRIPT.b, SCRIPT.c][i]),
        `${label}: ws.stats`,
      );
    }

    // The log: an open and a close entry per connection, with its id.
    assert.deepEqual(
      rec.entries("open"),
      rec.opens.map(({ ws, request }) => ({
        level: "info",
        event: "open",
        id: ws.id,
        path: request.path,
        remoteAddress: ws.remoteAddress,
      })),
    );
    for (const entry of rec.entries("open")) assert.equal(entry.remoteAddress?.hostname, "127.0.0.1");
    assert.deepEqual(
      rec.entries("close"),
      rec.closes.map(({ ws, report }) => ({ level: "info", event: "close", id: ws.id, ...report })),
    );
    // Each connection's open entry comes before its close entry.
    for (const id of ids) {
      const at = (event: string) => rec.log.findIndex((e) => e.event === event && "id" in e && e.id === id);
      assert.ok(at("open") >= 0 && at("open") < at("close"), `id ${id}: open logged before close`);
    }
    assert.deepEqual(rec.errors, []);
    assert.deepEqual(rec.entries("keepalive-timeout"), []);
  } finally {
    await app.close();
  }
});

test("Monitor: a raw peer that goes away is closed by the network, and counted with what it sent", async () => {
  const rec = new Recorder();
  const app = new Sock({ pingInterval: 0, ...rec.hooks() });
  app.route("/echo", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await RawPeer.upgraded(port, "/echo");
    // A masked text frame "hi" (the RFC's mask key), echoed as an unmasked one.
    await peer.write(new Uint8Array([0x81, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5f, 0x93]));
    assert.ok(await peer.until((text) => text.endsWith("\x81\x02hi"), 10000), "echoed");
    peer.destroy();
    await rec.until(() => rec.closes.length === 1, "the close");
    const { report } = rec.closes[0];
    assert.equal(report.by, "network");
    assert.equal(report.code, 1006);
    assert.equal(report.wasClean, false);
    assert.deepEqual(
      [report.messagesReceived, report.messagesSent, report.bytesReceived, report.bytesSent],
      [1, 1, 2, 2],
    );
    assert.deepEqual(app.metrics.closes, { 1006: 1 });
    assert.deepEqual(rec.errors, []);
  } finally {
    await app.close();
  }
});

test("Monitor: a peer that never answers pings is a keepalive timeout, closed by the network", async () => {
  const pingInterval = 200, pongTimeout = 200;
  const rec = new Recorder();
  const app = new Sock({ pingInterval, pongTimeout, ...rec.hooks() });
  app.route("/echo", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const start = performance.now();
    const peer = await RawPeer.upgraded(port, "/echo");
    await rec.until(() => rec.closes.length === 1, "the keepalive timeout", 20000);
    const ms = performance.now() - start;
    // until() bounds how long it may take. Never before the first ping (3/4 of an interval in) and
    // its pong timeout, which together exceed one interval.
    assert.ok(ms >= pingInterval, `dropped after ${ms} ms`);
    assert.ok(await peer.endedWithin(20000), "the peer's connection was dropped");
    assert.ok(peer.received.includes(0x89), "the server pinged");
    peer.destroy();
    const [{ ws, report }] = rec.closes;
    assert.equal(report.by, "network");
    assert.equal(report.code, 1006);
    assert.equal(report.wasClean, false);
    assert.deepEqual(rec.entries("keepalive-timeout"), [{
      level: "warn",
      event: "keepalive-timeout",
      id: ws.id,
    }]);
    const at = (event: string) => rec.log.findIndex((e) => e.event === event);
    assert.ok(at("keepalive-timeout") < at("close"), "the timeout is logged before the close");
    const metrics = app.metrics;
    assert.equal(metrics.keepaliveTimeouts, 1);
    assert.deepEqual(metrics.closes, { 1006: 1 });
    assert.equal(metrics.connectionsOpen, 0);
    assert.deepEqual(rec.errors, []);
  } finally {
    await app.close();
  }
});

test("Monitor: hooks that throw go to onError and break neither the connection nor the server", async () => {
  const errors: unknown[] = [];
  let changed = Promise.withResolvers<void>();
  const app = new Sock({
    pingInterval: 0,
    onOpen: () => {
      throw new Error("onOpen failed");
    },
    onClose: () => {
      throw new Error("onClose failed");
    },
    onReject: () => {
      throw new Error("onReject failed");
    },
    onError: (error) => {
      errors.push(error);
      changed.resolve();
      changed = Promise.withResolvers();
    },
  });
  app.route("/echo", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${port}`;
  const messages = () => errors.map((error) => (error as Error).message);
  const waitFor = async (n: number) => {
    const deadline = performance.now() + 20000;
    while (errors.length < n) {
      if (performance.now() > deadline) throw new Error(`only ${errors.length} errors`);
      await Promise.race([changed.promise, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
  };
  try {
    for (let round = 0; round < 2; round++) {
      const ws = await connect(`${url}/echo`, { pingInterval: 0 });
      await ws.send("still works");
      assert.equal(await ws.receive({ timeout: 10000 }), "still works");
      const closed = await ws.close(1000);
      assert.equal(closed.code, 1000);
      assert.equal(closed.wasClean, true);
      assert.equal(await answer(port, upgradeRequest({ target: "/nowhere" })), 404, "still answered");
      await waitFor(3 * (round + 1));
    }
    assert.deepEqual(messages().sort(), [
      "onClose failed",
      "onClose failed",
      "onOpen failed",
      "onOpen failed",
      "onReject failed",
      "onReject failed",
    ]);
    const metrics = app.metrics;
    assert.equal(metrics.connectionsTotal, 2);
    assert.deepEqual(metrics.closes, { 1000: 2 });
    assert.deepEqual(metrics.rejections, { 404: 2 });
    assert.equal(metrics.messagesReceived, 2);
  } finally {
    await app.close();
  }
});

test("Monitor: with no hooks and no logger nothing breaks and the counters still count", async () => {
  const { app, port } = await scriptedSession({});
  try {
    assert.equal(await answer(port, upgradeRequest({ target: "/kick/%2e%2e" })), 400);
    assert.deepEqual(app.metrics, sessionMetrics());
  } finally {
    await app.close();
  }
});

test("Monitor: under permessage-deflate the bytes counted are the compressed payload bytes", async () => {
  const rec = new Recorder();
  const app = new Sock({ pingInterval: 0, deflate: true, ...rec.hooks() });
  app.route("/echo", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const text = "all work and no play makes jack a dull boy. ".repeat(200);
    const raw = text.length;
    const ws = await connect(`ws://127.0.0.1:${port}/echo`, { pingInterval: 0, deflate: true });
    assert.match(ws.extensions, /permessage-deflate/);
    await ws.send(text);
    assert.equal(await ws.receive({ timeout: 10000 }), text);
    const open = app.metrics;
    assert.equal(open.messagesReceived, 1);
    assert.equal(open.messagesSent, 1);
    assert.ok(
      open.bytesReceived > 0 && open.bytesReceived < raw / 4,
      `received ${open.bytesReceived} of ${raw}`,
    );
    assert.ok(open.bytesSent > 0 && open.bytesSent < raw / 4, `sent ${open.bytesSent} of ${raw}`);
    // The client counts the same bytes the other way.
    assert.deepEqual(ws.stats, {
      messagesReceived: 1,
      messagesSent: 1,
      bytesReceived: open.bytesSent,
      bytesSent: open.bytesReceived,
    });
    await ws.close(1000);
    await rec.until(() => rec.closes.length === 1, "the close");
    const { report } = rec.closes[0];
    assert.deepEqual([report.bytesReceived, report.bytesSent], [open.bytesReceived, open.bytesSent]);
    assert.deepEqual(app.metrics.closes, { 1000: 1 });
  } finally {
    await app.close();
  }
});

// When the client's close frame comes in the same read as its request head, the Connection takes
// the close while it is made: the server still reports the open first.
test("Monitor: a close frame sent with the handshake is reported after the open", async () => {
  const order: string[] = [];
  const app = new Sock({
    pingInterval: 0,
    onOpen: () => void order.push("open"),
    onClose: (_ws, report) => void order.push(`close ${report.code}`),
  });
  app.route("/echo", async (ws) => {
    order.push("handler");
    await echo(ws);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const peer = await RawPeer.open(port);
    // The request head and a masked close frame (1000, zero mask) in one write.
    await peer.write(
      new Uint8Array([
        ...latin1Bytes(upgradeRequest({ target: "/echo" })),
        0x88,
        0x82,
        0,
        0,
        0,
        0,
        0x03,
        0xe8,
      ]),
    );
    assert.ok(await peer.endedWithin(20000), "closed");
    peer.destroy();
    await eventually(() => order.length === 3, "open, handler and close");
    // Open first, close once; the handler still runs (on a connection closed already).
    assert.equal(order[0], "open");
    assert.deepEqual([...order].sort(), ["close 1000", "handler", "open"]);
  } finally {
    await app.close();
  }
});

// What a logger throws goes to onError, like what a hook throws: never into a connection's read loop.
test("Monitor: a logger that throws breaks neither the connection nor the server", async () => {
  const errors: unknown[] = [];
  const app = new Sock({
    pingInterval: 0,
    onError: (error) => void errors.push(error),
    logger: {
      log: () => {
        throw new Error("logger failed");
      },
    },
  });
  app.route("/echo", echo);
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/echo`, { pingInterval: 0 });
    await ws.send("still works");
    assert.equal(await ws.receive({ timeout: 10000 }), "still works");
    assert.equal((await ws.close(1000)).wasClean, true);
    assert.equal(await answer(port, upgradeRequest({ target: "/nowhere" })), 404);
    await eventually(() => app.metrics.closes[1000] === 1, "the close counted");
    assert.deepEqual(app.metrics.rejections, { 404: 1 });
    assert.ok(
      errors.length > 0 && errors.every((e) => (e as Error).message === "logger failed"),
      `${errors}`,
    );
  } finally {
    await app.close();
  }
});
